"""Shared benchmark harness: interleaved timing, peak memory, FLOP/byte counts, CSV, PNG.

Every benchmark under ``bench/`` measures *ratios* (ours vs a baseline, same inputs, in one
run): cases are run interleaved (A B C, B C A, C A B, ...) so that load from other
processes on a shared machine hits every side alike, each ``repeats`` times, and the
median is reported. See ``docs/benchmarks.md`` and ``../shared/docs/performance.md``.

Nothing here imports matplotlib or tqdm at module load: the vLLM worker subprocess imports
this file from a virtualenv that may lack them.
"""
from __future__ import annotations

import csv
import datetime as _dt
import importlib.metadata
import math
import os
import platform
import statistics
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import torch

# -- results ------------------------------------------------------------------------------

OK, UNAVAILABLE, ERROR = "ok", "unavailable", "error"


@dataclass
class Result:
    """One row of a benchmark: one method of one stage, measured ``len(times_s)`` times.

    ``role`` is ``"ours"`` or ``"baseline"``; ratios are ours-vs-each-baseline of the same
    stage. ``status`` says why a row has no numbers (``unavailable`` = a component or
    baseline is not installed or not merged yet; ``error`` = it raised), with ``reason``.
    """

    stage: str
    method: str
    role: str
    status: str = OK
    reason: str = ""
    times_s: list[float] = field(default_factory=list)
    num_tokens: int = 0          # tokens processed per call (generated, scored or trained on)
    num_episodes: int = 0        # episodes (cuts) scored, traces generated, ... per call
    peak_mem_bytes: int | None = None  # above what was resident before the call
    flops: float | None = None   # model FLOPs this method's algorithm does (theory ratio = base / ours)
    min_flops: float | None = None  # fewest FLOPs the task needs (the floor; default: flops)
    min_bytes: float | None = None  # fewest bytes the task must move
    compare: str = "auto"        # "time": ratio of medians; "auto": tokens/s when token counts differ
    workload: str = ""           # short description of the inputs
    note: str = ""

    @property
    def median_s(self) -> float | None:
        return statistics.median(self.times_s) if self.times_s else None

    @property
    def tokens_per_s(self) -> float | None:
        m = self.median_s
        return self.num_tokens / m if m and self.num_tokens else None

    @property
    def episodes_per_s(self) -> float | None:
        m = self.median_s
        return self.num_episodes / m if m and self.num_episodes else None


def ratios(results: list[Result]) -> dict[tuple[str, str], dict[str, float]]:
    """{(stage, our method): {baseline method: speed-up}}.

    Speed-up = baseline median / our median when both did the same work; when their token
    counts differ (a generator that stopped early), the ratio of tokens per second.
    """
    out: dict[tuple[str, str], dict[str, float]] = {}
    for ours in results:
        if ours.role != "ours" or ours.median_s is None:
            continue
        r = {}
        for base in results:
            if base.stage == ours.stage and base.role == "baseline" and base.median_s is not None:
                per_token = "time" not in (ours.compare, base.compare)
                if per_token and ours.num_tokens and base.num_tokens and ours.num_tokens != base.num_tokens:
                    r[base.method] = ours.tokens_per_s / base.tokens_per_s
                else:
                    r[base.method] = base.median_s / ours.median_s
        out[(ours.stage, ours.method)] = r
    return out


def theory_ratios(results: list[Result]) -> dict[tuple[str, str], dict[str, float]]:
    """{(stage, our method): {baseline: baseline FLOPs / our FLOPs}}: the speed-up that the
    work saved alone predicts (when both are compute-bound), to hold the measured one against."""
    out: dict[tuple[str, str], dict[str, float]] = {}
    for ours in results:
        if ours.role != "ours" or not ours.flops:
            continue
        out[(ours.stage, ours.method)] = {b.method: b.flops / ours.flops for b in results
                                          if b.stage == ours.stage and b.role == "baseline" and b.flops}
    return out


def floor_of(r: Result, peaks: "DevicePeaks | None") -> float | None:
    if peaks is None:
        return None
    return peaks.floor_s(r.min_flops if r.min_flops is not None else r.flops, r.min_bytes)


# -- timing -------------------------------------------------------------------------------

