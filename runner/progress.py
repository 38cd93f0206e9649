"""A progress line per run: step, loss, mel weight, steps/s, ETA; redrawn in a terminal, plain lines in CI."""
from __future__ import annotations

import math
import sys
import time

from myxtts import record


def clock(seconds: float) -> str:
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

    def say(self, message: str) -> None:
        """A line of its own: what the job is doing while no step runs yet (data, model, compilation)."""
        self.stream.write(f"[{self.label}] {message}\n")
        self.stream.flush()

    def _line(self, step: int, metrics: dict[str, float], tail: str) -> str:
        return (f"step {step + 1}/{self.total} loss {metrics.get(record.LOSS_TOTAL, float('nan')):.4g} "
                f"mel_w {metrics.get(record.WEIGHT_MEL, float('nan')):.3f} {tail}")

    def on_step(self, step: int, metrics: dict[str, float]) -> None:
        if self.first_step is None:
            # The first step carries the compilation: say when it is done, then time the rest.
            seconds = time.perf_counter() - self.started
            self.first_step, self.started = step, time.perf_counter()
            self.say(self._line(step, metrics, f"(first step, compiled, after {seconds:.1f} s)"))
            return
        if not self.interactive and (step + 1) % self.every:
            return
        elapsed = time.perf_counter() - self.started
        rate = (step - self.first_step) / elapsed if elapsed > 0 else float("nan")
        eta = (self.total - step - 1) / rate if rate and rate > 0 else float("nan")
        line = f"[{self.label}] " + self._line(step, metrics, f"{rate:.2f} steps/s ETA {clock(eta)}")
        if self.interactive:
            self.stream.write("\r\033[K" + line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def on_validation(self, step: int, metrics: dict[str, float]) -> None:
        pass

    def on_checkpoint(self, step: int) -> None:
        pass

    def finish(self, message: str) -> None:
        prefix = "\r\033[K" if self.interactive else ""
        self.stream.write(f"{prefix}[{self.label}] {message}\n")
        self.stream.flush()
