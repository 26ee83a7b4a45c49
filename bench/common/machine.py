"""What the numbers depend on: the machine, the versions, and the device's peak rates (for floors)."""
from __future__ import annotations

import datetime as _dt
import importlib.metadata
import os
import platform
import subprocess
from dataclasses import dataclass
from pathlib import Path

import torch

from .timing import best_time

# Nominal dense peaks (bf16 FLOP/s, bytes/s) of GPUs we quote; others are measured.
NOMINAL_GPU = {"H200": (990e12, 4.8e12), "H100": (989e12, 3.35e12), "A100": (312e12, 2.0e12)}


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
        for key, (flops, bw) in NOMINAL_GPU.items():
            if key in name:
                return DevicePeaks(flops, bw, f"nominal {key}")
    n = 1024 if dev.type == "cpu" else 4096
    a = torch.randn(n, n, device=dev, dtype=dtype)
    b = torch.randn(n, n, device=dev, dtype=dtype)
    best_mm = best_time(lambda: a @ b, dev, seconds)
    src = torch.empty(64 << 20, dtype=torch.uint8, device=dev)
    dst = torch.empty_like(src)
    best_cp = best_time(lambda: dst.copy_(src), dev, seconds)
    return DevicePeaks(2 * n ** 3 / best_mm, 2 * src.numel() / best_cp, "measured")


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).replace("torch.", "")


def machine_info(device: str | torch.device, dtype: torch.dtype, *, extra: dict | None = None) -> dict:
    """What the numbers depend on; written into every CSV row."""
    dev = torch.device(device)
    info = {
        "date_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M"),
        "machine": f"{platform.system()} {platform.machine()}, {_cpu_model()}, {os.cpu_count()} logical CPUs",
        "accelerator": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "none",
        "device": str(dev),
        "dtype": dtype_name(dtype),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": _version("transformers"),
        "triton": _version("triton"),
        "mrt_engine_commit": _git_commit(),
    }
    info.update(extra or {})
    return info


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