def synchronize(device: torch.device | str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def run_interleaved(cases: dict[str, Callable[[], object]], *, repeats: int, warmup: int = 1,
                    device: str | torch.device = "cpu", on_step: Callable[[str], None] | None = None,
                    on_error: Callable[[str, BaseException], None] | None = None,
                    before: dict[str, Callable[[], object]] | None = None) -> dict[str, list[float]]:
    """Time each zero-argument callable ``repeats`` times, interleaved; returns seconds per case.

    The order rotates every round (A B C, B C A, C A B) so that no case always runs right
    after the same neighbour (cache and clock-boost effects). ``warmup`` untimed rounds go
    first (compilation, allocator growth, lazy imports). A case that raises is dropped from
    later rounds and reported through ``on_error``; the others carry on. ``before[name]``,
    when given, runs untimed before each call of that case (e.g. to empty a prefix cache, so
    that a repeat does not find the previous round's work cached).
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    names = list(cases)
    times: dict[str, list[float]] = {n: [] for n in names}
    failed: set[str] = set()
    for rnd in range(warmup + repeats):
        shift = rnd % len(names) if names else 0
        for name in names[shift:] + names[:shift]:
            if name in failed:
                continue
            try:
                if before and name in before:
                    before[name]()
                synchronize(device)
                t0 = time.perf_counter()
                cases[name]()
                synchronize(device)
                dt = time.perf_counter() - t0
            except Exception as exc:  # noqa: BLE001 - one broken case must not hide the others
                failed.add(name)
                if on_error is not None:
                    on_error(name, exc)
                else:
                    raise
                continue
            if rnd >= warmup:
                times[name].append(dt)
            if on_step is not None:
                on_step(name)
    return times


# -- peak memory --------------------------------------------------------------------------

def _proc_status_bytes(key: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


_MALLOC_TUNED = False


def _tune_malloc() -> None:
    """Make glibc hand big frees back to the OS, so resident-set peaks track live tensors.

    By default glibc raises its mmap threshold after each large free (up to 32 MiB) and
    keeps freed heap memory resident; then a later call's peak hides inside memory an
    earlier call left behind. A fixed 1 MiB threshold makes the RSS high-water mark a
    faithful peak for torch's CPU allocator (which does not cache).
    """
    global _MALLOC_TUNED
    if _MALLOC_TUNED:
        return
    _MALLOC_TUNED = True
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 1 << 20)  # M_MMAP_THRESHOLD
        libc.mallopt(-1, 1 << 20)  # M_TRIM_THRESHOLD
    except OSError:
        pass


def measure_peak_memory(fn: Callable[[], object], device: str | torch.device) -> int | None:
    """Peak memory of one call of ``fn`` above what was in use just before, in bytes.

    CUDA: ``torch.cuda.max_memory_allocated``. CPU (Linux): the process's resident-set
    high-water mark (VmHWM, reset through /proc/self/clear_refs) minus the resident set
    before the call. Returns None where neither is available.
    """
    dev = torch.device(device)
    if dev.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        fn()
        torch.cuda.synchronize()
        return int(torch.cuda.max_memory_allocated() - before)
    _tune_malloc()
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset VmHWM to the current RSS
    except OSError:
        fn()
        return None
    before = _proc_status_bytes("VmRSS")
    fn()
    peak = _proc_status_bytes("VmHWM")
    if before is None or peak is None:
        return None
    return max(0, peak - before)


# -- FLOP and byte counts -----------------------------------------------------------------

@dataclass(frozen=True)
class ModelDims:
    """The numbers that set a decoder's FLOP and byte counts (Llama / Qwen2 family)."""

    num_layers: int
    hidden_size: int
    intermediate_size: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    vocab_size: int
    tied_embeddings: bool = True

    @classmethod
    def from_config(cls, cfg) -> "ModelDims":
        num_heads = cfg.num_attention_heads
        return cls(
            num_layers=cfg.num_hidden_layers, hidden_size=cfg.hidden_size,
            intermediate_size=cfg.intermediate_size, num_heads=num_heads,
            num_kv_heads=getattr(cfg, "num_key_value_heads", None) or num_heads,
            head_dim=getattr(cfg, "head_dim", None) or cfg.hidden_size // num_heads,
            vocab_size=cfg.vocab_size, tied_embeddings=bool(getattr(cfg, "tie_word_embeddings", False)))

    @property
    def layer_params(self) -> int:
        """Matmul weights of one layer: q, k, v, o projections and the gated MLP."""
        h, d = self.hidden_size, self.head_dim
        attn = h * self.num_heads * d + 2 * h * self.num_kv_heads * d + self.num_heads * d * h
        return attn + 3 * h * self.intermediate_size

    @property
    def body_params(self) -> int:
        """Matmul weights of all layers (no embedding, no LM head, norms ignored)."""
        return self.num_layers * self.layer_params

    @property
    def head_params(self) -> int:
        return self.vocab_size * self.hidden_size

    @property
    def weight_params(self) -> int:
        """Parameters a forward step must read: body + LM head (+ embedding rows, negligible)."""
        return self.body_params + self.head_params

    def kv_bytes_per_token(self, dtype_bytes: int) -> int:
        return 2 * self.num_layers * self.num_kv_heads * self.head_dim * dtype_bytes


def attention_pairs_causal(seq_len: int, context: int = 0) -> int:
    """Query-key pairs when ``seq_len`` new tokens attend causally after ``context`` cached ones."""
    return seq_len * context + seq_len * (seq_len + 1) // 2


def forward_flops(dims: ModelDims, *, num_tokens: int, attention_pairs: int, lm_head_tokens: int) -> float:
    """FLOPs of a forward over ``num_tokens`` tokens (2 per multiply-add).

    Body matmuls ``2 * body_params`` per token; attention ``4 * layers * heads * head_dim``
    per query-key pair (QK^T and PV); the LM head ``2 * V * H`` per token whose logits are
    needed (scoring and training need them only at some rows).
    """
    body = 2 * dims.body_params * num_tokens
    attn = 4 * dims.num_layers * dims.num_heads * dims.head_dim * attention_pairs
    head = 2 * dims.head_params * lm_head_tokens
    return float(body + attn + head)


def decode_bytes(dims: ModelDims, *, num_steps: int, kv_tokens_read: int, dtype_bytes: int) -> float:
    """Fewest bytes a batched decode moves: the weights once per step plus every KV row read.

    ``kv_tokens_read`` = sum over steps and sequences of the context read; a shared prefix
    read once per group (cascade attention) counts once per group, not once per branch.
    """
    return float(dims.weight_params * dtype_bytes * num_steps + dims.kv_bytes_per_token(dtype_bytes) * kv_tokens_read)


def logprob_loss_flops(num_tokens: int, hidden_size: int, vocab_size: int) -> float:
    """log-prob of M targets + loss + backward through the LM head: 2MHV forward, 4MHV backward."""
    return 6.0 * num_tokens * hidden_size * vocab_size


def logprob_loss_bytes(num_tokens: int, hidden_size: int, vocab_size: int, dtype_bytes: int,
                       *, materialise_logits: bool) -> float:
    """Bytes moved by log-prob + loss + backward through the LM head.

    The floor (``materialise_logits=False``): read W forward and backward, write dW, read
    hidden and write its gradient. The plain ``log_softmax(x @ W.T).gather`` path also
    writes the ``[M, V]`` logits, reads and writes them in log_softmax, and reads and
    writes them again in the backward: about six ``[M, V]`` fp32 passes.
    """
    floor = 3 * vocab_size * hidden_size * dtype_bytes + 2 * num_tokens * hidden_size * dtype_bytes
    if not materialise_logits:
        return float(floor)
    return float(floor + 6 * num_tokens * vocab_size * 4)


# -- machine peaks (for floors) -----------------------------------------------------------

# Nominal dense peaks of GPUs we quote (performance.md); others are measured.
_NOMINAL_GPU = {"H200": (990e12, 4.8e12), "H100": (989e12, 3.35e12), "A100": (312e12, 2.0e12)}


@dataclass(frozen=True)
class DevicePeaks:
    flops_per_s: float
    bytes_per_s: float
    source: str  # "nominal <name>" or "measured"

    def floor_s(self, flops: float | None, nbytes: float | None) -> float | None:
        """The larger of FLOPs/peak and bytes/bandwidth: no implementation can beat it."""
        if flops is None and nbytes is None:
            return None
        return max((flops or 0.0) / self.flops_per_s, (nbytes or 0.0) / self.bytes_per_s)


def device_peaks(device: str | torch.device, dtype: torch.dtype, *, seconds: float = 0.3) -> DevicePeaks:
    """Nominal peaks for known GPUs, else a quick best-of measurement of matmul and copy.

    Measured on a shared CPU the numbers sag with load, like everything else in the run;
    they give the floor in the same conditions as the timings.
    """
    dev = torch.device(device)
    if dev.type == "cuda":
        name = torch.cuda.get_device_name(dev)
        for key, (flops, bw) in _NOMINAL_GPU.items():
            if key in name:
                return DevicePeaks(flops, bw, f"nominal {key}")
    n = 1024 if dev.type == "cpu" else 4096
    a = torch.randn(n, n, device=dev, dtype=dtype)
    b = torch.randn(n, n, device=dev, dtype=dtype)
    best_mm = _best_time(lambda: a @ b, dev, seconds)
    src = torch.empty(64 << 20, dtype=torch.uint8, device=dev)
    dst = torch.empty_like(src)
    best_cp = _best_time(lambda: dst.copy_(src), dev, seconds)
    return DevicePeaks(2 * n ** 3 / best_mm, 2 * src.numel() / best_cp, "measured")


def _best_time(fn, dev, seconds: float) -> float:
    fn()
    best, deadline = math.inf, time.perf_counter() + seconds
    while True:
        synchronize(dev)
        t0 = time.perf_counter()
        fn()
        synchronize(dev)
        best = min(best, time.perf_counter() - t0)
        if time.perf_counter() > deadline:
            return best


# -- machine and versions -----------------------------------------------------------------

def _version(pkg: str) -> str:
    try:
        return importlib.metadata.version(pkg)
    except importlib.metadata.PackageNotFoundError:
        return "-"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             cwd=Path(__file__).resolve().parent, timeout=5)
        return out.stdout.strip() or "-"
    except (OSError, subprocess.SubprocessError):
        return "-"


