"""Progress estimation: J at every episode boundary of a reasoning trace (mrt.md sections 2-3).

``from mrt_engine.progress import ProgressEstimator, ProgressResult``. See docs/progress.md.
"""
from .config import EstimatorConfig
from .estimator import ProgressEstimator
from .result import ProgressResult, progress_from_j, token_curve

__all__ = ["ProgressEstimator", "ProgressResult", "EstimatorConfig", "progress_from_j", "token_curve"]
