"""The `bisect` regime's warm-start gates on its own designed traces, before any model exists:
`python scripts/simulate_bisect_gates.py [--rule design|uniform] [--problems N] [--max-tokens T]`
(``--credit``: how the credit forms treat a redundant episode instead, see ``credit_signal``).

Why it exists: the forced-answer rule of `bisect` departs from the prereg draft (a uniform guess
among the candidates left) because of gate 6 (docs/prereg/doubt_bisect.md, Deviations
2026-12-05); this script is the measurement behind that entry.

The "model" here follows the design exactly: its completions are the task's own solution traces
(4 per problem, seeds 4i..4i+3), cut at the rollout budget (success = the trace fits), and its
forced answers at every cut are drawn like the measuring estimator draws them (8 per cut, sample
i from one uniform u_i shared by every cut of the trace: the engine inverts the CDF of the
answer's distribution with the same uniforms at every cut of a trace, see progress/sample.py and
engine/sampler.py):

- ``design``: the rule of ``forced_answer``: the lowest candidate left; of two left, lo or hi by u_i;
- ``uniform``: the prereg draft: lo + floor(u_i * n) of the n candidates left.

It prints what gates 1-4 and 6 read: pass@1, J at the empty prefix, redundant fraction, episodes
per trace, whether median J rises in episodes 1-3 (over the traces whose cut k is forced, as
mrt_engine/experiments/gates.py reads it), the share of hard problems whose 4 traces all fail,
and the split-half reliability of progress over the episodes between forced cuts (even / odd
answers, Pearson r and Spearman-Brown 2r / (1 + r)). A real warm start adds its own errors.
"""
import argparse
import itertools
import math
import random
import statistics

from mrt_engine.episodes import segment
from mrt_engine.rl.rewards import centred_progress
from mrt_engine.tasks import bisect as B
from mrt_engine.tasks import make_problems, solution_trace


def guess(rule: str, lo: int, hi: int, u: float) -> int:
    n = hi - lo + 1
    if rule == "uniform" or n == 2:
        return lo + int(u * n)
    return lo


def pearson(a: list[float], b: list[float]) -> float:
    ma, mb = sum(a) / len(a), sum(b) / len(b)
    cov = sum((x - ma) * (y - mb) for x, y in zip(a, b))
    va, vb = sum((x - ma) ** 2 for x in a), sum((y - mb) ** 2 for y in b)
    return cov / math.sqrt(va * vb) if va > 0 and vb > 0 else float("nan")


def simulate(rule: str, num_problems: int, max_tokens: int, *, samples: int = 4, branches: int = 8,
             seed: int = 1) -> dict:
    rng = random.Random(seed)
    problems = make_problems("bisect", num_problems, seed=10_008)
    curves, success, strata, groups, half_a, half_b = [], [], [], [], [], []
    episodes = redundant = 0
    for g, p in enumerate(problems):
        x = int(p.answer)
        for s in range(samples):
            full = solution_trace(p, seed=samples * g + s)
            trace = full[:max_tokens]  # one token per character
            mech = B.BISECT.mechanism(p, trace)
            episodes += mech["episodes"]
            redundant += mech["redundant"]
            cuts = [0] + [e.char_end for e in segment(trace, "r1")[:-1]]
            us = [rng.random() for _ in range(branches)]
            hits = [[guess(rule, *B.candidates_left(p, trace[:c]), u) == x for u in us] for c in cuts]
            curves.append([sum(h) / branches for h in hits])
            ja = [sum(h[0::2]) / len(h[0::2]) for h in hits]
            jb = [sum(h[1::2]) / len(h[1::2]) for h in hits]
            half_a += [v - u for u, v in itertools.pairwise(ja)]
            half_b += [v - u for u, v in itertools.pairwise(jb)]
            success.append(len(full) + 1 <= max_tokens)  # + EOS
            strata.append(p.meta["stratum"])
            groups.append(g)
    rises, medians = [], []
    for k in (1, 2, 3):
        reach = [c for c in curves if len(c) > k]
        pair = (statistics.median(c[k - 1] for c in reach), statistics.median(c[k] for c in reach)) if reach else None
        medians.append(pair)
        rises.append(pair is not None and pair[1] > pair[0])
    hard = {}
    for g, st, ok in zip(groups, strata, success):
        if st == "hard":
            hard.setdefault(g, []).append(ok)
    r = pearson(half_a, half_b)
    return {"rule": rule, "max_tokens": max_tokens, "traces": len(curves),
            "pass@1": sum(success) / len(success),
            "pass@1 easy": statistics.mean(ok for ok, st in zip(success, strata) if st == "easy"),
            "pass@1 hard": statistics.mean(ok for ok, st in zip(success, strata) if st == "hard"),
            "j_empty": statistics.mean(c[0] for c in curves),
            "redundant_fraction": redundant / episodes, "episodes": episodes / len(curves),
            "median_rises": rises, "medians (cut k-1, cut k)": medians, "hard_all_fail": statistics.mean(not any(v) for v in hard.values()),
            "episodes_between_forced_cuts": len(half_a), "split_half_r": r, "spearman_brown": 2 * r / (1 + r)}


