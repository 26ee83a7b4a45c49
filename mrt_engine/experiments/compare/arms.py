"""The arms of the comparison: each is the shared config plus the few keys that name it."""
from __future__ import annotations

import copy

from mrt_engine.config import set_dotted

# arm -> dotted overrides of the shared config (mrt_engine/config/presets/compare.yaml)
ARMS: dict[str, dict] = {
    "grpo": {"algo.name": "grpo"},
    "mrt_scalar": {"algo.name": "mrt_scalar"},
    "mrt_dense": {"algo.name": "mrt_dense", "algo.progress.mode": "sample"},
    "mrt_dense_score": {"algo.name": "mrt_dense", "algo.progress.mode": "score"},
    "length_penalty": {"algo.name": "length_penalty"},
    # mrt_dense with progress shuffled across the batch: the same magnitudes, no credit
    "placebo": {"algo.name": "mrt_dense_placebo", "algo.progress.mode": "sample"},
    # the placebo of mrt_dense_score: scored progress shuffled (scored J has its own magnitudes)
    "placebo_score": {"algo.name": "mrt_dense_placebo", "algo.progress.mode": "score"},
    # the other credit forms (mrt_engine/rl/rewards.py; docs/compare.md, "The credit forms")
    "mrt_dense_to_go": {"algo.name": "mrt_dense_to_go", "algo.progress.mode": "sample"},
    "mrt_dense_centred": {"algo.name": "mrt_dense_centred", "algo.progress.mode": "sample"},
    # mrt_dense with each trace's progress shuffled among its own episodes: each trace's total kept
    "placebo_within": {"algo.name": "mrt_dense_placebo_within", "algo.progress.mode": "sample"},
}
# every credit form and both placebos (`mrt-engine compare --arms` with these names)
CREDIT_ARMS = ("grpo", "mrt_dense", "mrt_dense_to_go", "mrt_dense_centred", "mrt_scalar", "placebo", "placebo_within")
# `mrt-engine compare` with no --arms: the six of the decision rule's run (placebo_score is the
# follow-up's control, run with --arms)
DEFAULT_ARMS = ("grpo", "mrt_scalar", "mrt_dense", "mrt_dense_score", "length_penalty", "placebo")
BASELINE = "grpo"
MRT_ARM = "mrt_dense"       # the arm the decision rule judges
CONTROLS = ("grpo", "placebo")
# Judged by the same rule but stated after the first full run (docs/compare.md, "Follow-up"): a
# hypothesis that run suggested, so it counts only on seeds that run did not use.
SECONDARY_ARM = "mrt_dense_score"
SECONDARY_CONTROLS = ("grpo", "placebo_score")


def arm_config(base: dict, arm: str, seed: int, output_dir: str) -> dict:
    """The train config of ``arm`` at ``seed`` (a deep copy; ``base`` is not changed)."""
    if arm not in ARMS:
        raise ValueError(f"unknown arm {arm!r}; arms: {sorted(ARMS)}")
    cfg = copy.deepcopy(base)
    for key, value in ARMS[arm].items():
        set_dotted(cfg, key, value)
    cfg["seed"] = int(seed)
    cfg["output_dir"] = output_dir
    return cfg
