"""The GPU-scale step: `model=base` with `trainer=gpu` (batch 32, XLA, bfloat16) on synthetic batches, its
time per step and model FLOP utilization (MFU). Where TensorFlow sees no GPU it says so and measures nothing.

MFU = achieved FLOP/s / the device's dense bf16 peak, with the transformer estimate FLOPs/step = 6 x
parameters x (frames + text tokens) x batch (forward + backward, attention's own products left out).

    python -m benchmarks.gpu_step [--steps 50] [--out reports/bench/gpu_step.json]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from myxtts.backend import tf

import keras

# Dense bf16 peaks (FLOP/s) of the accelerators this lab is run on; others report time only.
PEAK_BF16 = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L4": 121e12}
FRAMES, TOKENS = 400, 120


def measure(steps: int) -> dict:
    from myxtts.data.dataset import BatchStream, Example
    from myxtts.models.xtts import build_model
    from myxtts.training.losses import XTTSLoss
    from myxtts.training.settings import GuardSettings, OptimizerSettings, TrainerSettings
    from myxtts.training.trainer import Trainer, make_deterministic

    settings = TrainerSettings(batch_size=32, xla=True, precision="mixed_bfloat16")
    keras.mixed_precision.set_global_policy(settings.precision)
    make_deterministic(0)
    rng = np.random.default_rng(0)
    examples = [Example(f"x{i}", f"s{i % 4}", rng.integers(2, 60, TOKENS).astype(np.int32),
                        rng.normal(size=(FRAMES, 80)).astype(np.float32)) for i in range(64)]
    stream = BatchStream(examples, settings.batch_size, 0, 96, fixed_shapes=True)
    model = build_model("base", 60)
    trainer = Trainer(model, XTTSLoss(mel_loss_weight=2.5, weighting="none"), OptimizerSettings(lr=1e-4, clip_norm=1.0),
                      GuardSettings(), settings, stream)
    batch = {k: tf.constant(v) for k, v in next(stream.iterate()).items()}
    scale = tf.constant(1.0)
    for _ in range(3):
        trainer._train_step(batch, scale).numpy()
    times = []
    for _ in range(steps):
        started = time.perf_counter()
        trainer._train_step(batch, scale).numpy()
        times.append(time.perf_counter() - started)
    seconds = statistics.median(times)
    parameters = int(sum(np.prod(v.shape) for v in model.trainable_variables))
    flops = 6 * parameters * (FRAMES + TOKENS) * settings.batch_size
    name = tf.config.experimental.get_device_details(tf.config.list_physical_devices("GPU")[0]).get("device_name", "")
    peak = next((value for key, value in PEAK_BF16.items() if key in name), None)
    return {"device": name, "batch": settings.batch_size, "frames": FRAMES, "tokens": TOKENS, "parameters": parameters,
            "ms_per_step": 1000 * seconds, "flops_per_step_estimate": flops, "tflops_per_second": flops / seconds / 1e12,
            "mfu": flops / seconds / peak if peak else None}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gpu_step", description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--out", type=Path, default=Path("reports/bench/gpu_step.json"))
    args = parser.parse_args(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if not tf.config.list_physical_devices("GPU"):
        result = {"skipped": "TensorFlow sees no GPU on this machine"}
        print(f"gpu step (model=base, trainer=gpu): skipped, {result['skipped']}")
    else:
        result = measure(args.steps)
        mfu = f"{result['mfu']:.1%}" if result["mfu"] is not None else "n/a (unknown peak)"
        print(f"gpu step ({result['device']}, model=base, batch 32, xla, bf16): {result['ms_per_step']:.1f} ms, "
              f"{result['tflops_per_second']:.1f} TFLOP/s, MFU {mfu}")
    args.out.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