def machine_info(device: str | torch.device, dtype: torch.dtype, *, extra: dict | None = None) -> dict:
    """What the numbers depend on; written into every CSV row."""
    dev = torch.device(device)
    info = {
        "date_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M"),
        "machine": f"{platform.system()} {platform.machine()}, {_cpu_model()}, {os.cpu_count()} logical CPUs",
        "accelerator": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "none",
        "device": str(dev),
        "dtype": str(dtype).replace("torch.", ""),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": _version("transformers"),
        "triton": _version("triton"),
        "mrt_engine_commit": _git_commit(),
    }
    info.update(extra or {})
    return info


# -- output -------------------------------------------------------------------------------

CSV_FIELDS = ("stage", "method", "role", "status", "reason", "median_s", "num_repeats", "tokens_per_s",
              "episodes_per_s", "speedup_vs", "flop_ratio_vs", "peak_mem_mb", "flops", "min_flops", "min_bytes", "floor_s",
              "median_over_floor", "num_tokens", "num_episodes", "workload", "note", "times_s")


def result_rows(results: list[Result], peaks: DevicePeaks | None) -> list[dict]:
    rat, theo = ratios(results), theory_ratios(results)
    rows = []
    for r in results:
        floor = floor_of(r, peaks)
        sp = rat.get((r.stage, r.method), {})
        th = theo.get((r.stage, r.method), {})
        rows.append({
            "stage": r.stage, "method": r.method, "role": r.role, "status": r.status, "reason": r.reason,
            "median_s": _fmt(r.median_s, 6), "num_repeats": len(r.times_s),
            "tokens_per_s": _fmt(r.tokens_per_s, 2), "episodes_per_s": _fmt(r.episodes_per_s, 3),
            "speedup_vs": ";".join(f"{k}={v:.3f}" for k, v in sp.items()),
            "flop_ratio_vs": ";".join(f"{k}={v:.3f}" for k, v in th.items()),
            "peak_mem_mb": _fmt(None if r.peak_mem_bytes is None else r.peak_mem_bytes / 2**20, 1),
            "flops": _fmt(r.flops, 0, sci=True), "min_flops": _fmt(r.min_flops, 0, sci=True), "min_bytes": _fmt(r.min_bytes, 0, sci=True),
            "floor_s": _fmt(floor, 6),
            "median_over_floor": _fmt(r.median_s / floor if (floor and r.median_s) else None, 2),
            "num_tokens": r.num_tokens, "num_episodes": r.num_episodes, "workload": r.workload,
            "note": r.note, "times_s": " ".join(f"{t:.4f}" for t in r.times_s),
        })
    return rows


