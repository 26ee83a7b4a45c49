"""The measured example of docs/progress.md "How reliable is progress?": SmolLM2-135M on `chain`
solution traces, 8 vs 32 branches and score mode. `python scripts/measure_progress_reliability.py [num_traces]`."""
import sys, time
import torch
from mrt_engine.models import load_model
from mrt_engine.progress import ProgressEstimator, progress_reliability, reliability_from_two
from mrt_engine.tasks import make_problems, solution_trace

N = int(sys.argv[1]) if len(sys.argv) > 1 else 8
torch.set_num_threads(1)  # two threads beside another busy process stall every small op (docs/progress.md)
model, tok = load_model("smollm2-135m")
probs = make_problems("chain", N, seed=0)
P = [p.problem for p in probs]; T = [solution_trace(p, seed=0) for p in probs]; A = [p.answer for p in probs]
common = dict(template="boxed", max_cuts=4, natural_end="close", show_progress=False)
t0 = time.time()
s8 = ProgressEstimator(model, tok, mode="sample", num_branches=8, seed=0, **common).estimate(P, T, A)
t1 = time.time()
s8b = ProgressEstimator(model, tok, mode="sample", num_branches=8, seed=1, **common).estimate(P, T, A)
many = ProgressEstimator(model, tok, mode="sample", num_branches=32, seed=2, **common).estimate(P, T, A)
t2 = time.time()
sc = ProgressEstimator(model, tok, mode="score", **common).estimate(P, T, A)
print(f"{N} traces, {sum(len(r.j) for r in s8)} cuts, {sum(r.num_episodes for r in s8)} episodes; "
      f"8-branch run {t1-t0:.0f}s, rest {t2-t1:.0f}s")
print("8 branches split-half:", progress_reliability(s8).summary())
print("8 branches, two seeds:", reliability_from_two(s8, s8b).summary())
print("32 branches split-half:", progress_reliability(many).summary())
print("score:", progress_reliability(sc).summary())

def ranks(x):
    order = sorted(range(len(x)), key=lambda i: x[i]); r = [0.0] * len(x); i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and x[order[j + 1]] == x[order[i]]: j += 1
        for k in range(i, j + 1): r[order[k]] = (i + j) / 2
        i = j + 1
    return r

def spearman(a, b):
    ra, rb = ranks(a), ranks(b); n = len(a); ma, mb = sum(ra) / n, sum(rb) / n
    cov = sum((x - ma) * (y - mb) for x, y in zip(ra, rb)); va = sum((x - ma) ** 2 for x in ra); vb = sum((y - mb) ** 2 for y in rb)
    return cov / (va * vb) ** 0.5 if va and vb else float("nan")

jm = [j for r in many for j in r.j]; js = [j for r in sc for j in r.j]; j8 = [j for r in s8 for j in r.j]
print(f"J across cuts: Spearman(score, 32-sample) {spearman(js, jm):.3f}; Spearman(8-sample, 32-sample) {spearman(j8, jm):.3f}")
print(f"mean J: score {sum(js)/len(js):.4f}, 32-sample {sum(jm)/len(jm):.4f}, 8-sample {sum(j8)/len(j8):.4f}")
