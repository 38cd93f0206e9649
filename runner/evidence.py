"""python -m runner.evidence reports/NAME/evidence [...] [--tracking-uri URI]

Imports a report's evidence (analysis/evidence.py) back into a store, so a sweep whose store is lost (a new
machine) continues where it stopped: each finished run is re-created with its tags, params, config and the
metric series the evidence holds, and a later launch of the sweep skips it by its configuration hash. Runs
that had not finished are not imported: they train again. A run whose configuration already finished in the
store is left alone, so importing twice imports nothing the second time.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections import Counter
from pathlib import Path

os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")

import pandas as pd
from mlflow import MlflowClient
from mlflow.entities import Metric

from analysis import evidence
from analysis.load import RunRecord
from myxtts import record
from runner import tracking
from runner.schema import ConfigError

FINISHED = tracking.STATUS["FINISHED"]


def _recreate(client: MlflowClient, experiment_id: str, run: RunRecord, series: pd.DataFrame | None,
              origin: str) -> str:
    # The sweep parent the run belonged to is not in this store; the run says where it came from instead.
    tags = {k: v for k, v in run.tags.items() if k not in (record.PARENT, "mlflow.runName")}
    tags[record.IMPORTED_FROM] = f"{origin}:{run.run_id}"
    run_id = client.create_run(experiment_id, start_time=run.start_time, tags=tags, run_name=run.run_name).info.run_id
    tracking.log_params(client, run_id, dict(run.params))
    if series is not None and len(series):
        start = run.start_time or 0   # the evidence keeps no metric timestamps: one millisecond per step
        metrics = [Metric(key, float(value), start + int(step), int(step))
                   for key, step, value in zip(series["metric"], series["step"], series["value"])]
        for first in range(0, len(metrics), tracking.MAX_METRICS_PER_BATCH):
            client.log_batch(run_id, metrics=metrics[first:first + tracking.MAX_METRICS_PER_BATCH], synchronous=True)
    if run.config is not None:
        with tempfile.TemporaryDirectory() as scratch:
            (Path(scratch) / record.CONFIG_ARTIFACT).write_text(run.config)
            client.log_artifact(run_id, str(Path(scratch) / record.CONFIG_ARTIFACT))
    client.set_terminated(run_id, status=FINISHED, end_time=run.end_time)
    return run_id


def import_evidence(folder: Path, tracking_uri: str | None = None) -> tuple[str, Counter]:
    """The evidence's finished runs, re-created in the store; returns the experiment and what happened to
    each run ("imported", "already finished in the store", "not finished (trains again)", "no configuration
    hash (not the runner's)")."""
    found = evidence.read(folder)
    uri, artifacts = tracking.resolve_store(tracking_uri, None)
    tracking.check_reachable(uri)
    client = tracking.ensure_store(uri)
    experiment_id = tracking.experiment_id(client, found.experiment, artifacts)
    series = dict(tuple(found.history.groupby("run_id", sort=False)))
    counts: Counter = Counter()
    for run in found.runs:
        chash = run.tags.get(record.CONFIG_HASH)
        if run.status != FINISHED:
            counts["not finished (trains again)"] += 1
            continue
        if not chash:
            counts["no configuration hash (not the runner's)"] += 1
            continue
        # Under the store's lock, as a job claims a run: a sweep running beside the import never trains a
        # configuration while its finished run is being re-created.
        with tracking.store_lock(uri):
            if any(r.info.status == FINISHED for r in tracking.runs_with_hash(client, experiment_id, chash)):
                counts["already finished in the store"] += 1
                continue
            _recreate(client, experiment_id, run, series.get(run.run_id), str(folder))
        counts["imported"] += 1
    return found.experiment, counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runner.evidence",
                                     description="import reports' evidence into a store: a re-launched sweep "
                                                 "skips the finished runs it holds")
    parser.add_argument("folders", nargs="+", type=Path, metavar="EVIDENCE", help="e.g. reports/scaling/evidence")
    parser.add_argument("--tracking-uri", help="default: the project's store (mlflow.db)")
    args = parser.parse_args(argv)
    for folder in args.folders:
        try:
            experiment, counts = import_evidence(folder, args.tracking_uri)
        except (evidence.EvidenceError, ConfigError) as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        print(f"{folder}: experiment {experiment}: " + ", ".join(f"{n} {what}" for what, n in sorted(counts.items())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
