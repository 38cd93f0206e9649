"""python -m runner.refine [--experiment frontier] [--points 2] [--configurations A,B] [--dry-run] [-- OVERRIDE ...]

The failure frontier's second stage. Reads the grid's outcomes from MLflow (analysis.frontier), and for
every configuration with a failing grid rate above an all-stable one launches one Hydra multirun
(sweep=frontier_refine: 5 seeds) at `--points` rates inside that bracket, into the same experiment. Finished
runs are skipped by their config hash, so a killed refinement continues where it stopped. The last multirun
writes the experiment's report. Overrides after `--` go to every multirun (e.g. the joblib launcher).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys

os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")

from analysis import frontier
from analysis.load import UnknownExperiment, load_experiment
from analysis.tables import number
from myxtts import record
from runner.schema import PROJECT_ROOT


def commands(plan: dict[tuple[str, str], list[float]], horizons: dict[tuple[str, str], int], experiment: str,
             tracking_uri: str, extra: list[str]) -> list[list[str]]:
    """One multirun per (configuration, size), at the size and horizon its grid runs trained with; only the last
    one writes the report."""
    out = []
    for index, ((preset, size), lrs) in enumerate(plan.items()):
        out.append([sys.executable, "-m", "runner", "-m", "sweep=frontier_refine", f"+preset={preset}",
                    f"model={frontier.SIZE_OF_LABEL.get(size, size)}", f"trainer.steps={horizons[(preset, size)]}",
                    "optim.lr=" + ",".join(f"{lr:g}" for lr in lrs), f"experiment={experiment}",
                    f"tracking.uri={tracking_uri}", f"runner.report={str(index == len(plan) - 1).lower()}", *extra])
    return out


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[:argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(prog="python -m runner.refine", description=__doc__.splitlines()[2])
    parser.add_argument("--experiment", default="frontier")
    parser.add_argument("--tracking-uri", default=record.default_store(PROJECT_ROOT))
    parser.add_argument("--points", type=int, default=2, help="rates inside each bracket (2 or 3)")
    parser.add_argument("--configurations", help="comma-separated presets to refine, in this order (default: all)")
    parser.add_argument("--dry-run", action="store_true", help="print the multiruns, run none")
    args = parser.parse_args(argv)
    if args.points not in (2, 3):
        print(f"error: --points={args.points} is invalid: allowed 2 or 3", file=sys.stderr)
        return 2
    try:
        data = load_experiment(args.experiment, args.tracking_uri, keys=())
    except UnknownExperiment as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if not frontier.is_grid(data.runs):
        print(f"error: experiment {args.experiment!r} has no learning-rate grid yet (run python -m runner -m "
              f"sweep=frontier first)", file=sys.stderr)
        return 2
    plan = frontier.refinement_plan(data.runs, args.points)
    if args.configurations:
        wanted = [name.strip() for name in args.configurations.split(",") if name.strip()]
        known = sorted(set(data.runs.get(record.tag_column(record.PRESET), [])))
        unknown = [name for name in wanted if name not in known]
        if unknown:
            print(f"error: --configurations: {', '.join(unknown)} not in experiment {args.experiment!r}: allowed "
                  f"{', '.join(known)}", file=sys.stderr)
            return 2
        plan = {key: plan[key] for name in wanted for key in plan if key[0] == name}
    if not plan:
        print("nothing to refine: no configuration fails at a grid rate above an all-stable one")
        return 0
    done = frontier.judged(data.runs)
    steps = number(done, "trainer.steps")
    horizons = {key: int(steps[group.index].max()) for key, group in frontier.groups(done) if key in plan}
    for (preset, size), lrs in plan.items():
        print(f"refine {preset} at {size}: lr {', '.join(f'{lr:g}' for lr in lrs)} x 5 seeds, "
              f"{horizons[(preset, size)]} steps")
    status = 0
    for command in commands(plan, horizons, args.experiment, args.tracking_uri, extra):
        print(" ".join(command[1:]), flush=True)
        if not args.dry_run:
            status = subprocess.run(command, cwd=PROJECT_ROOT).returncode or status
    return status


if __name__ == "__main__":
    sys.exit(main())
