"""The regimes of ``mrt-engine compare --regime`` and ``mrt-engine gates``: what each runs and the
preregistered rule that judges it (docs/prereg/doubt_bisect.md, docs/compare.md "Running a regime").

A :class:`Regime` names its compare preset (``mrt_engine/config/presets/<preset>.yaml``: model,
task, budgets), its mechanism metric (parsed from each held-out completion by the task's
``mechanism`` hook, code fixed before any seed), how each arm is measured, the primary arm, the
controls, the seeds and the non-inferiority margin, and the designed J profile its warm start must
show before any RL (``j_profile``, one of the pure checks of :mod:`mrt_engine.experiments.gates`).

- ``digit``: today's comparison (preset ``compare``), the negative control: no mechanism metric,
  today's arms, seeds and measurement, so its reuse and published results are unchanged. The
  prereg's rule is applied to it too, when its primary arm and controls were run.
- ``doubt`` and ``bisect`` (presets ``compare_doubt``, ``compare_bisect``): 16 samples per held-out
  problem, primary arm ``mrt_dense_centred`` against ``grpo``, ``placebo`` and ``placebo_within``,
  seeds 100-109 (never used by an earlier run).

Where we depart from the prereg's text it is only to make it executable; each reading is stated
in :data:`RULE_READINGS` (written into every report) and in the prereg's Deviations entry.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

from mrt_engine.experiments.gates import Gate, TraceJ, bisect_profile, doubt_profile


@dataclass(frozen=True)
class MechanismMetric:
    """A rate parsed from the held-out completions: ``sum(numerator) / sum(denominator)`` over the
    traces of one evaluation, or the mean of ``numerator`` over the traces when ``denominator`` is
    None. The keys are those of the task's ``mechanism(problem, completion)``."""

    name: str
    numerator: str
    denominator: str | None = None
    lower_is_better: bool = True

    @property
    def key(self) -> str:
        """Its column in the compare summary (one per metric, beside pass@1)."""
        return f"mechanism:{self.name}"

    def value(self, mechanism: dict) -> float:
        """The rate from one evaluation's ``final["mechanism"]`` (``{"num_traces", "sums"}``, see
        ``experiments.compare.evaluate.mechanism_sums``); NaN when its denominator is 0."""
        if not isinstance(mechanism, dict) or "sums" not in mechanism or "num_traces" not in mechanism:
            raise ValueError(f"{self.name}: expected an evaluation's mechanism record {{'num_traces', 'sums'}}, "
                             f"got {mechanism!r:.120}; was the task's mechanism hook run (evaluate_policy)?")
        sums = mechanism["sums"]
        for k in (self.numerator, self.denominator):
            if k is not None and k not in sums:
                raise ValueError(f"{self.name}: the task's mechanism gave keys {sorted(sums)}, not {k!r}; "
                                 "fix the regime's MechanismMetric or the task's mechanism hook")
        den = sums[self.denominator] if self.denominator is not None else mechanism["num_traces"]
        return sums[self.numerator] / den if den else math.nan


@dataclass(frozen=True)
class Regime:
    """One regime of the comparison (see the module docstring)."""

    name: str
    preset: str                              # shipped compare config: mrt_engine/config/presets/<preset>.yaml
    task: str                                # data.task of that preset (checked when a run starts)
    mechanism: MechanismMetric | None        # the preregistered mechanism metric; None: pass@1 only
    also_report: tuple[MechanismMetric, ...] = ()  # reported beside it, not judged
    num_samples: int | None = None           # completions per held-out problem; None: today's EvalSpec()
    primary: str = "mrt_dense_centred"
    controls: tuple[str, ...] = ("grpo", "placebo", "placebo_within")
    baseline: str = "grpo"                   # the control "null" and "harmful" are judged against
    secondary: tuple[str, ...] = ("mrt_dense", "mrt_dense_to_go", "mrt_scalar")  # fewer seeds allowed
    default_arms: tuple[str, ...] | None = None  # None: primary + controls
    margin: float = 0.02                     # pass@1 non-inferiority margin
    seeds: int = 10
    first_seed: int = 100
    out_dir: str | None = None               # default --out; None: runs/compare_<name>
    forcing: bool = False                    # budget forcing in the final measurement (digit: today's, yes)
    j_profile: Callable[[list[TraceJ], "Regime"], list[Gate]] | None = None

    def __post_init__(self):
        if self.baseline not in self.controls:
            raise ValueError(f"regime {self.name}: baseline {self.baseline!r} must be one of its controls {self.controls}")
        if self.primary in self.controls:
            raise ValueError(f"regime {self.name}: the primary arm {self.primary!r} cannot be its own control")
        if not 0 <= self.margin < 1:
            raise ValueError(f"regime {self.name}: margin={self.margin}; a pass@1 margin lies in [0, 1)")

    @property
    def arms(self) -> tuple[str, ...]:
        """The arms ``mrt-engine compare --regime`` runs without ``--arms``."""
        return self.default_arms or (self.primary, *self.controls)

    @property
    def placebos(self) -> tuple[str, ...]:
        return tuple(c for c in self.controls if c != self.baseline)

    @property
    def output(self) -> str:
        return self.out_dir or f"runs/compare_{self.name}"

    @property
    def metrics(self) -> tuple[MechanismMetric, ...]:
        """Every mechanism metric the report shows: the judged one first."""
        return ((self.mechanism,) if self.mechanism else ()) + self.also_report


