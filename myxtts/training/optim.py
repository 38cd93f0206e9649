"""AdamW with the learning-rate schedules the study compares: constant, warmup+noam, warmup+cosine, and the
upstream code base's cosine decay with warm restarts (no warmup)."""
from __future__ import annotations

import math
from dataclasses import dataclass

from myxtts.backend import tf
from myxtts.switches import CLIP_ORDERS, SCHEDULES

import keras  # noqa: E402

# optim.clip_order: "unscaled" clips the true gradient (after undoing float16 loss scaling); "scaled"
# reproduces upstream, which clipped the still-scaled gradients, so the applied ones are ~scale× smaller.


@dataclass(frozen=True)
class OptimizerSettings:
    lr: float = 1e-4
    schedule: str = "constant"
    warmup_steps: int = 0
    weight_decay: float = 0.01
    beta_1: float = 0.9
    beta_2: float = 0.999
    epsilon: float = 1e-7
    clip_norm: float | None = None
    accumulation_steps: int = 1
    clip_order: str = "unscaled"
    restart_period: int = 8000      # cosine_restarts: first period, then × restart_t_mul each restart
    restart_t_mul: float = 0.8
    restart_m_mul: float = 1.0
    min_lr: float = 1e-7

    def __post_init__(self) -> None:
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"optim.lr: must be a finite number > 0, got {self.lr}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"optim.schedule: must be one of {list(SCHEDULES)}, got {self.schedule!r}")
        if self.warmup_steps < 0:
            raise ValueError(f"optim.warmup_steps: must be >= 0, got {self.warmup_steps}")
        if self.weight_decay < 0:
            raise ValueError(f"optim.weight_decay: must be >= 0, got {self.weight_decay}")
        if self.clip_norm is not None and not self.clip_norm > 0:
            raise ValueError(f"optim.clip_norm: must be > 0 or null, got {self.clip_norm}")
        if self.accumulation_steps < 1:
            raise ValueError(f"optim.accumulation_steps: must be >= 1, got {self.accumulation_steps}")
        if self.clip_order not in CLIP_ORDERS:
            raise ValueError(f"optim.clip_order={self.clip_order!r} is invalid: allowed one of {list(CLIP_ORDERS)}")
        if self.restart_period < 1 or not self.restart_t_mul > 0 or not self.restart_m_mul > 0:
            raise ValueError("optim.restart_period/restart_t_mul/restart_m_mul: must be >= 1 / > 0 / > 0, got "
                             f"{self.restart_period}/{self.restart_t_mul}/{self.restart_m_mul}")
        if not 0 <= self.min_lr < self.lr:
            raise ValueError(f"optim.min_lr={self.min_lr!r} is invalid: allowed a number in [0, optim.lr)")


class WarmupSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warmup to `peak`, then constant, inverse-square-root (noam) or cosine decay to 0."""

    def __init__(self, peak: float, kind: str, warmup_steps: int, total_steps: int,
                 restarts: keras.optimizers.schedules.LearningRateSchedule | None = None) -> None:
        self.peak, self.kind = peak, kind
        self.warmup_steps, self.total_steps = warmup_steps, max(total_steps, 1)
        self.restarts = restarts

    def __call__(self, step):
        step = tf.cast(step, tf.float32) + 1.0
        warmup = float(max(self.warmup_steps, 1))
        ramp = tf.minimum(step / warmup, 1.0) if self.warmup_steps else tf.constant(1.0)
        if self.kind == "noam":
            after = tf.sqrt(warmup / tf.maximum(step, warmup))
        elif self.kind == "cosine":
            progress = tf.clip_by_value((step - warmup) / max(self.total_steps - warmup, 1.0), 0.0, 1.0)
            after = 0.5 * (1.0 + tf.cos(math.pi * progress))
        elif self.kind == "cosine_restarts":
            # Keras's schedule, as upstream used it (with t_mul < 1 the periods shrink geometrically).
            after = self.restarts(step - 1.0)
        else:
            after = tf.constant(1.0)
        return self.peak * ramp * after

    def get_config(self):
        return {"peak": self.peak, "kind": self.kind, "warmup_steps": self.warmup_steps,
                "total_steps": self.total_steps}


def build_schedule(settings: OptimizerSettings, total_steps: int) -> WarmupSchedule:
    restarts = keras.optimizers.schedules.CosineDecayRestarts(
        1.0, settings.restart_period, t_mul=settings.restart_t_mul, m_mul=settings.restart_m_mul,
        alpha=settings.min_lr / settings.lr) if settings.schedule == "cosine_restarts" else None
    return WarmupSchedule(settings.lr, settings.schedule, settings.warmup_steps, total_steps, restarts)


def build_optimizer(settings: OptimizerSettings, total_steps: int) -> keras.optimizers.Optimizer:
    schedule = build_schedule(settings, total_steps)
    return keras.optimizers.AdamW(learning_rate=schedule, weight_decay=settings.weight_decay,
                                  beta_1=settings.beta_1, beta_2=settings.beta_2, epsilon=settings.epsilon)
