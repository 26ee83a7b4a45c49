"""Metrics out: JSONL (one line per step), TensorBoard, and a console progress bar.

Only rank 0 writes; other ranks get a logger whose methods do nothing.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

_BAR_KEYS = (("reward", "reward"), ("acc", "accuracy"), ("prg", "progress_mean"), ("tok/s", "tokens_per_s"))


class MetricsLogger:
    def __init__(self, output_dir: str | Path, *, total_steps: int, initial_step: int = 0, rank: int = 0,
                 tensorboard: bool = True, progress_bar: bool = True, filename: str = "metrics.jsonl"):
        self.active = rank == 0
        self._tb = None
        self._bar = None
        if not self.active:
            return
        self.dir = Path(output_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.path = self.dir / filename
        if initial_step == 0 and self.path.exists():
            self.path.unlink()  # a fresh run starts a fresh log
        elif initial_step > 0 and self.path.exists():
            self._truncate_after(initial_step)  # a resumed run drops lines written after its checkpoint
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(log_dir=str(self.dir / "tensorboard"), purge_step=initial_step + 1 or None)
            except ImportError:  # tensorboard is an optional extra
                self._tb = None
        if progress_bar:
            from tqdm import tqdm

            self._bar = tqdm(total=total_steps, initial=initial_step, desc="train", dynamic_ncols=True)

    def _truncate_after(self, step: int) -> None:
        lines = [ln for ln in self.path.read_text().splitlines() if ln.strip()]
        keep = [ln for ln in lines if json.loads(ln).get("step", 0) <= step]
        self.path.write_text("".join(ln + "\n" for ln in keep))

    def log(self, step: int, metrics: dict, *, prefix: str = "") -> None:
        if not self.active:
            return
        record = {"step": step, **{f"{prefix}{k}": _plain(v) for k, v in metrics.items()}}
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
        if self._tb is not None:
            for k, v in record.items():
                if k != "step" and isinstance(v, (int, float)) and math.isfinite(v):
                    self._tb.add_scalar(k, v, step)

    def advance(self, metrics: dict) -> None:
        if self._bar is not None:
            shown = {short: f"{metrics[key]:.3g}" for short, key in _BAR_KEYS if key in metrics}
            self._bar.set_postfix(shown, refresh=False)
            self._bar.update(1)

    def write(self, text: str) -> None:
        if not self.active:
            return
        if self._bar is not None:
            self._bar.write(text)
        else:
            print(text, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        if self._tb is not None:
            self._tb.close()


def _plain(v):
    if hasattr(v, "item"):
        v = v.item()
    if isinstance(v, float):
        return round(v, 8) if math.isfinite(v) else None
    return v


def read_metrics(path: str | Path) -> list[dict]:
    return [json.loads(ln) for ln in Path(path).read_text().splitlines() if ln.strip()]
