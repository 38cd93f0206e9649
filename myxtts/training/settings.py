"""The training groups' settings (conf/loss, optim, weighting, guards, trainer, fault), no TensorFlow here.

Each class is the Hydra schema of its config group (the runner registers these very classes), uses the
field names of the code that reads it, and checks each of its values once, in `__post_init__`. The config
group `weighting` has one class per strategy, holding only that strategy's knobs.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

from myxtts.checks import finite, one_of, require
from myxtts.data.settings import DataSettings
from myxtts.models.settings import SIZES, ModelSettings, named_layers
from myxtts.typed import VARIANTS
from myxtts.switches import CLIP_ORDERS, NONFINITE_MODES, OVERFLOW_MODES, PRECISIONS, SCHEDULES
from myxtts.training.diagnostics import DiagnosticsSettings

FAULTS = ("none", "spike", "nan_batch", "inf_weights")
# guards.nonfinite: what a step with a non-finite loss or gradient does. "propagate" applies it (the
# documents' code base without guards), "skip" leaves weights and optimizer state untouched (the new
# system's guard), "zero" reproduces upstream: the loss becomes 0, non-finite gradients become 0, applied.


def _positive(key: str, value) -> None:
    require(finite(value) and value > 0, key, value, "a finite number > 0")


def _optional_positive(key: str, value, meaning: str) -> None:
    require(value is None or (finite(value) and value > 0), key, value, f"a number > 0 or null ({meaning})")


@dataclass
class LossSettings:
    """The loss terms' weights and shapes (conf: loss.*)."""

    mel_loss_weight: float = 2.5
    stop_loss_weight: float = 1.0
    kl_loss_weight: float = 1.0
    attention_loss_weight: float = 1.0
    huber: bool = False
    huber_delta: float = 1.0
    label_smoothing: bool = False
    label_smoothing_factor: float = 0.1
    stop_positive_weight: float = 1.0
    total_loss_clip: float | None = None
    loss_smoothing_factor: float = 0.1     # the XTTSLoss API's running means (get_stability_metrics)
    stop_z_loss_weight: float = 0.0        # z-loss on the stop logits (the literature's 1e-4), added to the total

    def __post_init__(self) -> None:
        for key in ("mel_loss_weight", "stop_loss_weight", "kl_loss_weight", "attention_loss_weight"):
            value = getattr(self, key)
            require(finite(value) and value >= 0, f"loss.{key}", value, "a finite number >= 0")
        _positive("loss.huber_delta", self.huber_delta)
        require(0 <= self.label_smoothing_factor < 1, "loss.label_smoothing_factor", self.label_smoothing_factor,
                "a number in [0, 1)")
        _positive("loss.stop_positive_weight", self.stop_positive_weight)
        _optional_positive("loss.total_loss_clip", self.total_loss_clip, "no clip")
        require(0 < self.loss_smoothing_factor <= 1, "loss.loss_smoothing_factor", self.loss_smoothing_factor,
                "a number in (0, 1]")
        require(finite(self.stop_z_loss_weight) and self.stop_z_loss_weight >= 0, "loss.stop_z_loss_weight",
                self.stop_z_loss_weight, "a finite number >= 0")

    @property
    def base_weights(self) -> dict[str, float]:
        return {"mel": self.mel_loss_weight, "stop": self.stop_loss_weight, "kl": self.kl_loss_weight,
                "attention": self.attention_loss_weight}

    @property
    def smoothing(self) -> float:
        return self.label_smoothing_factor if self.label_smoothing else 0.0


OPTIMIZERS = ("adamw", "sgd")