UNRECOVERED_DOUBT = MechanismMetric("unrecovered doubt rate", "unrecovered_doubt")
DOUBT_RATE = MechanismMetric("doubt rate", "doubt")
REDUNDANT_FRACTION = MechanismMetric("redundant fraction", "redundant", "episodes")

REGIMES: dict[str, Regime] = {
    # today's comparison, unchanged: its six arms, seeds 0-2, 4 samples per problem, budget forcing;
    # the prereg's negative control (run its primary arm and controls with --arms to apply the rule)
    "digit": Regime("digit", "compare", "digit", mechanism=None, num_samples=None, seeds=3, first_seed=0,
                    default_arms=("grpo", "mrt_scalar", "mrt_dense", "mrt_dense_score", "length_penalty", "placebo"),
                    out_dir="runs/compare", forcing=True),
    "doubt": Regime("doubt", "compare_doubt", "doubt", mechanism=UNRECOVERED_DOUBT, also_report=(DOUBT_RATE,),
                    num_samples=16, j_profile=doubt_profile),
    "bisect": Regime("bisect", "compare_bisect", "bisect", mechanism=REDUNDANT_FRACTION, num_samples=16,
                     j_profile=bisect_profile),
}


def get_regime(name: str) -> Regime:
    if name not in REGIMES:
        raise ValueError(f"unknown regime {name!r}; regimes: {sorted(REGIMES)}")
    return REGIMES[name]


# The prereg's "Verdicts", word for word (docs/prereg/doubt_bisect.md, "The comparison rule").
RULE_TEXT = (
    "Primary metric: final held-out pass@1 (16 samples per problem, the rollout budget). Non-inferiority "
    "margin: pass@1 of the primary arm minus each control's at least -0.02. Intervals: paired by seed, exact "
    "95% Student-t intervals of the mean paired difference, against grpo, placebo and placebo_within "
    "separately. Verdicts (one per regime, applied by code): supported: against all three controls, the "
    "pass@1 interval lies entirely above 0, or the pass@1 margin holds and the mechanism metric's interval "
    "lies entirely on the better side; mechanism only: the mechanism metric wins against all three controls, "
    "pass@1 does not; not specific to progress: it wins against grpo but not against a placebo; null: no "
    "interval excludes 0 on either metric against grpo; harmful: the pass@1 interval against grpo lies "
    "entirely below -0.02."
)
# How the code reads the words above where they leave a choice (fixed before any seed).
RULE_READINGS = (
    "'wins against a control' = the pass@1 interval lies entirely above 0, or (the margin holds and the "
    "mechanism interval lies entirely on the better side), per control; 'the margin holds' = the mean paired "
    "pass@1 difference is at least -margin (as in the digit rule); an interval is mean ± t(0.975, n-1) * SD / "
    "sqrt(n) over the n seeds both arms ran; the verdict is the first that applies in the order written "
    "(supported, mechanism only, not specific to progress, null, harmful), every one that applies is "
    "reported, and an outcome none of them covers is 'unclassified'; the rule is not tested unless the "
    "primary arm and all three controls ran on at least 2 common seeds."
)
VERDICTS = ("supported", "mechanism only", "not specific to progress", "null", "harmful")
