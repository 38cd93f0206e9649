"""Launching the runner as a user does (`python -m runner ...` in a subprocess) into a temporary store."""
import os
import subprocess
import sys

from mlflow import MlflowClient

from runner.schema import PROJECT_ROOT

ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}


def base_args(tmp_path, corpus, store="mlflow.db"):
    return [f"tracking.uri=sqlite:///{tmp_path / store}", f"tracking.artifact_location={tmp_path / 'art'}",
            f"data.path={corpus}", "data.utterances=16", "data.speakers=2", "data.max_seconds=4.0",
            f"data.cache_dir={tmp_path / 'cache'}", f"runner.checkpoint_root={tmp_path / 'ckpt'}",
            f"runner.report_dir={tmp_path / 'reports'}", f"hydra.run.dir={tmp_path / 'hydra'}",
            f"hydra.sweep.dir={tmp_path / 'hydra-sweep'}", "trainer.batch_size=2",
            "trainer.synthesis_max_frames=16", "tracking.flush_every=7", "tracking.progress_every=10",
            "trainer.threads=1"]   # the tests run two at a time on two cores: one TensorFlow thread per job


def run(args, timeout=600, env=ENV, **kwargs):
    return subprocess.run([sys.executable, "-m", "runner", *args], cwd=PROJECT_ROOT, capture_output=True, text=True,
                          timeout=timeout, env=env, **kwargs)


def start(args, **kwargs):
    """A runner process whose output (stdout and stderr together) is read line by line."""
    return subprocess.Popen([sys.executable, "-m", "runner", *args], cwd=PROJECT_ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=ENV, **kwargs)


def read_until(process, text):
    """Lines of the process's output up to the first that contains `text` (all of it if none does)."""
    seen = []
    for line in process.stdout:
        seen.append(line)
        if text in line:
            break
    return seen


def runs_of(tmp_path, experiment, store="mlflow.db"):
    client = MlflowClient(f"sqlite:///{tmp_path / store}")
    found = client.get_experiment_by_name(experiment)
    return client, (client.search_runs([found.experiment_id]) if found else [])


def steps_of(client, run_id, key="loss/total"):
    return sorted(m.step for m in client.get_metric_history(run_id, key))
