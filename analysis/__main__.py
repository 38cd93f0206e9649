"""python -m analysis [--experiment NAME] [--tracking-uri URI] [--out reports/NAME] | --evidence reports/NAME/evidence"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")

from analysis import evidence
from analysis.load import UnknownExperiment, attach_to_parent, latest_experiment
from analysis.report import PROJECT_ROOT, render, write_report_for
from myxtts import record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m analysis", description="MLflow runs (or a report's evidence) → markdown report",
        epilog="From a store the report's evidence is written beside it (reports/NAME/evidence); "
               "--evidence re-renders a report from that folder alone, without the store.")
    parser.add_argument("--experiment", help="default: the experiment with the most recent run")
    parser.add_argument("--tracking-uri", default=record.default_store(PROJECT_ROOT))
    parser.add_argument("--out", type=Path, help="default: reports/<experiment> (with --evidence: the folder above it)")
    parser.add_argument("--evidence", type=Path, metavar="DIR",
                        help="render from this evidence folder instead of a store (nothing is written to it)")
    parser.add_argument("--no-parent", action="store_true",
                        help="do not attach the report to the experiment's newest sweep parent run")
    args = parser.parse_args(argv)
    if args.evidence:
        try:
            found = evidence.read(args.evidence)
        except evidence.EvidenceError as error:
            print(f"error: --evidence: {error}", file=sys.stderr)
            return 2
        print(f"report: {render(found, args.out or args.evidence.resolve().parent)}")
        return 0
    uri = args.tracking_uri
    if uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///"):]).is_file():
        print(f"error: --tracking-uri: no MLflow database at {uri[len('sqlite:///'):]}", file=sys.stderr)
        return 2
    # MLflow's client would retry a dead or foreign server for minutes: asked once, as the runner asks.
    problem = record.server_problem(uri) if uri.startswith(("http://", "https://")) else None
    if problem:
        print(f"error: --tracking-uri={uri} {problem}: allowed the address of a running MLflow server, or "
              f"the sqlite:///path of a store", file=sys.stderr)
        return 2
    try:
        experiment = args.experiment or latest_experiment(uri)
        out = args.out or PROJECT_ROOT / "reports" / experiment
        path = write_report_for(experiment, uri, out.parent, folder=out.name)
    except UnknownExperiment as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"report: {path} (evidence: {path.parent / evidence.FOLDER})")
    if not args.no_parent:
        parent = attach_to_parent(uri, experiment, path.parent, PROJECT_ROOT)
        if parent:
            print(f"report attached to sweep parent run {parent} (artifacts/report)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
