"""python -m analysis.ui [--tracking-uri URI] [--port 5000]: the MLflow UI over the lab's store, on 127.0.0.1.

MLflow 3 opens an experiment on its GenAI overview (traces, token usage) unless the address says the
workflow is model training; this prints the address of the latest experiment's runs table, then becomes
the MLflow UI process.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")

from mlflow import MlflowClient

from myxtts import record

from analysis.load import UnknownExperiment, latest_experiment
from analysis.report import PROJECT_ROOT


def runs_table_url(base: str, experiment_id: str) -> str:
    return f"{base}/#/experiments/{experiment_id}?workflowType=machine_learning"


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
        experiment = MlflowClient(uri).get_experiment_by_name(latest_experiment(uri))
        if experiment is None:
            raise UnknownExperiment(uri)
        print(f"MLflow UI of {uri}; the latest experiment's runs: {runs_table_url(base, experiment.experiment_id)}",
              flush=True)
    except UnknownExperiment:
        print(f"MLflow UI of {uri} (no runs yet): {base}", flush=True)
    os.execv(sys.executable, [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri,
                              "--host", "127.0.0.1", "--port", str(args.port)])
    return 0  # not reached: execv replaces this process


if __name__ == "__main__":
    sys.exit(main())
