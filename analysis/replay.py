"""The design note's worked examples replayed through every weighting strategy, next to its printed tables.

    python -m analysis.replay [--out reports/replay]

Writes replay.md and replay.json (computed and printed weights, and the stable weighting's safety checks),
which the claims audit of every report reads.

The strategies run in a child process (`python -m myxtts.training.replay`): analysis itself never
imports TensorFlow.
"""
from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
from pathlib import Path

import pandas as pd

from analysis.report import PROJECT_ROOT, markdown_table
import itertools

# What the design note prints for each scenario (step → mel weight); NaN where it prints a failure.
PRINTED = {
    "decreasing_then_spike": {
        "old (printed)": {0: 2.5, 50: 2.8, 100: 3.2, 150: 3.8, 200: 4.6, 250: 5.0, 300: 5.0, 350: 5.0, 400: math.nan},
        "new (printed)": {0: 2.5, 50: 2.5, 100: 2.5, 150: 2.5, 200: 2.4, 250: 2.4, 300: 2.3, 350: 2.3, 400: 2.3,
                       500: 2.2},
    },
    "plateau_spike_recovery": {
        "old (printed)": {100: 3.5, 101: 3.5, 102: math.nan},
        "new (printed)": {100: 2.5, 101: 2.5, 102: 2.5, 152: 2.4},
    },
}
# The documents' old and new weighting, listed first; the replay's other strategies follow as it lists them.
DOCUMENTED = ("legacy_tanh", "stable")
TITLES = {"decreasing_then_spike": "Scenario 1: loss 10 → 0.5 over 300 steps, spike to 100 at step 350",
          "plateau_spike_recovery": "Scenario 2: loss 2.0, spike to 100.0 at step 101, recovery"}


def run_strategies(base_weight: float = 2.5) -> dict:
    """{"base_weight", "scenarios": {name: {"loss", "strategies"}}, "safety_checks"} from the child process."""
    completed = subprocess.run([sys.executable, "-m", "myxtts.training.replay", "--base-weight", str(base_weight)],
                               capture_output=True, text=True, cwd=PROJECT_ROOT, check=False)
    if completed.returncode != 0:
        raise RuntimeError(f"replay failed: {completed.stderr.strip().splitlines()[-1:]}")
    return json.loads(completed.stdout)


def scenario_table(name: str, data: dict) -> pd.DataFrame:
    printed = PRINTED[name]
    steps = sorted(set().union(*[set(v) for v in printed.values()]))
    rows = []
    for step in steps:
        row = {"step": step, "loss": data["loss"][step]}
        for label, values in printed.items():
            row[label] = values.get(step, math.nan)
        for strategy in dict.fromkeys([*DOCUMENTED, *data["strategies"]]):
            row[strategy] = data["strategies"][strategy]["weight"][step]
        stable = data["strategies"]["stable"]
        row["stable decision"] = stable["decision"][step]
        row["stable w·L (dampened)"] = stable["weighted_loss"][step]
        rows.append(row)
    return pd.DataFrame(rows)


def write(out_dir: Path, results: dict) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    lines = ["# The design note's worked scenarios, replayed", "",
             "Each loss trace is fed to every weighting strategy (base mel weight 2.5, no model). "
             "Columns marked (printed) are what the note prints; the others are what the formulas compute.",
             "uncertainty, dwa and gradnorm learn from a model or balance several terms, so with a lone mel "
             "trace they keep their starting weight.", ""]
    for name, data in results["scenarios"].items():
        table = scenario_table(name, data)
        old = data["strategies"]["legacy_tanh"]["weight"]
        stable = data["strategies"]["stable"]["weight"]
        changes = [i for i in range(1, len(stable)) if stable[i] != stable[i - 1]]
        lines += [f"## {TITLES[name]}", "", markdown_table(table), "",
                  f"- legacy_tanh weight stays within [{min(old):.3f}, {max(old):.3f}]: its factor "
                  f"0.5 + 0.5·tanh(ratio − 1) never exceeds 1, so the weight cannot climb above the base.",
                  f"- stable changes the weight {len(changes)} times"
                  + (f", first at step {changes[0]}, at least {min(b - a for a, b in itertools.pairwise(changes))} "
                     f"steps apart" if len(changes) > 1 else (f", at step {changes[0]}" if changes else "")) + ".", ""]
    lines += ["## The stable weighting's safety checks", "",
              *[f"{i}. {check}" for i, check in enumerate(results["safety_checks"], 1)], ""]
    path = out_dir / "replay.md"
    path.write_text("\n".join(lines) + "\n")
    (out_dir / "replay.json").write_text(json.dumps(_for_claims(results), indent=1, allow_nan=True) + "\n")
    return path


def _for_claims(results: dict) -> dict:
    """What the claims audit needs: per scenario the printed tables and the old/new computed weights."""
    printed = lambda table: {str(k): (None if math.isnan(v) else v) for k, v in table.items()}  # noqa: E731
    return {"base_weight": results["base_weight"], "safety_checks": results["safety_checks"],
            "scenarios": {name: {"printed": {label: printed(t) for label, t in PRINTED[name].items()},
                                 "strategies": {s: {"weight": data["strategies"][s]["weight"]}
                                                for s in DOCUMENTED}}
                          for name, data in results["scenarios"].items()}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m analysis.replay", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "reports" / "replay")
    args = parser.parse_args(argv)
    print(f"replay: {write(args.out, run_strategies())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