def _fmt(x, digits: int, sci: bool = False) -> str:
    if x is None:
        return ""
    return f"{x:.{max(digits, 3)}e}" if sci else f"{x:.{digits}f}"


def write_csv(path: str | Path, results: list[Result], meta: dict, peaks: DevicePeaks | None) -> Path:
    """One row per (stage, method); the machine/version/dtype/device columns repeat on each
    row so that a single row stays meaningful when copied out of the file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = result_rows(results, peaks)
    meta_cols = list(meta)
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(CSV_FIELDS) + meta_cols)
        w.writeheader()
        for row in rows:
            w.writerow({**row, **meta})
    return path


def format_table(results: list[Result], peaks: DevicePeaks | None = None) -> str:
    """A plain-text table: one line per (stage, method), ratios against every baseline."""
    header = ("stage", "method", "median s", "tokens/s", "episodes/s", "speed-up vs baselines (FLOP ratio)",
              "peak MB", "x floor", "status")
    lines = []
    for r in results:
        floor = floor_of(r, peaks)
        status = r.status if r.status == OK else f"{r.status}: {_one_line(r.reason)}"
        lines.append((
            r.stage, r.method, _num(r.median_s, 3), _num(r.tokens_per_s, 1), _num(r.episodes_per_s, 2),
            _speedups(r, results),
            _num(None if r.peak_mem_bytes is None else r.peak_mem_bytes / 2**20, 0),
            _num(r.median_s / floor if (floor and r.median_s) else None, 1), status))
    widths = [max(len(h), *(len(l[i]) for l in lines)) if lines else len(h) for i, h in enumerate(header)]
    widths[-1] = len(header[-1])  # the status column may be long: do not pad the others for it
    out = [" | ".join(h.ljust(w) for h, w in zip(header, widths))]
    out.append("-|-".join("-" * w for w in widths))
    out += [" | ".join(c.ljust(w) for c, w in zip(l, widths)) for l in lines]
    return "\n".join(out)


def format_markdown(results: list[Result], peaks: DevicePeaks | None = None) -> str:
    """The same table as Markdown, for docs/benchmarks.md and the README."""
    out = ["| stage | method | median s | tokens/s | episodes/s | speed-up vs baselines (FLOP ratio) | peak MB | x floor |",
           "|---|---|---|---|---|---|---|---|"]
    for r in results:
        floor = floor_of(r, peaks)
        if r.status != OK:
            out.append(f"| {r.stage} | {r.method} | {r.status}: {_one_line(r.reason).replace('|', '/')} | | | | | |")
            continue
        out.append("| " + " | ".join((
            r.stage, r.method, _num(r.median_s, 3), _num(r.tokens_per_s, 1), _num(r.episodes_per_s, 2),
            _speedups(r, results, bold=True),
            _num(None if r.peak_mem_bytes is None else r.peak_mem_bytes / 2**20, 0),
            _num(r.median_s / floor if (floor and r.median_s) else None, 1))) + " |")
    return "\n".join(out)


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _speedups(r: Result, results: list[Result], bold: bool = False) -> str:
    """"2.31x naive (FLOP 6.8x), 0.90x vLLM" for our rows; "baseline" for the others."""
    if r.role == "baseline":
        return "baseline"
    sp = ratios(results).get((r.stage, r.method), {})
    th = theory_ratios(results).get((r.stage, r.method), {})
    parts = []
    for k, v in sp.items():
        num = f"**{v:.2f}x**" if bold else f"{v:.2f}x"
        parts.append(f"{num} {k}" + (f" (FLOP {th[k]:.1f}x)" if k in th and abs(th[k] - 1) > 0.05 else ""))
    return ", ".join(parts) or "-"


def _num(x, digits: int) -> str:
    return "-" if x is None else f"{x:,.{digits}f}"


def plot_png(path: str | Path, results: list[Result], *, title: str, shares: dict[str, float] | None = None) -> Path:
    """Bar chart: speed-up of each of our methods over each baseline, per stage (log scale),
    plus, when given, the share of an MRT step's time each stage takes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rat = ratios(results)
    bars = [(f"{stage}\n{ours} vs {base}", v) for (stage, ours), r in rat.items() for base, v in r.items()]
    mem = [(f"{r.stage}\n{r.method}", r.peak_mem_bytes / 2**20) for r in results
           if r.peak_mem_bytes is not None and r.status == OK]
    ncols = 1 + bool(shares) + bool(mem)
    fig, axes = plt.subplots(1, ncols, figsize=(6.5 * ncols, 0.55 * max(len(bars), len(mem), 4) + 1.5),
                             squeeze=False)
    ax = axes[0][0]
    if bars:
        labels, values = zip(*bars)
        ypos = range(len(bars))
        colors = ["tab:green" if v >= 1 else "tab:red" for v in values]
        # Bars grow from 1x (no change) towards the ratio: right = faster, left = slower.
        ax.barh(list(ypos), [v - 1.0 for v in values], left=1.0, color=colors)
        ax.set_yticks(list(ypos), labels, fontsize=7)
        ax.invert_yaxis()
        ax.set_xscale("log")
        lo, hi = min(0.5, min(values) / 1.5), max(2.0, max(values) * 2.5)
        ax.set_xlim(lo, hi)
        ticks = [t for t in (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500) if lo <= t <= hi]
        ax.set_xticks(ticks, [f"{t:g}x" for t in ticks])
        ax.minorticks_off()
        ax.axvline(1.0, color="black", lw=0.8)
        for y, v in zip(ypos, values):
            ax.text(v, y, f" {v:.2f}x", va="center", fontsize=7)
    else:
        ax.text(0.5, 0.5, "no ratio measured (components unavailable)", ha="center", va="center")
    ax.set_xlabel("speed-up (baseline median / ours), log scale")
    ax.set_title("ours vs baselines, same run, medians", fontsize=9)
    if mem:
        axm = axes[0][1]
        labels, values = zip(*mem)
        axm.barh(list(range(len(mem))), values, color="tab:purple")
        axm.set_yticks(list(range(len(mem))), labels, fontsize=7)
        axm.invert_yaxis()
        for y, v in enumerate(values):
            axm.text(v, y, f" {v:,.0f}", va="center", fontsize=7)
        axm.set_xlabel("peak memory above resident, MB")
        axm.set_title("peak memory of one call", fontsize=9)
    if shares:
        ax2 = axes[0][ncols - 1]
        names, vals = zip(*shares.items())
        ax2.barh(list(range(len(names))), [100 * v for v in vals], color="tab:blue")
        ax2.set_yticks(list(range(len(names))), names, fontsize=8)
        ax2.invert_yaxis()
        ax2.set_xlabel("% of one MRT training step")
        ax2.set_title("where an MRT step spends its time", fontsize=9)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def progress_bar(total: int, desc: str, enabled: bool = True):
    """A tqdm bar on stderr (a no-op object when tqdm is missing or disabled)."""
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover - tqdm is a dependency; keep the benchmark usable without it
        enabled = False
    if not enabled:
        return _NoBar()
    return tqdm(total=total, desc=desc, unit="run", dynamic_ncols=True, leave=True)


