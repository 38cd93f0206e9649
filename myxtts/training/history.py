"""A fixed-size window of recent scalars kept in tf.Variables, usable inside a compiled step."""
from __future__ import annotations

from myxtts.backend import tf


class RecentWindow(tf.Module):
    """The last `size` finite values pushed; mean and variance over the values present."""

    def __init__(self, size: int, name: str | None = None) -> None:
        super().__init__(name=name)
        if size < 1:
            raise ValueError(f"window size must be >= 1, got {size}")
        self.size = size
        self.values = tf.Variable(tf.zeros([size]), trainable=False, name="values")
        self.count = tf.Variable(0, trainable=False, name="count")
        self.cursor = tf.Variable(0, trainable=False, name="cursor")

    def push(self, value, when=True):
        """Record `value` if `when` (a bool tensor); non-finite values are never recorded."""
        value = tf.cast(value, tf.float32)
        keep = tf.logical_and(tf.cast(when, tf.bool), tf.math.is_finite(value))
        slot = tf.one_hot(self.cursor, self.size) * tf.cast(keep, tf.float32)
        self.values.assign(self.values * (1.0 - slot) + slot * tf.where(keep, value, 0.0))
        step = tf.cast(keep, tf.int32)
        self.cursor.assign((self.cursor + step) % self.size)
        self.count.assign(tf.minimum(self.count + step, self.size))

    def _filled(self):
        return tf.cast(tf.range(self.size) < self.count, tf.float32)

    def mean(self):
        return tf.reduce_sum(self.values * self._filled()) / tf.maximum(tf.cast(self.count, tf.float32), 1.0)

    def variance(self):
        deviation = (self.values - self.mean()) * self._filled()
        return tf.reduce_sum(deviation * deviation) / tf.maximum(tf.cast(self.count, tf.float32), 1.0)

    def is_full(self):
        return self.count >= self.size

    def reset(self) -> None:
        self.values.assign(tf.zeros([self.size]))
        self.count.assign(0)
        self.cursor.assign(0)