@dataclass
class OptimizerSettings:
    """The optimizer and its schedule (conf: optim.*). optim.name "adamw" (the documents' optimizer, with
    beta_1, beta_2, epsilon) or "sgd" (SGD with optim.momentum, optionally Nesterov); both decay the weights
    by optim.weight_decay. optim.clip_order "unscaled" clips the true gradient; "scaled" reproduces upstream,
    which clipped the still-scaled float16 gradients. Linear warmup lasts optim.warmup_steps, or
    optim.warmup_fraction of trainer.steps (one of the two)."""

    lr: float = 1e-4
    lr_multiplier: float = 1.0
    name: str = "adamw"
    momentum: float = 0.9             # sgd only
    nesterov: bool = False            # sgd only
    schedule: str = "constant"
    warmup_steps: int = 0
    warmup_fraction: float = 0.0
    weight_decay: float = 0.01
    clip_norm: float | None = None
    accumulation_steps: int = 1
    clip_order: str = "unscaled"
    restart_period: int = 8000        # cosine_restarts (upstream's enhanced path, no warmup)
    restart_t_mul: float = 0.8
    restart_m_mul: float = 1.0
    min_lr: float = 1.0e-7
    beta_1: float = 0.9
    beta_2: float = 0.999
    epsilon: float = 1e-7

    def __post_init__(self) -> None:
        _positive("optim.lr", self.lr)
        _positive("optim.lr_multiplier", self.lr_multiplier)
        one_of("optim.schedule", self.schedule, SCHEDULES)
        one_of("optim.name", self.name, OPTIMIZERS)
        require(0 <= self.momentum < 1, "optim.momentum", self.momentum, "a number in [0, 1)")
        require(self.warmup_steps >= 0, "optim.warmup_steps", self.warmup_steps, "an integer >= 0")
        require(0 <= self.warmup_fraction < 1, "optim.warmup_fraction", self.warmup_fraction, "a number in [0, 1)")
        require(not (self.warmup_steps and self.warmup_fraction), "optim.warmup_fraction", self.warmup_fraction,
                "0 when optim.warmup_steps is set (one of the two)")
        require(finite(self.weight_decay) and self.weight_decay >= 0, "optim.weight_decay", self.weight_decay,
                "a finite number >= 0")
        _optional_positive("optim.clip_norm", self.clip_norm, "no clipping")
        require(self.accumulation_steps >= 1, "optim.accumulation_steps", self.accumulation_steps, "an integer >= 1")
        one_of("optim.clip_order", self.clip_order, CLIP_ORDERS)
        require(self.restart_period >= 1, "optim.restart_period", self.restart_period, "an integer >= 1")
        _positive("optim.restart_t_mul", self.restart_t_mul)
        _positive("optim.restart_m_mul", self.restart_m_mul)
        require(0 <= self.min_lr < self.effective_lr, "optim.min_lr", self.min_lr,
                "a number in [0, optim.lr × optim.lr_multiplier)")
        for key in ("beta_1", "beta_2"):
            require(0 <= getattr(self, key) < 1, f"optim.{key}", getattr(self, key), "a number in [0, 1)")
        _positive("optim.epsilon", self.epsilon)

    @property
    def effective_lr(self) -> float:
        return self.lr * self.lr_multiplier

    def warmup_for(self, total_steps: int) -> int:
        """The warmup's length in steps for a run of `total_steps`."""
        return self.warmup_steps or round(self.warmup_fraction * total_steps)


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
        one_of("guards.nonfinite", self.nonfinite, NONFINITE_MODES)
        require(finite(self.spike_threshold) and self.spike_threshold > 1, "guards.spike_threshold",
                self.spike_threshold, "a number > 1")
        require(self.spike_window >= 1, "guards.spike_window", self.spike_window, "an integer >= 1")
        require(self.divergence_patience >= 1, "guards.divergence_patience", self.divergence_patience,
                "an integer >= 1")
        require(finite(self.divergence_factor) and self.divergence_factor > 1, "guards.divergence_factor",
                self.divergence_factor, "a number > 1")


@dataclass
class FaultSettings:
    """A deliberate fault at one step: a loss spike (every raw term × factor), a NaN batch, or +inf written
    into the first model weight whose path contains `layer` (e.g. decoder_block_0/ff_in)."""

    kind: str = "none"
    step: int = 50
    factor: float = 50.0
    layer: str = "decoder_block_0/ff_in"

    def __post_init__(self) -> None:
        one_of("fault.kind", self.kind, FAULTS)
        require(self.step >= 0, "fault.step", self.step, "an integer >= 0")
        _positive("fault.factor", self.factor)


