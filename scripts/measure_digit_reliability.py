"""The corrected progress reliability of the `digit` warm start (docs/compare.md, README):
`python scripts/measure_digit_reliability.py [num_samples] [num_branches]`.

Samples `num_samples` completions (default 4) of each held-out problem of `mrt-engine compare`
(the shared config, no training), estimates J at every cut as compare measures every arm
(sample mode, `num_branches` forced answers per cut, default 8, J at the natural end = the
outcome), and prints the split-half reliability over the forced cuts only (the meter since issue
25) beside what the meter read before, on the same J, when the outcome episode counted (its
halves agree by construction). With `--with-sft-problems` the held-out problems are drawn as
before issue 25, deduplicated against the RL problems only (most of them are then SFT problems
of the warm start, as were 97 of the 101 the published figures were measured on).
"""
import dataclasses
import sys
import time

import torch

from mrt_engine.config import TrainConfig
from mrt_engine.config.presets import shipped_config
from mrt_engine.engine import SamplingParams
from mrt_engine.experiments.compare.evaluate import measuring_estimator_config
from mrt_engine.progress import progress_reliability
from mrt_engine.rl.rollout import sample_groups
from mrt_engine.rl.rollout_progress import build_estimator, estimate_progress
from mrt_engine.trainer import Trainer

args = [a for a in sys.argv[1:] if not a.startswith("--")]
num_samples = int(args[0]) if args else 4
num_branches = int(args[1]) if len(args) > 1 else 8
old = "--with-sft-problems" in sys.argv
torch.set_num_threads(1)
d = shipped_config("compare")
d["output_dir"] = "runs/measure_digit_reliability"
d["data"]["exclude_warm_start"] = not old
trainer = Trainer(TrainConfig.from_dict(d))
cfg, tok = trainer.cfg, trainer.tok
problems = trainer.eval_problems
t0 = time.perf_counter()
sampling = SamplingParams(max_tokens=cfg.rollout.max_tokens, temperature=cfg.rollout.eval_temperature,
                          top_p=cfg.rollout.top_p, seed=20_000)  # the seed compare's seed-0 measurement uses
trainer.model.eval()
with torch.no_grad():
    samples = sample_groups(trainer.backend, tok, problems, n=num_samples, sampling=sampling,
                            system=cfg.data.system_prompt)
    estimator = build_estimator(trainer.model, tok, measuring_estimator_config(cfg, num_branches), trainer.backend)
    results = estimate_progress(estimator, tok, samples, seed=20_007)
seconds = time.perf_counter() - t0
as_before = [dataclasses.replace(r, natural_end=None, scores=r.scores[:-1] + [r.scores[-1] * num_branches])
             if r.natural_end == "outcome" and r.natural_end_included else r for r in results]
now, before = progress_reliability(results), progress_reliability(as_before)
pass1 = sum(s.reward for s in samples) / len(samples)
episodes = sum(r.num_episodes for r in results) / len(results)
print(f"{len(problems)} held-out problems ({'deduplicated against the RL problems only' if old else 'disjoint from the RL and SFT problems'}) x "
      f"{num_samples} samples, {num_branches} forced answers per cut: pass@1 {pass1:.3f}, {episodes:.2f} episodes "
      f"per trace ({seconds:.0f} s)")
print("forced cuts only (now):     ", now.summary())
print("outcome episode counted (before):", before.summary())
