"""AdamW (or SGD with momentum) with the learning-rate schedules the study compares: constant, warmup+noam, warmup+cosine, and the
upstream code base's cosine decay with warm restarts (no warmup)."""
from __future__ import annotations

import math

from myxtts.backend import tf
from myxtts.training.settings import OptimizerSettings

import keras



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
        alpha=settings.min_lr / settings.effective_lr) if settings.schedule == "cosine_restarts" else None
    return WarmupSchedule(settings.effective_lr, settings.schedule, settings.warmup_for(total_steps), total_steps,
                          restarts)


def build_optimizer(settings: OptimizerSettings, total_steps: int) -> keras.optimizers.Optimizer:
    schedule = build_schedule(settings, total_steps)
    if settings.name == "sgd":
        return keras.optimizers.SGD(learning_rate=schedule, momentum=settings.momentum, nesterov=settings.nesterov,
                                    weight_decay=settings.weight_decay)
    return keras.optimizers.AdamW(learning_rate=schedule, weight_decay=settings.weight_decay,
                                  beta_1=settings.beta_1, beta_2=settings.beta_2, epsilon=settings.epsilon)
