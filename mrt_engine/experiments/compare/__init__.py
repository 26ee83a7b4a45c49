"""``mrt-engine compare``: MRT against GRPO and controls, several seeds per arm (docs/compare.md).

``run_compare(...)`` trains every arm from the same warm start on the same problems with the
same budget of generated training tokens, evaluates each on the held-out problems, and
writes ``report.json``, ``report.md`` and ``compare.png``. Pieces: ``arms`` (what each arm
changes), ``evaluate`` (the held-out measurements), ``report`` (intervals, the decision rule,
table and plot), ``rule`` (the preregistered verdict of a regime), ``run`` (orchestration, one
result file per arm and seed, resumable).
"""
from .arms import ARMS, DEFAULT_ARMS, arm_config
from .report import DECISION_RULE, aggregate, verdict
from .rule import regime_verdict
from .run import run_compare

__all__ = ["ARMS", "DECISION_RULE", "DEFAULT_ARMS", "aggregate", "arm_config", "regime_verdict", "run_compare", "verdict"]
