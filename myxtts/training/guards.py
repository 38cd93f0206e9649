"""Guards against numeric blow-ups, each switchable on its own so their contribution can be measured.

- SpikeDampener: ratio = loss / mean(recent losses); above the threshold the loss (and so its gradient)
  is scaled by threshold / ratio (the design note's scenario 2).
- DivergenceMonitor: the run's verdict; non-finite loss for N consecutive steps, or a finite loss above
  k × the first finite loss, marks the run diverged at that step.
Their settings: GuardSettings (myxtts/training/settings.py, conf/guards). The non-finite step skip and
gradient clipping live in the compiled train step (trainer.py), since they act on gradients and optimizer
state.
"""
from __future__ import annotations

from myxtts.backend import tf
from myxtts.training.history import RecentWindow


class SpikeDampener(tf.Module):
    def __init__(self, threshold: float, window: int, enabled: bool = True) -> None:
        super().__init__(name="spike_dampener")
        self.threshold, self.enabled = float(threshold), enabled
        self.recent = RecentWindow(window, name="recent_losses")
        self.dampened_steps = tf.Variable(0, trainable=False, name="dampened_steps")

    @classmethod
    def from_settings(cls, guards) -> SpikeDampener:
        """From the guards' settings (GuardSettings: spike_threshold, spike_window, spike_dampening)."""
        return cls(guards.spike_threshold, guards.spike_window, enabled=guards.spike_dampening)

    def __call__(self, loss):
        """Returns (loss to optimise, spike flag, ratio); records the undamped loss afterwards."""
        loss = tf.convert_to_tensor(loss)
        ratio = loss / tf.maximum(self.recent.mean(), 1e-8)
        spike = tf.logical_and(self.recent.count > 0, tf.logical_and(tf.math.is_finite(ratio), ratio > self.threshold))
        if self.enabled:
            scale = tf.stop_gradient(tf.where(spike, self.threshold / tf.where(spike, ratio, 1.0), 1.0))
            out = loss * tf.cast(scale, loss.dtype)
        else:
            out = loss
        self.dampened_steps.assign_add(tf.cast(tf.logical_and(spike, self.enabled), tf.int32))
        self.recent.push(loss)
        return out, spike, ratio


class DivergenceMonitor(tf.Module):
    def __init__(self, patience: int, factor: float) -> None:
        super().__init__(name="divergence_monitor")
        self.patience, self.factor = patience, float(factor)
        self.consecutive_nonfinite = tf.Variable(0, trainable=False, name="consecutive_nonfinite")
        self.initial_loss = tf.Variable(0.0, trainable=False, name="initial_loss")
        self.has_initial = tf.Variable(False, trainable=False, name="has_initial")
        self.nonfinite_steps = tf.Variable(0, trainable=False, name="nonfinite_steps")

    def __call__(self, loss):
        """Update with this step's loss; returns True (as a tensor) once the run has diverged."""
        loss = tf.cast(loss, tf.float32)
        finite = tf.math.is_finite(loss)
        self.consecutive_nonfinite.assign(tf.where(finite, 0, self.consecutive_nonfinite + 1))
        self.nonfinite_steps.assign_add(tf.cast(tf.logical_not(finite), tf.int32))
        record = tf.logical_and(finite, tf.logical_not(self.has_initial))
        self.initial_loss.assign(tf.where(record, tf.abs(loss), self.initial_loss))
        self.has_initial.assign(tf.logical_or(self.has_initial, record))
        exploded = tf.logical_and(finite, tf.logical_and(
            self.has_initial, tf.abs(loss) > self.factor * tf.maximum(self.initial_loss, 1e-8)))
        return tf.logical_or(self.consecutive_nonfinite >= self.patience, exploded)