class _NoBar:
    def update(self, n: int = 1) -> None: ...
    def set_description(self, desc: str) -> None: ...
    def set_postfix_str(self, s: str) -> None: ...
    def write(self, s: str) -> None:
        print(s)
    def close(self) -> None: ...


def results_as_dicts(results: Iterable[Result]) -> list[dict]:
    return [asdict(r) for r in results]


# -- vLLM baseline, run as a subprocess of another python ---------------------------------

# vLLM pins its own torch/transformers, so it usually lives in its own virtualenv; the
# worker below needs only the standard library and vllm. It answers one JSON line per
# request on stdout, marked so that vLLM's own log lines can be told apart.
_VLLM_MARK = "@@mrt-bench@@ "
_VLLM_WORKER = r'''
import json, sys, time
MARK = %r

def reply(obj):
    sys.stdout.write(MARK + json.dumps(obj) + "\n")
    sys.stdout.flush()

def main():
    from vllm import LLM, SamplingParams
    llm = None
    for line in sys.stdin:
        req = json.loads(line)
        try:
            if req["cmd"] == "init":
                t0 = time.perf_counter()
                llm = LLM(**req["llm"])
                reply({"ok": True, "init_s": time.perf_counter() - t0})
            elif req["cmd"] == "generate":
                prompts = [{"prompt_token_ids": ids} for ids in req["prompts"]]
                seeds = req.get("seeds") or [None] * len(prompts)
                params = [SamplingParams(seed=sd, **req["params"]) for sd in seeds]
                t0 = time.perf_counter()
                outs = llm.generate(prompts, params, use_tqdm=False)
                dt = time.perf_counter() - t0
                texts = [[c.text for c in o.outputs] for o in outs]
                num_tokens = sum(len(c.token_ids) for o in outs for c in o.outputs)
                reply({"ok": True, "elapsed_s": dt, "texts": texts, "num_tokens": num_tokens})
            elif req["cmd"] == "reset_prefix_cache":
                llm.reset_prefix_cache()
                reply({"ok": True})
            elif req["cmd"] == "quit":
                reply({"ok": True})
                return
        except Exception as exc:
            reply({"ok": False, "error": "%%s: %%s" %% (type(exc).__name__, exc)})

if __name__ == "__main__":
    main()
''' % _VLLM_MARK


