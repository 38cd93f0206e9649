"""Report speed: an experiment of 100 runs x 2,000 steps x 20 metrics, from MLflow records to report.md.

    python -m benchmarks.report_speed [--runs 100] [--steps 2000] [--out reports/bench/report_speed.json]

Runs, params and tags are created through MlflowClient; the 4 million metric rows are bulk-inserted
into the same SQLite tables MLflow writes (logging them through the client would take an hour and is
not what is measured). The timed part is analysis alone: load_experiment + build_report.
"""
from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")

import numpy as np
from mlflow import MlflowClient
from mlflow.entities import Param

from analysis.load import HISTORY_KEYS, load_experiment
from analysis.report import build_report
from myxtts import record

PRESETS = (("legacy", "none", "old"), ("legacy_fixed", "none", "new"), ("enhanced", "legacy_tanh", "old"),
           ("basic", "none", "new"), ("stable_adaptive", "stable", "new"))


def build_store(directory: Path, runs: int, steps: int) -> str:
    uri = f"sqlite:///{directory / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment = client.create_experiment("bench")
    rng = np.random.default_rng(0)
    keys = HISTORY_KEYS[:20]
    rows: list[tuple] = []
    latest: list = []
    for index in range(runs):
        preset, weighting, system = PRESETS[index % len(PRESETS)]
        diverged = rng.random() < 0.3
        run = client.create_run(experiment, run_name=f"{preset}-s{index}", tags={
            record.PRESET: preset, record.SYSTEM: system, record.SEED: str(index // len(PRESETS)),
            record.OUTCOME: record.DIVERGED if diverged else record.STABLE, record.BEST_VALIDATION: str(rng.random()),
            record.FIRST_NONFINITE_STEP: str(steps // 2) if diverged else "", record.TRAIN_SECONDS: "60"})
        run_id = run.info.run_id
        client.log_batch(run_id, params=[Param("weighting.name", weighting), Param("trainer.steps", str(steps)),
                                         Param("optim.lr_multiplier", "1.0")])
        client.set_terminated(run_id, "FINISHED")
        step = np.arange(steps)
        for key in keys:
            values: np.ndarray = 10.0 * np.exp(-step / steps) + rng.normal(0, 0.1, steps)
            if key == "weight/mel":
                values = 2.5 * 0.95 ** (step // 200)
            nan = np.zeros(steps, bool)
            if diverged:
                nan[steps // 2:] = True
            rows.extend(zip([key] * steps, np.where(nan, 0.0, values).tolist(), [0] * steps, [run_id] * steps,
                            step.tolist(), nan.astype(int).tolist()))
            latest.append((key, float(values[-1]), 0, steps - 1, 0, run_id))
    with sqlite3.connect(directory / "mlflow.db") as connection:
        connection.executemany("INSERT INTO metrics (key, value, timestamp, run_uuid, step, is_nan) "
                               "VALUES (?, ?, ?, ?, ?, ?)", rows)
        connection.executemany("INSERT INTO latest_metrics (key, value, timestamp, step, is_nan, run_uuid) "
                               "VALUES (?, ?, ?, ?, ?, ?)", latest)
    return uri


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.report_speed", description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--out", type=Path, default=Path("reports/bench/report_speed.json"))
    args = parser.parse_args(argv)
    if args.runs < 1 or args.steps < 10:
        parser.error("--runs must be >= 1 and --steps >= 10")
    with tempfile.TemporaryDirectory() as scratch:
        started = time.perf_counter()
        uri = build_store(Path(scratch), args.runs, args.steps)
        built = time.perf_counter() - started
        started = time.perf_counter()
        data = load_experiment("bench", uri)
        loaded = time.perf_counter() - started
        build_report(data, Path(scratch) / "report")
        total = time.perf_counter() - started
    result = {"runs": args.runs, "steps": args.steps, "metrics": 20, "points": len(data.history),
              "load_seconds": round(loaded, 2), "report_seconds": round(total, 2), "target_seconds": 30,
              "store_build_seconds": round(built, 1)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(f"report for {args.runs} runs x {args.steps} steps x 20 metrics ({len(data.history):,} points): "
          f"{total:.1f} s (load {loaded:.1f} s; target <= 30 s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
