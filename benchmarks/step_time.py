"""Train-step cost: the tiny model on batch 8 of ~2 s utterances, what the stable strategy and the guards
add over static weights, and what the per-layer diagnostics cost at their default interval (both against
the same step without them). Interleaves the configurations so machine noise hits them alike.

    python -m benchmarks.step_time [--steps 60] [--xla] [--out reports/bench/step_time.json]
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
from myxtts.data.dataset import BatchStream, Example
from myxtts.models.xtts import build_model
from myxtts.training.losses import XTTSLoss
from myxtts.training.optim import OptimizerSettings
from myxtts.training.diagnostics import DiagnosticsSettings
from myxtts.training.settings import GuardSettings
from myxtts.training.trainer import Trainer, TrainerSettings, make_deterministic

FRAMES, TOKENS, BATCH = 176, 40, 8  # ~2 s of audio at hop 256 / 22050 Hz


def _stream() -> BatchStream:
    rng = np.random.default_rng(0)
    examples = [Example(f"x{i}", f"s{i % 2}", rng.integers(2, 40, TOKENS).astype(np.int32),
                        rng.normal(size=(FRAMES, 80)).astype(np.float32)) for i in range(BATCH * 2)]
    return BatchStream(examples, BATCH, 0, 96, fixed_shapes=True)


def _trainer(weighting: str, guarded: bool, xla: bool, diagnostics: int | None = None, size: str = "tiny") -> Trainer:
    make_deterministic(0)
    model = build_model(size, 40)
    loss = XTTSLoss(mel_loss_weight=2.5, weighting=weighting, spike_dampening=guarded)
    guards = GuardSettings(nonfinite="skip" if guarded else "propagate", spike_dampening=guarded)
    return Trainer(model, loss, OptimizerSettings(lr=1e-4, clip_norm=1.0), guards,
                   TrainerSettings(steps=10**6, xla=xla), _stream(),
                   diagnostics=DiagnosticsSettings() if diagnostics is None else DiagnosticsSettings(every=diagnostics))


def measure(steps: int, xla: bool, rounds: int = 10) -> dict:
    configs = {"none": _trainer("none", False, xla), "stable+guards": _trainer("stable", True, xla),
               "none, diagnostics off": _trainer("none", False, xla, diagnostics=0)}
    batch = {k: tf.constant(v) for k, v in next(_stream().iterate()).items()}
    scale = tf.constant(1.0)
    for trainer in configs.values():  # compile and warm up
        for _ in range(3):
            trainer._train_step(batch, scale).numpy()
    samples: dict[str, list[float]] = {name: [] for name in configs}
    for _ in range(rounds):
        for name, trainer in configs.items():
            started = time.perf_counter()
            for _ in range(steps // rounds):
                trainer._train_step(batch, scale).numpy()
            samples[name].append((time.perf_counter() - started) / (steps // rounds))
    result = {name: statistics.median(values) * 1000 for name, values in samples.items()}
    # Per-round ratios of back-to-back measurements cancel slow drifts of the machine's speed.
    ratios = [guarded / plain for plain, guarded in zip(samples["none"], samples["stable+guards"])]
    diagnosed = [on / off for on, off in zip(samples["none"], samples["none, diagnostics off"])]
    return {"diagnostics_every": DiagnosticsSettings().every,
            "diagnostics_overhead_percent": 100 * (statistics.median(diagnosed) - 1),
            "diagnostics_overhead_percent_per_round": [round(100 * (r - 1), 2) for r in diagnosed],
            "xla": xla, "batch": BATCH, "frames": FRAMES, "tokens": TOKENS, "rounds": rounds,
            "ms_per_step": result, "overhead_percent": 100 * (statistics.median(ratios) - 1),
            "overhead_percent_per_round": [round(100 * (r - 1), 2) for r in ratios],
            "device": "GPU" if tf.config.list_physical_devices("GPU") else "CPU"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.step_time", description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--xla", action="store_true", help="compile the step with XLA")
    parser.add_argument("--out", type=Path, default=Path("reports/bench/step_time.json"))
    args = parser.parse_args(argv)
    if args.steps < 10:
        parser.error(f"--steps: must be >= 10, got {args.steps}")
    result = measure(args.steps, args.xla)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    ms = result["ms_per_step"]
    print(f"train step ({result['device']}, xla={args.xla}, batch {BATCH} x {FRAMES} frames): "
          f"none {ms['none']:.1f} ms, stable+guards {ms['stable+guards']:.1f} ms, "
          f"overhead {result['overhead_percent']:+.1f} % (target <= 3 %)")
    print(f"diagnostics every {result['diagnostics_every']} steps: {ms['none']:.1f} ms vs "
          f"{ms['none, diagnostics off']:.1f} ms without, overhead {result['diagnostics_overhead_percent']:+.1f} % "
          f"(target <= 3 %)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
