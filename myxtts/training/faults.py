"""Deliberate faults (conf/fault): what the experiments inject at one step to test the guards and the
NaN-origin replay. A fault changes the step's inputs or the model's weights before the step runs."""
from __future__ import annotations

import math

import numpy as np

from myxtts.backend import tf
from myxtts.training.settings import FaultSettings


class FaultInjector:
    def __init__(self, settings: FaultSettings, model) -> None:
        self.settings, self.model = settings, model
        if settings.kind == "inf_weights":
            # Known before the first step: a layer that matches no weight would only fail at the fault step.
            self.target = next((v for v in model.trainable_variables if settings.layer in v.path), None)
            if self.target is None:
                raise ValueError(f"fault.layer={settings.layer!r} matches no model weight: allowed part of a weight "
                                 f"path, e.g. decoder_block_0/ff_in")

    def __call__(self, step: int, batch: dict) -> tuple[dict, tf.Tensor]:
        """The step's tensors with the fault applied, and the scale of every raw loss term (the spike)."""
        fault = self.settings
        if fault.kind == "nan_batch" and step == fault.step:
            batch = dict(batch, mel=np.full_like(batch["mel"], np.nan))
        if fault.kind == "inf_weights" and step == fault.step:
            assert self.target is not None, "found in the constructor"
            self.target.assign(tf.fill(tf.shape(self.target), tf.constant(math.inf, self.target.dtype)))
        scale = tf.constant(fault.factor if fault.kind == "spike" and step == fault.step else 1.0)
        return {key: tf.constant(value) for key, value in batch.items()}, scale