@dataclass
class TrainerSettings:
    """The run's length, batches, precision and what it writes besides metrics (conf: trainer.*)."""

    steps: int = 300
    batch_size: int = 8
    xla: bool = False
    precision: str = "float32"    # mixed_bfloat16 | mixed_float16 (with dynamic loss scaling)
    overflow: str = "skip"        # float16: the loss scaler skips an overflowing step; "apply" applies it
                                  # anyway, after guards.nonfinite's handling (upstream's order)
    validate_every: int = 100     # 0: only at the end
    checkpoint_every: int = 100   # 0: only at the end
    synthesize: bool = True       # a validation sentence's mel plot and audio as the run's artifacts (in a
                                  # sweep only the first seed's run of each configuration renders one)
    synthesis_max_frames: int = 400
    threads: int = 0              # TensorFlow's intra/inter-op threads for this job (0: its default, every core);
                                  # parallel jobs on one machine use jobs × threads = cores

    def __post_init__(self) -> None:
        require(self.steps > 0, "trainer.steps", self.steps, "an integer > 0")
        require(self.batch_size >= 1, "trainer.batch_size", self.batch_size, "an integer >= 1")
        one_of("trainer.precision", self.precision, PRECISIONS)
        one_of("trainer.overflow", self.overflow, OVERFLOW_MODES)
        require(self.validate_every >= 0, "trainer.validate_every", self.validate_every,
                "an integer >= 0 (0 = at the end)")
        require(self.checkpoint_every >= 0, "trainer.checkpoint_every", self.checkpoint_every,
                "an integer >= 0 (0 = at the end)")
        require(self.synthesis_max_frames >= 1, "trainer.synthesis_max_frames", self.synthesis_max_frames,
                "an integer >= 1")
        require(self.threads >= 0, "trainer.threads", self.threads, "an integer >= 0 (0 = TensorFlow's default)")


# --- weighting: one settings class per strategy (conf/weighting/<name>.yaml ↔ weighting.py) ---------------
WEIGHTING_SETTINGS: dict[str, type[WeightingSettings]] = {}   # every strategy's class, by its name


@dataclass
class WeightingSettings:
    """weighting=none: the static base weights. A subclass is a strategy's settings; it registers itself
    under the default of its `name` (conf/weighting/<name>.yaml chooses it)."""

    name: str = "none"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        WEIGHTING_SETTINGS[cls.__dict__["name"]] = cls

    def __post_init__(self) -> None:
        expected = next(n for n, cls in WEIGHTING_SETTINGS.items() if cls is type(self))
        require(self.name == expected, "weighting.name", self.name,
                f"{expected!r} (choose a strategy with weighting=NAME, one of {list(WEIGHTING_SETTINGS)})")


WEIGHTING_SETTINGS["none"] = WeightingSettings


@dataclass
class LegacyTanhSettings(WeightingSettings):
    """The old system: the documented clip of the tanh factor; earlier upstream used [0.7, 1.3]."""

    name: str = "legacy_tanh"
    tanh_factor_min: float = 0.8
    tanh_factor_max: float = 1.2
    # The running mean's decay min(step / ramp_steps, max_decay), as the document's code has it.
    ramp_steps: ClassVar[int] = 1000
    max_decay: ClassVar[float] = 0.99

    def __post_init__(self) -> None:
        super().__post_init__()
        require(0 < self.tanh_factor_min <= 1 <= self.tanh_factor_max, "weighting.tanh_factor_min/max",
                f"{self.tanh_factor_min}/{self.tanh_factor_max}", "0 < min <= 1 <= max")

    # What the formula allows, whatever the losses (the claims audit's analytic evidence). The factor is
    # 0.5 + 0.5·tanh(ratio − 1), which lies in (0, 1), clipped to [tanh_factor_min, tanh_factor_max].
    def factor_range(self) -> tuple[float, float]:
        return self.tanh_factor_min, min(self.tanh_factor_max, 1.0)

    def largest_step_changes(self) -> tuple[float, float]:
        """(largest rise, largest fall) of the weight from one step to the next, as fractions: from the
        factor's floor to its ceiling and back (the [1, 5] clip of the weight can only narrow them)."""
        low, high = self.factor_range()
        return high / low - 1.0, 1.0 - low / high

    def floor_ratio(self) -> float:
        """The loss / running-mean ratio above which the factor leaves its floor."""
        return 1.0 + math.atanh(2.0 * self.tanh_factor_min - 1.0) if self.tanh_factor_min > 0.5 else 1.0

    def first_step_off_floor(self) -> int:
        """The first step at which the weight can leave its floor: the ratio loss / running mean is below
        1 / (1 − decay) for any finite loss, and decay = step / ramp_steps early in training."""
        ratio = self.floor_ratio()
        if ratio <= 1.0:
            return 1
        return math.floor(self.ramp_steps * min(1.0 - 1.0 / ratio, self.max_decay)) + 1


# The stable controller's decision each step (metric weighting/decision is the index). All but hold,
# increase and decrease are its safety checks stopping or undoing a change.
DECISIONS = ("warmup", "cooling", "unstable", "hold", "increase", "decrease", "rejected", "disabled", "rollback")
CHECK_DECISIONS = tuple(d for d in DECISIONS if d not in ("hold", "increase", "decrease"))


