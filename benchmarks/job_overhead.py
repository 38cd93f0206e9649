"""Where one sweep job's time goes outside its training steps, phase by phase, in a fresh process as a
launcher's worker starts one: imports, building (corpus check, features, model, trainer), tracing the
step, the first call (TensorFlow's graph optimization and the first execution), a steady step, saving the
weights and rendering the validation sample. Each phase is measured once more with TensorFlow's graph
optimizer (grappler) off, to show what that phase costs; the runner keeps it on.

    python -m benchmarks.job_overhead [--preset basic] [--threads 1] [--steps 30] [--out reports/bench/job_overhead.json]
"""
from __future__ import annotations

import time

STARTED = time.perf_counter()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

from runner.schema import PROJECT_ROOT  # noqa: E402


def measure(preset: str, threads: int, steps: int, graph_optimizer: bool) -> dict:
    """One job's phases, in this process (run it in a fresh one)."""
    from hydra import compose, initialize_config_dir

    from myxtts.backend import tf
    from myxtts.samples import render_validation_sentence
    from myxtts.training.run import build
    from runner.schema import validate

    with initialize_config_dir(str(PROJECT_ROOT / "conf"), version_base="1.3"):
        # The default sweep's job: its horizon and sample length, one TensorFlow thread as under joblib.
        s = validate(compose("config", overrides=["sweep=before_after", f"+preset={preset}",
                                                  f"trainer.threads={threads}"]))
    if not graph_optimizer:
        tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": True})
    phases = {"imports": time.perf_counter() - STARTED}
    with tempfile.TemporaryDirectory() as scratch:
        clock = time.perf_counter()
        built = build(s, Path(scratch) / "ckpt", say=lambda _: None)
        phases["build"] = time.perf_counter() - clock
        trainer = built.trainer
        batches = trainer.train_stream.iterate()
        tensors, scale = trainer.inject(0, next(batches))
        clock = time.perf_counter()
        trainer._train_step.get_concrete_function(tensors, scale)
        phases["trace"] = time.perf_counter() - clock
        clock = time.perf_counter()
        trainer._train_step(tensors, scale).numpy()
        phases["first_call"] = time.perf_counter() - clock
        times = []
        for step in range(1, steps + 1):
            tensors, scale = trainer.inject(step, next(batches))
            clock = time.perf_counter()
            trainer._train_step(tensors, scale).numpy()
            times.append(time.perf_counter() - clock)
        phases["steady_step"] = statistics.median(times)
        clock = time.perf_counter()
        built.model.save_weights(Path(scratch) / "model.weights.h5")
        phases["save_weights"] = time.perf_counter() - clock
        clock = time.perf_counter()
        render_validation_sentence(built.model, built.data, built.mel_spec, Path(scratch) / "samples",
                                   s.trainer.synthesis_max_frames)
        phases["sample"] = time.perf_counter() - clock
    return {key: round(value, 3) for key, value in phases.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.job_overhead", description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="basic")
    parser.add_argument("--threads", type=int, default=1, help="TensorFlow threads, as trainer.threads")
    parser.add_argument("--steps", type=int, default=30, help="steps after the first, for the steady step time")
    parser.add_argument("--out", type=Path, default=Path("reports/bench/job_overhead.json"))
    parser.add_argument("--phases", choices=["on", "off"], help=argparse.SUPPRESS)  # one measurement, in this process
    args = parser.parse_args(argv)
    if args.threads < 1 or args.steps < 1:
        parser.error(f"--threads and --steps must be >= 1, got {args.threads} and {args.steps}")
    if args.phases:
        print(json.dumps(measure(args.preset, args.threads, args.steps, args.phases == "on")))
        return 0
    result = {"preset": args.preset, "threads": args.threads, "cores": os.cpu_count()}
    for mode in ("on", "off"):
        done = subprocess.run([sys.executable, "-m", "benchmarks.job_overhead", "--preset", args.preset,
                               "--threads", str(args.threads), "--steps", str(args.steps), "--phases", mode],
                              cwd=PROJECT_ROOT, capture_output=True, text=True)
        if done.returncode:
            print(f"error: the measurement failed: {done.stderr.strip()[-500:]}", file=sys.stderr)
            return 1
        result[f"graph_optimizer_{mode}"] = json.loads(done.stdout.strip().splitlines()[-1])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    on, off = result["graph_optimizer_on"], result["graph_optimizer_off"]
    print(f"one {args.preset} job's phases ({args.threads} thread), seconds: "
          + ", ".join(f"{key} {value:.2f}" for key, value in on.items() if key != "steady_step")
          + f"; steady step {on['steady_step'] * 1000:.0f} ms")
    print(f"with the graph optimizer off: first call {off['first_call']:.2f} s (on: {on['first_call']:.2f} s), "
          f"steady step {off['steady_step'] * 1000:.0f} ms (on: {on['steady_step'] * 1000:.0f} ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
