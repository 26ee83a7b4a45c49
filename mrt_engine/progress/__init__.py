"""Progress estimation: J at every episode boundary of a reasoning trace (docs/method.md sections 2-3).

``from mrt_engine.progress import ProgressEstimator, ProgressResult``. See docs/progress.md.
"""
from mrt_engine.config import EstimatorConfig
from .estimator import ProgressEstimator
from .inputs import reference_answer
from .reliability import Reliability, progress_reliability, reliability_from_two
from .result import ProgressResult, progress_from_j, token_curve
from .scorer import ProgressScorer

__all__ = ["ProgressEstimator", "ProgressResult", "ProgressScorer", "EstimatorConfig", "Reliability",
           "progress_from_j", "progress_reliability", "reference_answer", "reliability_from_two", "token_curve"]