@dataclass
class StableSettings(WeightingSettings):
    """The new system's knobs; defaults are the documented ones (the pull request's config)."""

    name: str = "stable"
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
        super().__post_init__()
        for key, ok, allowed in (
                ("max_change_percent", 0 < self.max_change_percent < 1, "a number in (0, 1)"),
                ("cooling_period", self.cooling_period >= 0, "an integer >= 0"),
                ("min_stable_steps", self.min_stable_steps >= 0, "an integer >= 0"),
                ("min_warmup_steps", self.min_warmup_steps >= 0, "an integer >= 0"),
                ("variance_threshold", self.variance_threshold > 0, "a number > 0"),
                ("gradient_norm_threshold", self.gradient_norm_threshold > 0, "a number > 0"),
                ("gradient_growth_factor", self.gradient_growth_factor > 1, "a number > 1"),
                ("history_size", self.history_size >= 2, "an integer >= 2"),
                ("increase_ratio", self.increase_ratio > 1, "a number > 1"),
                ("decrease_ratio", 0 < self.decrease_ratio < 1, "a number in (0, 1)"),
                ("ema_rate", 0 < self.ema_rate <= 1, "a number in (0, 1]"),
                ("min_weight", 0 < self.min_weight <= self.max_weight, "a number in (0, max_weight]"),
                ("max_weighted_loss", self.max_weighted_loss > 0, "a number > 0")):
            require(ok, f"weighting.{key}", getattr(self, key), allowed)


@dataclass
class UncertaintySettings(WeightingSettings):
    """Kendall et al. 2018: the log-variances are learned, nothing to set."""

    name: str = "uncertainty"


@dataclass
class DwaSettings(WeightingSettings):
    name: str = "dwa"
    temperature: float = 2.0
    window: int = 20

    def __post_init__(self) -> None:
        super().__post_init__()
        _positive("weighting.temperature", self.temperature)
        require(self.window >= 1, "weighting.window", self.window, "an integer >= 1")


@dataclass
class GradNormSettings(WeightingSettings):
    name: str = "gradnorm"
    alpha: float = 1.5
    learning_rate: float = 0.025

    def __post_init__(self) -> None:
        super().__post_init__()
        require(finite(self.alpha) and self.alpha >= 0, "weighting.alpha", self.alpha, "a finite number >= 0")
        _positive("weighting.learning_rate", self.learning_rate)


WEIGHTING_NAMES = tuple(sorted(WEIGHTING_SETTINGS))
# keras.utils.set_random_seed seeds NumPy's global generator, which takes an unsigned 32-bit integer.
SEED_MAX = 2**32 - 1


@dataclass
class TrainingSettings:
    """Everything that decides what one run trains: the groups above plus the model, data and diagnostics.
    `weighting` holds the chosen strategy's settings class (Any here: the classes differ per strategy)."""

    seed: int = 0
    model: ModelSettings = field(default_factory=ModelSettings)
    data: DataSettings = field(default_factory=DataSettings)
    loss: LossSettings = field(default_factory=LossSettings)
    optim: OptimizerSettings = field(default_factory=OptimizerSettings)
    weighting: Any = field(default_factory=WeightingSettings, metadata={VARIANTS: WEIGHTING_SETTINGS})
    guards: GuardSettings = field(default_factory=GuardSettings)
    trainer: TrainerSettings = field(default_factory=TrainerSettings)
    fault: FaultSettings = field(default_factory=FaultSettings)
    diagnostics: DiagnosticsSettings = field(default_factory=DiagnosticsSettings)

    def __post_init__(self) -> None:
        require(isinstance(self.seed, int) and 0 <= self.seed <= SEED_MAX, "seed", self.seed,
                f"an integer in [0, {SEED_MAX}] (what NumPy's and Keras's seeding accepts)")
        require(isinstance(self.weighting, WeightingSettings), "weighting", self.weighting,
                f"a strategy chosen with weighting=NAME, one of {list(WEIGHTING_NAMES)}")
        if self.fault.kind == "inf_weights":  # checked here, before any run exists, not at the fault's step
            layers = named_layers(SIZES[self.model.size])
            require(self.fault.layer.split("/")[0] in layers, "fault.layer", self.fault.layer,
                    f"a weight path of the model starting with one of its layers ({', '.join(layers)}), "
                    f"e.g. decoder_block_0/ff_in")
