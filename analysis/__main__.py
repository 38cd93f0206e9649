"""python -m analysis [--experiment NAME] [--tracking-uri URI] [--out reports/NAME]"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")

from analysis.load import UnknownExperiment, attach_to_parent, latest_experiment, load_experiment
from analysis.report import PROJECT_ROOT, build_report, read_benchmark, read_replay
from myxtts import record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m analysis", description="MLflow runs → markdown report")
    parser.add_argument("--experiment", help="default: the experiment with the most recent run")
    parser.add_argument("--tracking-uri", default=record.default_store(PROJECT_ROOT))
    parser.add_argument("--out", type=Path, help="default: reports/<experiment>")
    parser.add_argument("--no-parent", action="store_true",
                        help="do not attach the report to the experiment's newest sweep parent run")
    args = parser.parse_args(argv)
    uri = args.tracking_uri
    if uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///"):]).is_file():
        print(f"error: --tracking-uri: no MLflow database at {uri[len('sqlite:///'):]}", file=sys.stderr)
        return 2
    try:
        experiment = args.experiment or latest_experiment(uri)
        data = load_experiment(experiment, uri)
    except UnknownExperiment as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    path = build_report(data, args.out or PROJECT_ROOT / "reports" / experiment, read_benchmark(), read_replay())
    print(f"report: {path}")
    if not args.no_parent:
        parent = attach_to_parent(uri, experiment, path.parent)
        if parent:
            print(f"report attached to sweep parent run {parent} (artifacts/report)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
