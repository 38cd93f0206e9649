"""Sweep throughput on this machine: the same 6-job sweep (3 presets x 2 seeds) one job after another, then
with the joblib launcher (one job per core, one TensorFlow thread each). Reports training steps per wall
second of the whole sweep, and each launch's job efficiency: the time jobs spent in training (the
trainer's clock: steps, validation, checkpoints) over their wall time (also data, model build, tracing,
weights, sample, MLflow).

    python -m benchmarks.sweep_throughput [--steps 500] [--jobs N] [--out reports/bench/sweep_throughput.json]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mlflow import MlflowClient

from myxtts import record
from runner.schema import PROJECT_ROOT

PRESETS, SEEDS = "basic,legacy,enhanced", "0,1"


def launch(store: Path, steps: int, parallel: list[str]) -> dict:
    args = [sys.executable, "-m", "runner", "-m", f"+preset={PRESETS}", f"seed={SEEDS}", f"trainer.steps={steps}",
            "experiment=throughput", f"tracking.uri=sqlite:///{store / 'mlflow.db'}",
            f"runner.checkpoint_root={store / 'ckpt'}", f"runner.report_dir={store / 'reports'}",
            f"hydra.sweep.dir={store / 'sweep'}", "runner.report=false", *parallel]
    started = time.perf_counter()
    done = subprocess.run(args, cwd=PROJECT_ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode:
        raise RuntimeError(f"the sweep failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    client = MlflowClient(f"sqlite:///{store / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("throughput")
    if experiment is None:
        raise RuntimeError(f"the sweep wrote no experiment 'throughput' into {store / 'mlflow.db'}")
    runs = [r for r in client.search_runs([experiment.experiment_id])
            if r.data.tags.get(record.PARENT)]
    train = sum(float(r.data.tags[record.TRAIN_SECONDS]) for r in runs)
    job = sum(float(r.data.tags[record.JOB_SECONDS]) for r in runs)
    total_steps = sum(int(r.data.tags[record.STEPS_COMPLETED]) for r in runs)

    def mean(key: str) -> float | None:
        values = [float(r.data.tags[key]) for r in runs if key in r.data.tags]
        return round(sum(values) / len(values), 2) if values else None

    # Where a job's time goes: building (corpus check, features, model), training (tracing, steps, validation,
    # checkpoints), finishing (weights, sample), MLflow metric writes; the rest is run bookkeeping and start-up.
    breakdown = {"setup": mean(record.SETUP_SECONDS), "train": mean(record.TRAIN_SECONDS),
                 "finish": mean(record.FINISH_SECONDS), "metric_logging": mean(record.LOGGING_SECONDS),
                 "job": mean(record.JOB_SECONDS)}
    return {"jobs": len(runs), "wall_seconds": round(wall, 1), "steps": total_steps, "per_job_seconds": breakdown,
            "steps_per_second": round(total_steps / wall, 2), "job_efficiency": round(train / job, 3),
            "train_seconds": round(train, 1), "job_seconds": round(job, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.sweep_throughput", description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=500, help="training steps per job")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="parallel jobs (default: cores)")
    parser.add_argument("--out", type=Path, default=Path("reports/bench/sweep_throughput.json"))
    args = parser.parse_args(argv)
    if args.steps < 10 or args.jobs < 2:
        parser.error(f"--steps >= 10 and --jobs >= 2 are needed, got {args.steps} and {args.jobs}")
    threads = max(1, (os.cpu_count() or 1) // args.jobs)
    with tempfile.TemporaryDirectory() as serial_dir, tempfile.TemporaryDirectory() as parallel_dir:
        serial = launch(Path(serial_dir), args.steps, [])
        parallel = launch(Path(parallel_dir), args.steps, ["hydra/launcher=joblib", f"hydra.launcher.n_jobs={args.jobs}",
                                                           f"trainer.threads={threads}"])
    result = {"presets": PRESETS, "seeds": SEEDS, "steps_per_job": args.steps, "cores": os.cpu_count(),
              "parallel_jobs": args.jobs, "threads_per_job": threads, "serial": serial, "joblib": parallel,
              "speedup": round(parallel["steps_per_second"] / serial["steps_per_second"], 2)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(f"sweep throughput, 6 jobs x {args.steps} steps on {os.cpu_count()} cores: serial "
          f"{serial['steps_per_second']:.1f} steps/s in {serial['wall_seconds']:.0f} s, joblib x{args.jobs} "
          f"({threads} thread each) {parallel['steps_per_second']:.1f} steps/s in {parallel['wall_seconds']:.0f} s: "
          f"{result['speedup']:.2f}x (goal >= 1.5x)")
    print(f"job efficiency (training time / job wall time): serial {serial['job_efficiency']:.0%}, joblib "
          f"{parallel['job_efficiency']:.0%} (goal >= 85 % for 500-step jobs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
