"""sweep=frontier as a user runs it: a 2-rate x 2-preset grid end to end into a temporary store, its report,
and the refinement stage's plan read back from that store."""
import subprocess
import sys

import pytest
from launch import ENV
from launch import base_args as _base
from launch import run as _run
from launch import runs_of as _runs

from runner.schema import PROJECT_ROOT

pytestmark = pytest.mark.slow


def test_frontier_grid_classifies_frozen_and_diverged_runs_and_plans_the_refinement(tmp_path, small_corpus):
    args = ["-m", "sweep=frontier", "+preset=basic,upstream", "optim.lr=1e-3,1.0", "trainer.steps=20",
            "trainer.validate_every=10", "data.subset=null", "trainer.synthesize=false", *_base(tmp_path, small_corpus)]
    result = _run(args)
    assert result.returncode == 0, result.stdout + result.stderr
    _client, runs = _runs(tmp_path, "frontier")
    children = {(r.data.tags["preset"], float(r.data.params["optim.lr"])): r.data.tags
                for r in runs if r.data.tags.get("sweep") != "true"}
    assert set(children) == {("basic", 1e-3), ("basic", 1.0), ("upstream", 1e-3), ("upstream", 1.0)}
    # upstream's float16 overflows are zeroed before the loss scaler sees them: the run trains nothing.
    frozen = children[("upstream", 1e-3)]
    assert frozen["outcome"] == "frozen" and frozen["loss_scale_moved"] == "false"
    assert int(frozen["noop_steps"]) > int(frozen["update_steps"]) / 2
    assert children[("upstream", 1.0)]["outcome"] != "stable"
    assert children[("basic", 1.0)]["outcome"] == "diverged"
    learned = children[("basic", 1e-3)]
    assert learned["outcome"] == "stable"
    assert float(learned["best_validation"]) < 0.9 * float(learned["initial_validation"])

    report = (tmp_path / "reports" / "frontier" / "report.md").read_text()
    for section in ("## Outcome rules", "## Outcomes per configuration and learning rate", "## Critical learning rate",
                    "## LR sensitivity (Wortsman et al. 2023)", "## Early warning"):
        assert section in report
    assert "| basic | tiny (0.78 M) | 0.001 | 1 | 1 | 0 | 0 | 0 |" in report   # runs, stable, diverged, frozen, not_learning
    assert (tmp_path / "reports" / "frontier" / "final_loss_vs_lr.png").stat().st_size > 10_000

    refine = subprocess.run([sys.executable, "-m", "runner.refine", "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}",
                             "--dry-run", "--", "trainer.steps=20"], cwd=PROJECT_ROOT, capture_output=True, text=True,
                            env=ENV, timeout=300)
    assert refine.returncode == 0, refine.stderr
    # basic is stable at 1e-3 and fails at 1.0: two rates a third and two thirds of the way, in log rate.
    assert "refine basic at tiny (0.78 M): lr 0.01, 0.1 x 5 seeds" in refine.stdout
    assert "+preset=basic model=tiny trainer.steps=20 optim.lr=0.01,0.1" in refine.stdout
    # The edge is divergence alone: upstream's frozen run at 1e-3 is no divergence, so it has a bracket exactly
    # when its run at 1.0 diverged.
    assert ("refine upstream at tiny" in refine.stdout) == (children[("upstream", 1.0)]["outcome"] == "diverged")
    unknown = subprocess.run([sys.executable, "-m", "runner.refine", "--experiment", "nope", "--tracking-uri",
                              f"sqlite:///{tmp_path / 'mlflow.db'}"], cwd=PROJECT_ROOT, capture_output=True, text=True,
                             env=ENV, timeout=300)
    assert unknown.returncode == 2 and unknown.stderr.startswith("error: experiment 'nope' not found")