VLLM_VENV = Path(__file__).resolve().parent.parent / ".venv-vllm"  # scripts/setup_vllm_venv.sh


def vllm_python_candidates(explicit: str | None = None) -> list[str]:
    """Where a python with vLLM may be: ``explicit``, ``$MRT_VLLM_PYTHON``, the repo's
    ``.venv-vllm`` (made by ``scripts/setup_vllm_venv.sh``)."""
    found = [explicit, os.environ.get("MRT_VLLM_PYTHON"), str(VLLM_VENV / "bin" / "python")]
    return [py for py in found if py]


def find_vllm_python(explicit: str | None = None) -> tuple[str | None, str]:
    """(python executable with vLLM, or None; why not). Looks at ``vllm_python_candidates``,
    then this python."""
    import importlib.util
    import sys

    for py in vllm_python_candidates(explicit):
        if os.path.exists(py):
            probe = subprocess.run([py, "-c", "import importlib.util,sys; sys.exit(importlib.util.find_spec('vllm') is None)"],
                                   capture_output=True, timeout=120)
            if probe.returncode == 0:
                return py, ""
            if explicit and py == explicit:
                return None, f"{py} has no vllm package"
    if importlib.util.find_spec("vllm") is not None:
        return sys.executable, ""
    return None, "vLLM not installed (bash scripts/setup_vllm_venv.sh, or pass --vllm-python / set MRT_VLLM_PYTHON)"


