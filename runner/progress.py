"""A progress line per run: step, loss, mel weight, steps/s, ETA; redrawn in a terminal, plain lines in CI."""
from __future__ import annotations

import math
import sys
import time


def _clock(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    minutes, seconds = divmod(int(seconds), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{seconds:02d}"


class ProgressPrinter:
    """TrainingCallback that reports every `every` steps (every step's line replaces the last on a tty)."""

    def __init__(self, label: str, total_steps: int, every: int, stream=None) -> None:
        self.label, self.total, self.every = label, total_steps, every
        self.stream = stream or sys.stdout
        self.interactive = self.stream.isatty()
        self.started = time.perf_counter()
        self.first_step: int | None = None

    def on_step(self, step: int, metrics: dict[str, float]) -> None:
        if self.first_step is None:
            self.first_step, self.started = step, time.perf_counter()
            return
        if not self.interactive and (step + 1) % self.every:
            return
        elapsed = time.perf_counter() - self.started
        rate = (step - self.first_step) / elapsed if elapsed > 0 else float("nan")
        eta = (self.total - step - 1) / rate if rate and rate > 0 else float("nan")
        line = (f"[{self.label}] step {step + 1}/{self.total} loss {metrics.get('loss/total', float('nan')):.4g} "
                f"mel_w {metrics.get('weight/mel', float('nan')):.3f} {rate:.2f} steps/s ETA {_clock(eta)}")
        if self.interactive:
            self.stream.write("\r\033[K" + line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def on_validation(self, step: int, metrics: dict[str, float]) -> None:
        pass

    def finish(self, message: str) -> None:
        prefix = "\r\033[K" if self.interactive else ""
        self.stream.write(f"{prefix}[{self.label}] {message}\n")
        self.stream.flush()
