"""Settings shared by the trainer and the runner's configuration schema (plain dataclasses, no TensorFlow).

The runner registers these very classes as Hydra schemas, so a key means the same thing in conf/ and in
the code, and the range checks live in one place.
"""
from __future__ import annotations

from dataclasses import dataclass

FAULTS = ("none", "spike", "nan_batch")


def _require(ok: bool, key: str, value, allowed: str) -> None:
    if not ok:
        raise ValueError(f"{key}={value!r} is invalid: allowed {allowed}")


@dataclass
class GuardSettings:
    """Off by default, as the documents' code base ran; guards=all switches skip and dampening on."""

    skip_nonfinite: bool = False
    spike_dampening: bool = False
    spike_threshold: float = 2.0
    spike_window: int = 10
    divergence_patience: int = 10
    divergence_factor: float = 100.0

    def __post_init__(self) -> None:
        _require(self.spike_threshold > 1, "guards.spike_threshold", self.spike_threshold, "a number > 1")
        _require(self.spike_window >= 1, "guards.spike_window", self.spike_window, "an integer >= 1")
        _require(self.divergence_patience >= 1, "guards.divergence_patience", self.divergence_patience,
                 "an integer >= 1")
        _require(self.divergence_factor > 1, "guards.divergence_factor", self.divergence_factor, "a number > 1")


@dataclass
class FaultSettings:
    """A deliberate fault: a loss spike (every raw term × factor) or a NaN batch, at one step."""

    kind: str = "none"
    step: int = 50
    factor: float = 50.0

    def __post_init__(self) -> None:
        _require(self.kind in FAULTS, "fault.kind", self.kind, f"one of {list(FAULTS)}")
        _require(self.step >= 0, "fault.step", self.step, "an integer >= 0")
        _require(self.factor > 0, "fault.factor", self.factor, "a number > 0")
