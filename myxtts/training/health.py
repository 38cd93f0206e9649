"""What the outcome rules read, counted inside the compiled step (record.classify turns it into a verdict).

A step "applies no update" when the optimizer did not run (a guard or the float16 loss scaler skipped it),
when its gradients were non-finite (so whatever was applied came from zeroed or overflowed gradients), or
when the weights did not move at all. A loss "spike" is a finite training loss above record.SPIKE_FACTOR x
the lowest finite loss so far, counted only after the optimizer's warmup.
"""
from __future__ import annotations

from myxtts import record
from myxtts.backend import tf


class RunHealth(tf.Module):
    def __init__(self, warmup_steps: int, loss_scale_start: float) -> None:
        super().__init__(name="run_health")
        self.warmup_steps, self.loss_scale_start = int(warmup_steps), float(loss_scale_start)
        counter = lambda name: tf.Variable(0, dtype=tf.int64, trainable=False, name=name)  # noqa: E731
        self.update_steps, self.noop_steps = counter("update_steps"), counter("noop_steps")
        self.overflow_steps, self.spike_steps = counter("overflow_steps"), counter("spike_steps")
        self.lowest_loss = tf.Variable(float("inf"), trainable=False, name="lowest_loss")
        self.loss_scale_moved = tf.Variable(False, trainable=False, name="loss_scale_moved")

    def __call__(self, step, ready, applied, produced_finite, update_norm, loss, loss_scale=None) -> dict:
        """Count this step; returns its flags as metrics (health/noop, health/spike)."""
        noop = tf.logical_and(ready, tf.logical_or(tf.logical_not(tf.logical_and(applied, produced_finite)),
                                                   update_norm <= 0.0))
        self.update_steps.assign_add(tf.cast(ready, tf.int64))
        self.noop_steps.assign_add(tf.cast(noop, tf.int64))
        loss = tf.cast(loss, tf.float32)
        finite = tf.math.is_finite(loss)
        spike = tf.logical_and(tf.logical_and(finite, step >= self.warmup_steps),
                               loss > record.SPIKE_FACTOR * self.lowest_loss)
        self.spike_steps.assign_add(tf.cast(spike, tf.int64))
        self.lowest_loss.assign(tf.where(finite, tf.minimum(self.lowest_loss, loss), self.lowest_loss))
        if loss_scale is not None:  # float16: an overflow the scaler never saw leaves the scale at its start
            self.overflow_steps.assign_add(tf.cast(tf.logical_not(produced_finite), tf.int64))
            self.loss_scale_moved.assign(tf.logical_or(self.loss_scale_moved,
                                                       tf.not_equal(loss_scale, self.loss_scale_start)))
        return {record.HEALTH_NOOP: tf.cast(noop, tf.float32), record.HEALTH_SPIKE: tf.cast(spike, tf.float32)}

    def facts(self) -> dict:
        """The counters as plain numbers, under the record's tag names."""
        return {record.UPDATE_STEPS: int(self.update_steps.numpy()), record.NOOP_STEPS: int(self.noop_steps.numpy()),
                record.OVERFLOW_STEPS: int(self.overflow_steps.numpy()),
                record.SPIKE_STEPS: int(self.spike_steps.numpy()),
                record.LOSS_SCALE_MOVED: bool(self.loss_scale_moved.numpy())}