def exact_j(rule: str, lo: int, hi: int, x: int) -> float:
    """J at a state with candidates lo..hi, over the forced answers' own randomness."""
    n = hi - lo + 1
    if rule == "uniform" or n <= 2:
        return 1.0 / n
    return float(lo == x)


def credit_signal(rule: str, num_problems: int, max_tokens: int, *, samples: int = 4) -> dict:
    """Where the credit forms can tell a redundant episode from a useful one (``--credit``; a
    reading after the comparison, not part of the prereg): groups of ``samples`` designed traces
    per problem cut at the budget, exact J at every cut (the last: the trace's outcome, as the
    estimator's natural end), centred progress from ``rl.rewards.centred_progress``,
    and GRPO's outcome advantage (outcome minus the group mean). Per redundant episode: is its
    centred credit below 0, is its trace's outcome advantage below 0, and is its group all-equal
    in outcome (GRPO gives it nothing)."""
    problems = make_problems("bisect", num_problems, seed=10_008)
    counts = {"redundant": 0, "centred < 0": 0, "centred = 0": 0, "outcome adv < 0": 0, "group all equal": 0,
              "neither": 0}
    for g, p in enumerate(problems):
        x = int(p.answer)
        rows, outcomes, flags = [], [], []
        for s in range(samples):
            full = solution_trace(p, seed=samples * g + s)
            trace = full[:max_tokens]
            ok = len(full) + 1 <= max_tokens
            episodes = segment(trace, "r1")
            cuts = [0] + [e.char_end for e in episodes[:-1]]
            j = [exact_j(rule, *B.candidates_left(p, trace[:c]), x) for c in cuts] + [float(ok)]
            rows.append([b - a for a, b in itertools.pairwise(j)])
            outcomes.append(float(ok))
            applied, f = set(), []
            for e in episodes:
                nums = {m.group(1) for m in B._APPLY.finditer(e.text)}
                f.append(bool(nums) and nums <= applied)
                applied |= nums
            flags.append(f)
        mean_r = statistics.mean(outcomes)
        centred = centred_progress(rows, [g] * samples)  # the trainer's own function, one group
        for i in range(samples):
            for k, red in enumerate(flags[i]):
                if not red:
                    continue
                c = float(centred[i][k])
                counts["redundant"] += 1
                counts["centred < 0"] += c < -1e-9
                counts["centred = 0"] += abs(c) <= 1e-9
                counts["outcome adv < 0"] += outcomes[i] - mean_r < 0
                counts["group all equal"] += len(set(outcomes)) == 1
                counts["neither"] += c >= -1e-9 and outcomes[i] - mean_r >= 0
    n = counts.pop("redundant")
    return {"rule": rule, "max_tokens": max_tokens, "redundant episodes": n,
            **{f"share with {k}" if k != "neither" else "share no credit form penalises": v / n
               for k, v in counts.items()}}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rule", choices=("design", "uniform"), default="design")
    ap.add_argument("--problems", type=int, default=500)
    ap.add_argument("--max-tokens", type=int, default=B.ROLLOUT_MAX_TOKENS)
    ap.add_argument("--credit", action="store_true",
                    help="instead of the gates: how centred progress and the outcome credit a redundant episode")
    args = ap.parse_args()
    out = (credit_signal if args.credit else simulate)(args.rule, args.problems, args.max_tokens)
    for k, v in out.items():
        print(f"{k}: {v:.3f}" if isinstance(v, float) else f"{k}: {v}")


if __name__ == "__main__":
    main()
