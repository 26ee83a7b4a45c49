"""What ``bench/gpu_full.sh`` leaves in ``$OUT`` after every stage: the throughput rows of all
stages in one CSV, and the summary (stage status against its budget, the throughput table
against the floors at the measured ceilings, kernels, host vs device). Standard library only,
so packing costs nothing beside the stages.

    python -m bench.tools.gpu_full_report --work WORK --out OUT [--final]

``WORK`` holds ``stages.tsv`` (name, rc, seconds, budget per finished stage), ``env.txt``,
``ceilings.json``, ``floors.json``, ``throughput_<stage>/throughput.csv``,
``kernels/kernels_summary.txt`` and ``profile.log``.
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

LIMIT_S = 540  # the script's budgets must sum under 9 minutes: one device call, a rerun's time left


def read_stages(work: Path) -> list[dict]:
    rows = []
    path = work / "stages.tsv"
    if path.exists():
        for line in path.read_text().splitlines():
            name, rc, seconds, budget = line.split("\t")[:4]
            rows.append(dict(name=name, rc=int(rc), seconds=int(seconds), budget=int(budget)))
    return rows


def merge_throughput(work: Path, out: Path) -> list[dict]:
    """Every ``throughput_*/throughput.csv`` (in stage order) -> ``out/throughput.csv``; the rows."""
    rows, fields = [], None
    for csv_path in sorted(work.glob("throughput_*/throughput.csv"), key=lambda p: p.stat().st_mtime):
        with open(csv_path, newline="") as f:
            reader = csv.DictReader(f)
            fields = fields or reader.fieldnames
            rows += list(reader)
    if fields:
        with open(out / "throughput.csv", "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
            w.writeheader()
            w.writerows(rows)
    return rows


def error_rows(work: Path, stage: str) -> list[dict]:
    """Rows with status ``error`` in a stage's CSV (``preflight`` or ``throughput_<stage>``)."""
    path = work / ("preflight" if stage == "preflight" else f"throughput_{stage}") / "throughput.csv"
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return [r for r in csv.DictReader(f) if r.get("status") == "error"]


def _cell(x: str, width: int) -> str:
    return (x or "-")[:width].ljust(width)


def throughput_table(rows: list[dict]) -> list[str]:
    lines = [f"{'stage':<34} {'method':<30} {'median s':>9} {'tokens/s':>10} {'x floor':>8} {'% ceil':>6}  "
             f"speed-up / status"]
    for r in rows:
        if r.get("role") == "share":
            continue
        over = r.get("median_over_floor") or ""
        share = f"{100 / float(over):.1f}" if over and float(over) > 0 else "-"
        if r.get("status") != "ok":
            tail = f"{r.get('status')}: {r.get('reason', '')}"[:90]
        else:
            tail = (r.get("speedup_vs") or "baseline").replace(";", ", ")
        lines.append(f"{_cell(r.get('stage', ''), 34)} {_cell(r.get('method', ''), 30)} "
                     f"{(r.get('median_s') or '-'):>9} {(r.get('tokens_per_s') or '-'):>10} {over or '-':>8} "
                     f"{share:>6}  {tail}")
    return lines


def summary(work: Path, out: Path, *, budgets: dict[str, int], started: float | None, now: float | None,
            final: bool) -> str:
    stages = read_stages(work)
    rows = merge_throughput(work, out)
    total = sum(budgets.values())
    head = "gpu_full summary" if final else "gpu_full summary (in progress)"
    elapsed = f"{now - started:.0f} s; " if started and now else ""
    lines = [f"================ {head} ({elapsed}budgets {total} s of {LIMIT_S}) ================"]
    env = work / "env.txt"
    if env.exists():
        lines += [line for line in env.read_text().splitlines() if line.strip()][:8]
    ceilings = work / "ceilings.json"
    if ceilings.exists():
        c = json.loads(ceilings.read_text())
        lines.append(f"measured ceilings: {c['dtype']} GEMM {c['gemm_n']}^3 {c['flops_per_s'] / 1e12:.1f} TFLOP/s, "
                     f"device copy {c['bytes_per_s'] / 1e12:.3f} TB/s (rows' 'x floor' and '% ceil' are against these)")
    lines.append("")
    lines.append(f"{'stage':<11} {'status':<8} {'time/budget':>12}")
    done, failed = set(), []
    for s in stages:
        errors = len(error_rows(work, s["name"]))
        status = "ok" if s["rc"] == 0 else ("TIMEOUT" if s["rc"] in (124, 137) else f"rc {s['rc']}")
        status = f"{errors} error rows" if status == "ok" and errors else status
        failed += [] if status == "ok" else [f"{s['name']} ({status})"]
        lines.append(f"{s['name']:<11} {status:<8} {s['seconds']:>5}/{s['budget']:<4} s")
        done.add(s["name"])
    lines += [f"{name:<11} {'not run':<8} {'-':>5}/{b:<4} s" for name, b in budgets.items() if name not in done]
    lines.append(f"budget_total_s={total} limit_s={LIMIT_S}")
    floors = work / "floors.json"
    if floors.exists():
        f = json.loads(floors.read_text())
        lines.append(f"\nfloors of {f['model']} ({f['params'] / 1e9:.3f} B parameters, "
                     f"{f['forward_flops_per_token'] / 1e9:.2f} GFLOP/token forward), workload {f['workload']}:")
        lines += [f"  {r['stage']:<15} {1e3 * r['floor_s']:9.2f} ms {r['bound']:<7} memory {r['memory'] / 2**30:6.2f} GiB"
                  for r in f["stages"]]
    if rows:
        lines += ["", "throughput:"] + throughput_table(rows)
        shares = [r for r in rows if r.get("role") == "share"]
        if shares:
            lines.append("step shares: " + ", ".join(f"{r['method']} {r['note'].split('%')[0]}%" for r in shares))
    kern = work / "kernels" / "kernels_summary.txt"
    if kern.exists():
        lines += ["", "kernels:"] + [line[:200] for line in kern.read_text().splitlines()]
    prof = work / "profile.log"
    if prof.exists():
        host = [line for line in prof.read_text().splitlines() if line.startswith(("host vs device", "== "))]
        lines += ["", "profile:"] + host
    bad = error_rows(work, "preflight")
    if (work / "preflight").exists():
        lines.append(f"\npreflight rows with errors: {len(bad)}"
                     + "".join(f"\n  {r['stage']} {r['method']}: {r['reason']}" for r in bad))
    if final:
        lines.append(f"\n{'all stages ran, no row failed' if not failed else 'FAILED: ' + '; '.join(failed)}; "
                     f"{len(list(out.iterdir())) + (not (out / 'summary.txt').exists())} files in {out}")
    text = "\n".join(lines) + "\n"
    (out / "summary.txt").write_text(text)
    return text, bool(failed)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--budgets", required=True, help="name:seconds,... in run order")
    ap.add_argument("--started", type=float, default=None)
    ap.add_argument("--now", type=float, default=None)
    ap.add_argument("--final", action="store_true", help="print the summary too")
    args = ap.parse_args(argv)
    budgets = {k: int(v) for k, v in (kv.split(":") for kv in args.budgets.split(","))}
    text, failed = summary(Path(args.work), Path(args.out), budgets=budgets, started=args.started, now=args.now,
                           final=args.final)
    if args.final:
        print(text, end="")
    return int(failed)


if __name__ == "__main__":
    sys.exit(main())
