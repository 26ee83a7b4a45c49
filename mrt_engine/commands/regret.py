"""``mrt-engine regret``: normalized regret at token budgets (and envelope regret vs maj@k)
from a ``progress.jsonl`` written by ``mrt-engine progress``."""
from __future__ import annotations

import json

from mrt_engine.errors import MRTUserError, user_input
from mrt_engine.progress import ProgressResult, token_curve
from mrt_engine import metrics
from mrt_engine.grading import is_equiv
from mrt_engine.plots import plot_progress

DEFAULT_BUDGETS = (4096, 8192, 12288, 16384)  # the authors' budgets (docs/method.md section 7)


def add_parser(sub) -> None:
    p = sub.add_parser("regret", help="regret metrics and plots from progress.jsonl", description=__doc__)
    p.add_argument("--progress", required=True, help="progress.jsonl from `mrt-engine progress`")
    p.add_argument("--budgets", default=None,
                   help="comma-separated token budgets (default: the authors' 4096,8192,12288,16384)")
    p.add_argument("--plot", default=None, help="write a PNG: J vs episode, J vs tokens, regret vs budget")
    p.add_argument("--out", default=None, help="write the summary as JSON here")
    p.add_argument("--math-equiv", action="store_true",
                   help="cluster answers for maj@k by math equivalence (mrt_engine.grading.is_equiv)")
    p.set_defaults(func=run)


def read_results(path: str):
    results = []
    with user_input("--progress"), open(path) as fh:
        for n, line in enumerate(fh, 1):
            if line.strip():
                with user_input(f"{path}:{n}", kinds=(ValueError, TypeError, KeyError)):
                    results.append(ProgressResult.from_json(json.loads(line)))
    if not results:
        raise MRTUserError(f"{path}: no records; write it with `mrt-engine progress`")
    return results


def summarize(results, budgets, *, equiv=None) -> dict:
    """Mean normalized regret per budget, progress statistics, and (sample mode with answers)
    the mean envelope regret against parallel maj@k from every cut."""

    curves = [token_curve(r) for r in results]
    out = {"num_traces": len(results),
           "normalized_regret": {str(int(b)): v for b, v in metrics.mean_normalized_regret(curves, budgets).items()}}
    progress = [p for r in results for p in r.progress]
    out["num_episodes"] = len(progress)
    out["mean_progress"] = sum(progress) / len(progress) if progress else None
    out["fraction_positive_progress"] = sum(p > 0 for p in progress) / len(progress) if progress else None
    out["mean_j_first"] = sum(r.j[0] for r in results) / len(results)
    out["mean_j_last"] = sum(r.j[-1] for r in results) / len(results)
    graded = [r.outcome for r in results if r.outcome is not None]
    out["mean_outcome"] = sum(graded) / len(graded) if graded else None
    envelope = []
    for r, (tokens, j) in zip(results, curves):
        if r.answers is None or r.scores is None:
            continue
        n = min(len(s) for s in r.scores)
        ks = [k for k in (1, 2, 4, 8) if k <= n]
        maj = [{k: metrics.maj_at_k(a, [s > 0.5 for s in sc], k, equiv=equiv) for k in ks}
               for a, sc in zip(r.answers, r.scores)]
        # k parallel answers from a cut cost (k - 1) more answers of the mean sampled length.
        answer_len = r.answer_tokens or [0.0] * len(tokens)
        comps = metrics.parallel_majority_curves(tokens, answer_len, maj)
        envelope.append(metrics.envelope_regret(tokens, j, comps).regret)
    if envelope:
        out["envelope_regret_vs_maj"] = sum(envelope) / len(envelope)
    return out


def run(args) -> int:
    results = read_results(args.progress)
    with user_input("--budgets"):
        budgets = [float(b) for b in args.budgets.split(",")] if args.budgets else list(DEFAULT_BUDGETS)
    equiv = None
    if args.math_equiv:
        equiv = is_equiv
    summary = summarize(results, budgets, equiv=equiv)
    width = max(len(k) for k in summary)
    for key, value in summary.items():
        print(f"{key:<{width}}  {value}")
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(summary, fh, indent=2)
    if args.plot:
        regret = {float(b): v for b, v in summary["normalized_regret"].items()}
        plot_progress(results, args.plot, regret=regret, title=args.progress)
        print(f"plot written to {args.plot}")
    return 0
