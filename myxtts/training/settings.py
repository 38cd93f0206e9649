"""Settings shared by the trainer and the runner's configuration schema (plain dataclasses, no TensorFlow).

The runner registers these very classes as Hydra schemas, so a key means the same thing in conf/ and in
the code, and the range checks live in one place.
"""
from __future__ import annotations

from dataclasses import dataclass

from myxtts.switches import NONFINITE_MODES

FAULTS = ("none", "spike", "nan_batch", "inf_weights")
# guards.nonfinite: what a step with a non-finite loss or gradient does. "propagate" applies it (the
# documents' code base without guards), "skip" leaves weights and optimizer state untouched (the new
# system's guard), "zero" reproduces upstream: the loss becomes 0, non-finite gradients become 0, applied.

# Implemented in myxtts/training/weighting.py (which checks it matches); named here so configuration
# can be checked without importing TensorFlow.
WEIGHTING_NAMES = ("dwa", "gradnorm", "legacy_tanh", "none", "stable", "uncertainty")


def _require(ok: bool, key: str, value, allowed: str) -> None:
    if not ok:
        raise ValueError(f"{key}={value!r} is invalid: allowed {allowed}")


@dataclass
class GuardSettings:
    """Off by default, as the documents' code base ran; guards=all switches skip and dampening on."""

    nonfinite: str = "propagate"
    spike_dampening: bool = False
    spike_threshold: float = 2.0
    spike_window: int = 10
    divergence_patience: int = 10
    divergence_factor: float = 100.0

    def __post_init__(self) -> None:
        _require(self.nonfinite in NONFINITE_MODES, "guards.nonfinite", self.nonfinite,
                 f"one of {list(NONFINITE_MODES)}")
        _require(self.spike_threshold > 1, "guards.spike_threshold", self.spike_threshold, "a number > 1")
        _require(self.spike_window >= 1, "guards.spike_window", self.spike_window, "an integer >= 1")
        _require(self.divergence_patience >= 1, "guards.divergence_patience", self.divergence_patience,
                 "an integer >= 1")
        _require(self.divergence_factor > 1, "guards.divergence_factor", self.divergence_factor, "a number > 1")


@dataclass
class FaultSettings:
    """A deliberate fault at one step: a loss spike (every raw term × factor), a NaN batch, or +inf written
    into the first model weight whose path contains `layer` (e.g. decoder_block_0/ff_in)."""

    kind: str = "none"
    step: int = 50
    factor: float = 50.0
    layer: str = "decoder_block_0/ff_in"

    def __post_init__(self) -> None:
        _require(self.kind in FAULTS, "fault.kind", self.kind, f"one of {list(FAULTS)}")
        _require(self.step >= 0, "fault.step", self.step, "an integer >= 0")
        _require(self.factor > 0, "fault.factor", self.factor, "a number > 0")


@dataclass
class StableSettings:
    """The new system's knobs; defaults are the documented ones (the pull request's config)."""

    max_change_percent: float = 0.05
    cooling_period: int = 50
    min_stable_steps: int = 10
    min_warmup_steps: int = 100
    variance_threshold: float = 0.5
    gradient_norm_threshold: float = 5.0
    gradient_growth_factor: float = 1.5
    history_size: int = 10
    increase_ratio: float = 1.1
    decrease_ratio: float = 0.9
    ema_rate: float = 0.01
    min_weight: float = 1.0
    max_weight: float = 5.0
    max_weighted_loss: float = 1000.0

    def __post_init__(self) -> None:
        for key, ok, allowed in (
                ("max_change_percent", 0 < self.max_change_percent < 1, "a number in (0, 1)"),
                ("cooling_period", self.cooling_period >= 0, "an integer >= 0"),
                ("min_stable_steps", self.min_stable_steps >= 0, "an integer >= 0"),
                ("min_warmup_steps", self.min_warmup_steps >= 0, "an integer >= 0"),
                ("variance_threshold", self.variance_threshold > 0, "a number > 0"),
                ("gradient_norm_threshold", self.gradient_norm_threshold > 0, "a number > 0"),
                ("gradient_growth_factor", self.gradient_growth_factor > 1, "a number > 1"),
                ("history_size", self.history_size >= 2, "an integer >= 2"),
                ("ema_rate", 0 < self.ema_rate <= 1, "a number in (0, 1]"),
                ("min_weight", 0 < self.min_weight <= self.max_weight, "a number in (0, max_weight]"),
                ("max_weighted_loss", self.max_weighted_loss > 0, "a number > 0")):
            _require(ok, f"weighting.{key}", getattr(self, key), allowed)
