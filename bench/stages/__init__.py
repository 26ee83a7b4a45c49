"""The stages of ``bench/throughput.py``, one file each, in the order they run."""
from .generation import stage_generation
from .logprob import stage_logprob
from .sample import stage_sample
from .score import stage_score
from .step import stage_step
from .update import stage_update

STAGE_FNS = {"generation": stage_generation, "score": stage_score, "sample": stage_sample, "logprob": stage_logprob,
             "step": stage_step, "update": stage_update}
STAGES = tuple(STAGE_FNS)
STAGE_CASES = {"generation": 3, "score": 2, "sample": 3, "logprob": 4, "step": 2, "update": 10}  # timed cases, for the bar
VLLM_STAGES = ("generation", "sample")
