"""The runner as a user runs it: `python -m runner ...` in a subprocess, into a temporary MLflow store."""
import os
import signal
import subprocess
import sys

import pytest
from mlflow import MlflowClient

from runner.schema import PROJECT_ROOT

pytestmark = pytest.mark.slow


def _base(tmp_path, corpus):
    return [f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}", f"tracking.artifact_location={tmp_path / 'art'}",
            f"data.path={corpus}", "data.utterances=16", "data.speakers=2", "data.max_seconds=4.0",
            f"data.cache_dir={tmp_path / 'cache'}", f"runner.checkpoint_root={tmp_path / 'ckpt'}",
            f"runner.report_dir={tmp_path / 'reports'}", f"hydra.run.dir={tmp_path / 'hydra'}",
            f"hydra.sweep.dir={tmp_path / 'hydra-sweep'}", "trainer.batch_size=2",
            "trainer.synthesis_max_frames=16", "tracking.flush_every=7", "tracking.progress_every=10"]


def _run(args, timeout=600, **kwargs):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, "-m", "runner", *args], cwd=PROJECT_ROOT, capture_output=True, text=True,
                          timeout=timeout, env=env, **kwargs)


def _runs(tmp_path, experiment):
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    found = client.get_experiment_by_name(experiment)
    return client, (client.search_runs([found.experiment_id]) if found else [])


@pytest.mark.parametrize("override, message", [
    ("optim.lr=-1", "optim.lr=-1.0 is invalid: allowed a finite number > 0"),
    ("trainer.steps=abc", "trainer.steps"),
    ("weighting=magic", "weighting=magic is unknown: allowed dwa, gradnorm, legacy_tanh, none, stable, uncertainty"),
    ("+preset=turbo", "+preset=turbo is unknown: allowed basic, dwa, enhanced, gradnorm, legacy, legacy_fixed"),
])
def test_invalid_override_exits_2_with_one_line_and_no_run(tmp_path, small_corpus, override, message):
    result = _run([*_base(tmp_path, small_corpus), "experiment=bad", override], timeout=120)
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]
    assert _runs(tmp_path, "bad")[1] == []


def test_multirun_tracks_parent_children_and_survives_a_divergence(tmp_path, small_corpus):
    args = ["-m", "+preset=basic,stable_adaptive", "seed=0", "experiment=e2e", "trainer.steps=20",
            "fault=nan_batch", "fault.step=4", "trainer.validate_every=10", *_base(tmp_path, small_corpus)]
    result = _run(args)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "oneDNN" not in result.stderr and "cuda" not in result.stderr.lower()  # TF start-up noise stays hidden
    client, runs = _runs(tmp_path, "e2e")
    parents = [r for r in runs if r.data.tags.get("sweep") == "true"]
    children = {r.data.tags["preset"]: r for r in runs if r.data.tags.get("sweep") != "true"}
    assert len(parents) == 1 and set(children) == {"basic", "stable_adaptive"}
    parent = parents[0]
    assert parent.info.status == "FINISHED"
    for child in children.values():
        assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert child.info.status == "FINISHED"
        for tag in ("preset", "system", "seed", "config_hash", "git_commit", "git_dirty", "tf_version", "device"):
            assert child.data.tags[tag]
        assert child.data.params["optim.lr"] and child.data.params["weighting.name"]
    basic, stable = children["basic"], children["stable_adaptive"]
    # Without the skip guard the NaN batch poisons the weights: 10 non-finite steps → diverged.
    assert basic.data.tags["outcome"] == "diverged" and basic.data.tags["diverged_at_step"] == "13"
    assert basic.data.tags["first_nonfinite_step"] == "4"
    assert stable.data.tags["outcome"] == "stable" and stable.data.tags["skipped_steps"] == "1"
    history = client.get_metric_history(stable.info.run_id, "loss/total")
    assert [m.step for m in sorted(history, key=lambda m: m.step)] == list(range(20))
    assert len(client.get_metric_history(basic.info.run_id, "raw/mel")) == 14
    assert [m.step for m in client.get_metric_history(stable.info.run_id, "val/postnet")] == [9, 19]
    artifacts = {a.path for a in client.list_artifacts(stable.info.run_id)}
    assert {"config.yaml", "overrides.yaml", "checkpoint", "samples"} <= artifacts
    samples = {a.path for a in client.list_artifacts(stable.info.run_id, "samples")}
    assert "samples/validation_mel.png" in samples
    assert (tmp_path / "reports" / "e2e" / "report.md").is_file()

    again = _run(args)
    assert again.returncode == 0 and again.stdout.count("already finished") == 2
    assert len(_runs(tmp_path, "e2e")[1]) == len(runs) + 1  # only a new (empty) parent run


def test_sigterm_marks_killed_keeps_metrics_and_the_rerun_resumes(tmp_path, small_corpus):
    args = ["+preset=basic", "experiment=kill", "trainer.steps=120", "trainer.checkpoint_every=1000",
            "trainer.synthesize=false", *_base(tmp_path, small_corpus)]
    process = subprocess.Popen([sys.executable, "-m", "runner", *args], cwd=PROJECT_ROOT, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               env={**os.environ, "PYTHONUNBUFFERED": "1"})
    for line in process.stdout:
        if "step 20/120" in line:
            break
    process.send_signal(signal.SIGTERM)
    output = process.communicate(timeout=120)[0]
    assert process.returncode == 130, output
    client, runs = _runs(tmp_path, "kill")
    assert len(runs) == 1 and runs[0].info.status == "KILLED" and runs[0].data.tags["outcome"] == "killed"
    run_id = runs[0].info.run_id
    reached = int(runs[0].data.tags["steps_completed"])
    assert 20 <= reached < 120
    assert sorted(m.step for m in client.get_metric_history(run_id, "loss/total")) == list(range(reached))

    resumed = _run(args)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"resuming run {run_id}" in resumed.stdout
    client, runs = _runs(tmp_path, "kill")
    assert len(runs) == 1 and runs[0].info.status == "FINISHED" and runs[0].data.tags["outcome"] == "stable"
    assert sorted(m.step for m in client.get_metric_history(run_id, "loss/total")) == list(range(120))


def test_a_sqlite_store_keeps_its_artifacts_beside_the_database(tmp_path):
    from runner.tracking import resolve_store

    uri, artifacts = resolve_store(f"sqlite:///{tmp_path / 'x' / 'm.db'}", None)
    assert uri == f"sqlite:///{tmp_path / 'x' / 'm.db'}"
    assert artifacts == (tmp_path / "x" / "mlartifacts").as_uri()
