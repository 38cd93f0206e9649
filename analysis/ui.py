"""python -m analysis.ui [--tracking-uri URI] [--port 5000]: the MLflow UI over the lab's store, on 127.0.0.1.

MLflow 3 opens an experiment on its GenAI overview (traces, token usage) unless the address says the
workflow is model training; this prints the address of the latest experiment's runs table, then becomes
the MLflow UI process.

A run's name carries its outcome, preset, size, learning rate and seed (runner/lifecycle.py), but the runs
table's Run Name column is 190 px wide and cuts it after the outcome. The address therefore opens MLflow's
own shared view (what the UI's Share button makes: a view state kept as an experiment tag, named by the
address's viewStateShareKey) in which that column is wide enough for the whole name; nothing else changes.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")

from mlflow import MlflowClient

from myxtts import record

from analysis.load import UnknownExperiment, latest_experiment
from analysis.report import PROJECT_ROOT


# MLflow's shared view: the tag prefix, the lab's key, and the Run Name column as the UI's view state names it.
SHARED_VIEW_TAG, VIEW_KEY = "mlflow.sharedViewState.", "myxtts-runs"
RUN_NAME_COLUMN, RUN_NAME_WIDTH = "attributes.`Run Name`", 460


def runs_table_url(base: str, experiment_id: str, view: str | None = None) -> str:
    address = f"{base}/#/experiments/{experiment_id}/runs?workflowType=machine_learning"
    return f"{address}&viewStateShareKey={view}" if view else address


def share_view(client: MlflowClient, experiment_id: str) -> str | None:
    """The lab's view of the experiment's runs table (a Run Name column wide enough for a whole name), kept on
    the experiment; its key, or None when the store refuses the tag (the address then opens MLflow's default)."""
    state = {"columnOrder": [RUN_NAME_COLUMN], "columnWidths": {RUN_NAME_COLUMN: RUN_NAME_WIDTH}}
    try:
        client.set_experiment_tag(experiment_id, SHARED_VIEW_TAG + VIEW_KEY, json.dumps(state))
    except Exception:  # noqa: BLE001 - a read-only store still gets its UI, with MLflow's own column widths
        return None
    return VIEW_KEY


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m analysis.ui", description="MLflow UI over the lab's store")
    parser.add_argument("--tracking-uri", default=record.default_store(PROJECT_ROOT))
    parser.add_argument("--port", type=int, default=5000)
    args = parser.parse_args(argv)
    uri = args.tracking_uri
    if uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///"):]).is_file():
        print(f"error: --tracking-uri: no MLflow database at {uri[len('sqlite:///'):]} (run `make sweep` first)",
              file=sys.stderr)
        return 2
    if not 1 <= args.port <= 65535:
        print(f"error: --port={args.port} is invalid: allowed 1 to 65535", file=sys.stderr)
        return 2
    base = f"http://127.0.0.1:{args.port}"
    try:
        client = MlflowClient(uri)
        experiment = client.get_experiment_by_name(latest_experiment(uri))
        if experiment is None:
            raise UnknownExperiment(uri)
        view = share_view(client, experiment.experiment_id)
        print(f"MLflow UI of {uri}; the latest experiment's runs: "
              f"{runs_table_url(base, experiment.experiment_id, view)}", flush=True)
    except UnknownExperiment:
        print(f"MLflow UI of {uri} (no runs yet): {base}", flush=True)
    os.execv(sys.executable, [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri,
                              "--host", "127.0.0.1", "--port", str(args.port)])
    return 0  # not reached: execv replaces this process


if __name__ == "__main__":
    sys.exit(main())
