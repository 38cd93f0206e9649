"""The project's compiled training step against what a user would write instead: the same model, batch
and loss through plain `keras.Model.fit` (a custom `train_step` only to call the loss), with and without
XLA. Interleaves the two so machine noise hits them alike.

    python -m benchmarks.keras_fit [--steps 120] [--out reports/bench/keras_fit.json]
"""
from __future__ import annotations

import argparse
import json
import warnings
import statistics
import sys
import time
from pathlib import Path

from myxtts.backend import tf

import keras

from benchmarks.step_time import BATCH, FRAMES, _stream
from myxtts.models.xtts import build_model
from myxtts.training.losses import XTTSLoss
from myxtts.training.optim import build_optimizer
from myxtts.training.settings import GuardSettings, OptimizerSettings, TrainerSettings
from myxtts.training.trainer import Trainer, _targets, make_deterministic

OPTIMIZER = OptimizerSettings(lr=1e-4, clip_norm=1.0)


def _loss() -> XTTSLoss:
    return XTTSLoss(mel_loss_weight=2.5, weighting="none", spike_dampening=False)


class FitModel(keras.Model):
    """What a Keras user writes: the model, the loss in train_step, clipping and AdamW through the optimizer."""

    def __init__(self, inner, loss) -> None:
        super().__init__()
        self.inner, self.objective = inner, loss

    def call(self, batch, training=False):
        return self.inner(batch, training=training)

    def train_step(self, batch):
        with tf.GradientTape() as tape:
            total = self.objective.compute(_targets(batch), self.inner(batch, training=True))[0]
        variables = self.inner.trainable_variables
        gradients, _ = tf.clip_by_global_norm(tape.gradient(total, variables), OPTIMIZER.clip_norm)
        self.optimizer.apply(gradients, variables)
        return {"loss": total}


def _fit_model(xla: bool) -> tuple[FitModel, tf.data.Dataset]:
    make_deterministic(0)
    model = FitModel(build_model("tiny", 40), _loss())
    model.compile(optimizer=build_optimizer(OPTIMIZER, 10**6), jit_compile=xla)
    batch = next(_stream().iterate())
    return model, tf.data.Dataset.from_tensors(batch).repeat()


def _project(xla: bool) -> tuple[Trainer, dict]:
    make_deterministic(0)
    trainer = Trainer(build_model("tiny", 40), _loss(), OPTIMIZER, GuardSettings(), TrainerSettings(xla=xla),
                      _stream())
    return trainer, {k: tf.constant(v) for k, v in next(_stream().iterate()).items()}


def measure(steps: int, xla: bool, rounds: int = 6) -> dict:
    fit_model, data = _fit_model(xla)
    trainer, batch = _project(xla)
    scale = tf.constant(1.0)
    per_round = max(steps // rounds, 5)
    fit_model.fit(data, steps_per_epoch=3, epochs=1, verbose=0)  # trace and warm up both
    for _ in range(3):
        trainer._train_step(batch, scale).numpy()
    fit_times, project_times = [], []
    for _ in range(rounds):
        started = time.perf_counter()
        fit_model.fit(data, steps_per_epoch=per_round, epochs=1, verbose=0)
        fit_times.append((time.perf_counter() - started) / per_round)
        started = time.perf_counter()
        for _ in range(per_round):
            trainer._train_step(batch, scale).numpy()   # the project's step hands every metric out each step
        project_times.append((time.perf_counter() - started) / per_round)
    ratios = [p / f for p, f in zip(project_times, fit_times)]
    # Keras compiles with XLA only models it judges XLA-safe; otherwise it warns and runs without.
    return {"xla": xla, "keras_jit_compile": bool(fit_model.jit_compile), "batch": BATCH, "frames": FRAMES,
            "steps_per_round": per_round, "rounds": rounds,
            "keras_fit_ms": 1000 * statistics.median(fit_times), "project_ms": 1000 * statistics.median(project_times),
            "project_over_fit": statistics.median(ratios), "project_over_fit_per_round": [round(r, 3) for r in ratios],
            "device": "GPU" if tf.config.list_physical_devices("GPU") else "CPU"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.keras_fit", description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=120)
    parser.add_argument("--out", type=Path, default=Path("reports/bench/keras_fit.json"))
    args = parser.parse_args(argv)
    if args.steps < 30:
        parser.error(f"--steps: must be >= 30, got {args.steps}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)   # Keras's notes on the dataset adapter and jit_compile
        results = [measure(args.steps, xla) for xla in (False, True)]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1))
    for r in results:
        compiled = ("" if r["keras_jit_compile"] == r["xla"]
                    else " (Keras refused jit_compile for this model: fit ran without XLA)")
        print(f"keras fit vs the project's step ({r['device']}, xla={r['xla']}{compiled}): fit {r['keras_fit_ms']:.1f} ms, "
              f"project {r['project_ms']:.1f} ms, ratio {r['project_over_fit']:.2f} (goal <= 1.00: at least as fast)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