class VLLMWorker:
    """A vLLM ``LLM`` in a subprocess, driven request by request (so its runs interleave
    with ours). Start-up (~80 s on a 2-core CPU) happens in :meth:`start`, untimed."""

    def __init__(self, python: str, *, log_path: str | Path, env: dict | None = None):
        import queue
        import threading

        self.log_path = Path(log_path)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        script = self.log_path.with_suffix(".worker.py")
        script.write_text(_VLLM_WORKER)
        env = dict(os.environ, **(env or {}))
        env.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")   # GiB; the default takes too much of a shared box
        env.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
        env.pop("PYTHONPATH", None)  # our checkout must not shadow the venv's packages
        self._log = open(self.log_path, "w")
        # Own process group: vLLM forks an engine core and workers; close() ends them all.
        self.proc = subprocess.Popen([python, str(script)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self._log, text=True, env=env, bufsize=1, start_new_session=True)
        self._replies: "queue.Queue" = queue.Queue()

        def pump():
            for line in self.proc.stdout:
                if line.startswith(_VLLM_MARK):
                    import json

                    self._replies.put(json.loads(line[len(_VLLM_MARK):]))
                else:
                    self._log.write(line)
            self._replies.put({"ok": False, "error": f"vLLM worker exited (code {self.proc.poll()}); see {self.log_path}"})

        threading.Thread(target=pump, daemon=True).start()
        self.init_s: float | None = None

    def _request(self, obj: dict, timeout: float) -> dict:
        import json
        import queue

        if self.proc.poll() is not None:
            raise RuntimeError(f"vLLM worker is not running (exit code {self.proc.returncode}); see {self.log_path}")
        self.proc.stdin.write(json.dumps(obj) + "\n")
        self.proc.stdin.flush()
        try:
            rep = self._replies.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(f"vLLM worker gave no answer in {timeout:.0f} s; see {self.log_path}") from None
        if not rep.get("ok"):
            raise RuntimeError(f"vLLM: {rep.get('error')}; log: {self.log_path}")
        return rep

    def start(self, model_dir: str, *, dtype: str, enable_prefix_caching: bool = True, max_model_len: int = 4096,
              seed: int = 0, extra: dict | None = None) -> None:
        """Send the start request; :meth:`wait_started` collects the answer (load our own model meanwhile)."""
        import json

        llm = dict(model=str(model_dir), tokenizer=str(model_dir), dtype=dtype, seed=seed, max_model_len=max_model_len,
                   enable_prefix_caching=enable_prefix_caching, max_num_seqs=256, **(extra or {}))
        self.proc.stdin.write(json.dumps({"cmd": "init", "llm": llm}) + "\n")
        self.proc.stdin.flush()

    def wait_started(self, timeout: float = 900) -> float:
        import queue

        try:
            rep = self._replies.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(f"vLLM did not start in {timeout:.0f} s; see {self.log_path}") from None
        if not rep.get("ok"):
            raise RuntimeError(f"{rep.get('error')}; log: {self.log_path}")
        self.init_s = rep["init_s"]
        return self.init_s

    def generate(self, prompts: list[list[int]], *, n: int, max_tokens: int, temperature: float, top_p: float = 1.0,
                 stop_token_ids: list[int] | None = None, ignore_eos: bool = False, seeds: list[int] | None = None,
                 timeout: float = 1800) -> dict:
        """{"texts": [[n texts] per prompt], "num_tokens": generated tokens, "elapsed_s": in-worker time}."""
        params = dict(n=n, max_tokens=max_tokens, temperature=temperature, top_p=top_p, ignore_eos=ignore_eos,
                      stop_token_ids=list(stop_token_ids or []), skip_special_tokens=False)
        return self._request({"cmd": "generate", "prompts": prompts, "params": params, "seeds": seeds}, timeout)

    def reset_prefix_cache(self) -> None:
        """Empty vLLM's prefix cache (between timed rounds: each round starts cold)."""
        self._request({"cmd": "reset_prefix_cache"}, 120)

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self._request({"cmd": "quit"}, 30)
                self.proc.wait(timeout=30)
            except Exception:  # noqa: BLE001 - a stuck worker is killed below
                pass
        import signal

        try:  # whatever vLLM left behind in the group (engine core, workers)
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if self.proc.poll() is None:
            self.proc.wait(timeout=30)
        self._log.close()


def export_hf_checkpoint(model, tokenizer, path: str | Path) -> Path:
    """Write ``model`` as a plain safetensors checkpoint (for vLLM). A GGUF-loaded model
    cannot ``save_pretrained`` itself, so its state dict goes into a fresh model built from
    the same config first."""
    path = Path(path)
    if (path / "config.json").exists() and any(path.glob("*.safetensors")):
        return path
    path.mkdir(parents=True, exist_ok=True)
    import copy

    cfg = copy.deepcopy(model.config)
    for attr in ("quantization_config", "gguf_file"):  # weights are dequantised: plain fp32 now
        if hasattr(cfg, attr):
            delattr(cfg, attr)
    with torch.device("meta"):
        fresh = type(model)(cfg)
    fresh.load_state_dict({k: v.detach().cpu() for k, v in model.state_dict().items()}, assign=True)
    fresh.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
