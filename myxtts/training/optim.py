"""AdamW with the learning-rate schedules the study compares: constant, warmup+noam, warmup+cosine."""
from __future__ import annotations

import math
from dataclasses import dataclass

from myxtts.backend import tf

import keras  # noqa: E402

SCHEDULES = ("constant", "noam", "cosine")


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


class WarmupSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warmup to `peak`, then constant, inverse-square-root (noam) or cosine decay to 0."""

    def __init__(self, peak: float, kind: str, warmup_steps: int, total_steps: int) -> None:
        self.peak, self.kind = peak, kind
        self.warmup_steps, self.total_steps = warmup_steps, max(total_steps, 1)

    def __call__(self, step):
        step = tf.cast(step, tf.float32) + 1.0
        warmup = float(max(self.warmup_steps, 1))
        ramp = tf.minimum(step / warmup, 1.0) if self.warmup_steps else tf.constant(1.0)
        if self.kind == "noam":
            after = tf.sqrt(warmup / tf.maximum(step, warmup))
        elif self.kind == "cosine":
            progress = tf.clip_by_value((step - warmup) / max(self.total_steps - warmup, 1.0), 0.0, 1.0)
            after = 0.5 * (1.0 + tf.cos(math.pi * progress))
        else:
            after = tf.constant(1.0)
        return self.peak * ramp * after

    def get_config(self):
        return {"peak": self.peak, "kind": self.kind, "warmup_steps": self.warmup_steps,
                "total_steps": self.total_steps}


def build_optimizer(settings: OptimizerSettings, total_steps: int) -> keras.optimizers.Optimizer:
    schedule = WarmupSchedule(settings.lr, settings.schedule, settings.warmup_steps, total_steps)
    return keras.optimizers.AdamW(learning_rate=schedule, weight_decay=settings.weight_decay,
                                  beta_1=settings.beta_1, beta_2=settings.beta_2, epsilon=settings.epsilon)
