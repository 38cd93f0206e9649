"""The runner as a user runs it: `python -m runner ...` in a subprocess, into a temporary MLflow store."""
import json
import signal

import pytest
from launch import base_args as _base
from launch import run as _run
from launch import runs_of as _runs
from launch import start

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("override, message", [
    ("optim.lr=-1", "optim.lr=-1.0 is invalid: allowed a finite number > 0"),
    ("trainer.steps=abc", "trainer.steps"),
    ("weighting=magic", "weighting=magic is unknown: allowed dwa, gradnorm, legacy_tanh, none, stable, uncertainty"),
    ("+preset=turbo", "+preset=turbo is unknown: allowed basic, dwa, enhanced, enhanced_beta2, enhanced_fp16, "),
    ("+trainer.step=5", "trainer.step is unknown: did you mean trainer.steps? allowed keys of trainer: steps,"),
    ("preset=basic", "preset=basic is not how a preset is chosen: allowed +preset=NAME"),
    ("data.features.scale=mel", "data.features.scale='mel' is invalid: allowed one of ['standardized', 'log', "),
    ("trainer.precision=fp8", "trainer.precision='fp8' is invalid: allowed one of ['float32', 'mixed_bfloat16'"),
    ("model.attention_mask=none", "model.attention_mask='none' is invalid: allowed one of ['correct', 'inverted']"),
    ("optim.schedule=step", "optim.schedule='step' is invalid: allowed one of ['constant', 'noam', 'cosine', "),
    ("guards.nonfinite=ignore", "guards.nonfinite='ignore' is invalid: allowed one of ['propagate', 'skip', 'zero']"),
    ("data.subset=17", "data.subset=17 is invalid: allowed an integer in [1, 16] (the corpus's utterances) or null"),
    ("data.subset=0", "data.subset=0 is invalid: allowed an integer in [1, 16]"),
    # one bad value per remaining group, each refused by the settings class that holds it
    ("data.max_seconds=0", "data.max_seconds=0.0 is invalid: allowed a finite number > 0"),
    ("loss.huber_delta=0", "loss.huber_delta=0.0 is invalid: allowed a finite number > 0"),
    ("weighting.max_change_percent=2", "weighting.max_change_percent"),
    ("weighting=stable weighting.max_change_percent=2", "weighting.max_change_percent=2.0 is invalid: allowed a "
                                                        "number in (0, 1)"),
    ("weighting=dwa weighting.window=0", "weighting.window=0 is invalid: allowed an integer >= 1"),
    ("fault.kind=meteor", "fault.kind='meteor' is invalid: allowed one of ['none', 'spike', 'nan_batch', "),
    ("diagnostics.every=-1", "diagnostics.every=-1 is invalid: allowed an integer >= 0 (0 = off)"),
    ("tracking.flush_every=0", "tracking.flush_every=0 is invalid: allowed an integer >= 1"),
    ("runner.rerun=maybe", "runner.rerun"),
    ("system=ancient", "system='ancient' is invalid: allowed one of ['base', 'old', 'new', 'baseline']"),
    ("seed=-3", "seed=-3 is invalid: allowed an integer in [0, 4294967295]"),
    # NumPy's global generator (keras.utils.set_random_seed) takes no seed of 2**32 or more
    ("seed=4294967296", "seed=4294967296 is invalid: allowed an integer in [0, 4294967295]"),
    # a name MLflow would take, but not as a folder (<artifacts>/<experiment>); the line names its length, not it
    pytest.param(f"experiment={'x' * 300}", "experiment is 300 characters long: allowed at most 255 (it names a "
                 "folder", id="experiment-300-characters"),
    ("experiment=...", "experiment='...' is invalid: allowed a non-empty name of letters, digits, spaces"),
    ("fault=inf_weights fault.layer=nope", "fault.layer='nope' is invalid: allowed a weight path of the model"),
    ("experiment=\"it's\"", "experiment=\"it's\" is invalid: allowed a non-empty name of letters, digits, spaces"),
    ("hydra/launcher=ray_cluster hydra.launcher.ray.init.address=127.0.0.1:9",
     "hydra.launcher.ray.init.address=127.0.0.1:9 is unreachable ("),
    ("hydra/launcher=rq", "hydra/launcher=rq is unknown: allowed basic, joblib, ray, ray_aws, ray_cluster, slurm, "
                          "submitit_local, submitit_slurm; rq comes with the hydra-rq-launcher package "
                          "(pip install hydra-rq-launcher)"),
])
def test_invalid_override_exits_2_with_one_line_and_no_run(tmp_path, small_corpus, override, message, capfd):
    # The command's own entry point, in this process (a bad value never gets past the preflight).
    from runner.__main__ import main

    code = main([*_base(tmp_path, small_corpus), "experiment=bad", *override.split()])
    stderr = capfd.readouterr().err
    assert code == 2, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]
    client = _runs(tmp_path, "bad")[0]   # no run in any experiment (the override may name another one)
    assert client.search_runs([e.experiment_id for e in client.search_experiments()]) == []


def test_a_bad_value_in_a_sweep_list_stops_the_launch_in_one_line_before_any_run(tmp_path, small_corpus):
    """The sweeper checks every job of the expansion, inside Hydra, before the parent run exists."""
    result = _run(["-m", "experiment=badsweep", "optim.lr=1e-3,-1", *_base(tmp_path, small_corpus)])
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2 and lines == ["error: optim.lr=-1.0 is invalid: allowed a finite number > 0"], lines
    assert _runs(tmp_path, "badsweep")[1] == []


def test_multirun_tracks_parent_children_and_survives_a_divergence(tmp_path, small_corpus):
    args = ["-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2",
            "+preset=basic,stable_adaptive", "seed=0", "experiment=e2e", "trainer.steps=20",
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
    # The replay of step 4 finds where the NaN entered: the decoder's prenet reads the NaN mels first.
    assert (basic.data.tags["nan_origin_step"], basic.data.tags["nan_origin_layer"]) == ("4", "prenet_0")
    assert "nan_origin" in {a.path for a in client.list_artifacts(basic.info.run_id)}
    report = (tmp_path / "reports" / "e2e" / "report.md").read_text()
    assert "## Where divergence starts" in report
    for preset in ("basic", "stable_adaptive"):   # both met the NaN batch; stable_adaptive skipped it
        assert f"| {preset} | 1 | 1 | 1 | prenet_0: Dense + ReLU × 1 |" in report
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
    assert f"continuing parent run {parent.info.run_id}" in again.stdout
    assert len(_runs(tmp_path, "e2e")[1]) == len(runs)  # the same command continues the same parent


def test_sigterm_marks_killed_keeps_metrics_and_the_rerun_resumes(tmp_path, small_corpus):
    args = ["+preset=basic", "experiment=kill", "trainer.steps=120", "trainer.checkpoint_every=1000",
            "trainer.synthesize=false", *_base(tmp_path, small_corpus)]
    process = start(args)
    for line in process.stdout:
        if "step 20/120" in line:
            break
    process.send_signal(signal.SIGTERM)
    output = process.communicate(timeout=120)[0]
    assert process.returncode == 130, output
    client, runs = _runs(tmp_path, "kill")
    assert len(runs) == 1 and runs[0].info.status == "KILLED" and runs[0].data.tags["outcome"] == "killed"
    # The runs table says it without a column: the outcome first in the name; the description says what next.
    assert runs[0].info.run_name == "killed · basic · tiny · lr 1e-05 · s0"
    assert "stopped by a signal: the same command resumes it" in runs[0].data.tags["mlflow.note.content"]
    run_id = runs[0].info.run_id
    reached = int(runs[0].data.tags["steps_completed"])
    assert 20 <= reached < 120
    assert sorted(m.step for m in client.get_metric_history(run_id, "loss/total")) == list(range(reached))

    resumed = _run(args)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"resuming run {run_id}" in resumed.stdout
    client, runs = _runs(tmp_path, "kill")
    assert len(runs) == 1 and runs[0].info.status == "FINISHED" and runs[0].data.tags["outcome"] == "stable"
    assert runs[0].info.run_name == "stable · basic · tiny · lr 1e-05 · s0"   # the resume renamed it once more
    assert runs[0].data.tags["mlflow.note.content"].startswith("stable after 120 steps · best validation ")
    assert sorted(m.step for m in client.get_metric_history(run_id, "loss/total")) == list(range(120))
    assert not any(tag.startswith("nan_origin") for tag in runs[0].data.tags)   # nothing non-finite: no origin
    # Per-layer signals every diagnostics.every (10) steps, logged once each across the kill and the resume.
    assert [m.step for m in sorted(client.get_metric_history(run_id, "diag/grad/heads"), key=lambda m: m.step)] \
        == list(range(0, 120, 10))


def test_a_sqlite_store_keeps_its_artifacts_beside_the_database(tmp_path):
    from runner.tracking import resolve_store

    uri, artifacts = resolve_store(f"sqlite:///{tmp_path / 'x' / 'm.db'}", None)
    assert uri == f"sqlite:///{tmp_path / 'x' / 'm.db'}"
    assert artifacts == (tmp_path / "x" / "mlartifacts").as_uri()


@pytest.mark.parametrize("launcher", [["hydra/launcher=submitit_local"],
                                      ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"]],
                         ids=["submitit_local", "joblib"])
def test_jobs_in_other_processes_find_their_parent_and_lose_nothing(tmp_path, small_corpus, launcher):
    """Hydra launchers that run each job in another process, all writing one SQLite store: every child
    reaches the sweep's parent through MLflow, records its outcome on it, and every step's metrics are in
    the store."""
    result = _run(["-m", *launcher, "+preset=basic,legacy", "seed=0,1", "trainer.steps=12",
                   "trainer.synthesize=false", "experiment=parallel", *_base(tmp_path, small_corpus)])
    assert result.returncode == 0, result.stdout + result.stderr
    client, runs = _runs(tmp_path, "parallel")
    parents = [r for r in runs if r.data.tags.get("sweep") == "true"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId")]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert len(children) == 4 and {r.data.tags["mlflow.parentRunId"] for r in children} == {parents[0].info.run_id}
    assert sorted(k for k in parents[0].data.tags if k.startswith("job/")) == ["job/0", "job/1", "job/2", "job/3"]
    # The list the sweeper checked and launched is the list the parent counts and picks samples from: Hydra's
    # job n is the n-th job of the expansion (the first seed of each configuration renders the sample).
    assert parents[0].data.params["jobs"] == "4" and parents[0].data.tags["sample_jobs"] == "0,2"
    by_id = {r.info.run_id: r for r in children}
    for number, expected in enumerate([("basic", "0"), ("basic", "1"), ("legacy", "0"), ("legacy", "1")]):
        child = by_id[json.loads(parents[0].data.tags[f"job/{number}"])["run_id"]]
        assert (child.data.tags["preset"], child.data.tags["seed"]) == expected
    for child in children:
        assert child.info.status == "FINISHED" and child.data.params["trainer.steps"] == "12"
        assert sorted(m.step for m in client.get_metric_history(child.info.run_id, "loss/total")) == list(range(12))


def test_a_job_that_raises_ends_its_run_failed_with_the_error_and_its_traceback(tmp_path, small_corpus):
    """The corpus passes the launch check, but its only wav is not audio: the job raises while preparing
    the data, and its run ends FAILED with the one-line error and the traceback as an artifact."""
    import shutil

    corpus = tmp_path / "corrupt"
    (corpus / "wavs").mkdir(parents=True)
    first = (small_corpus / "metadata.csv").read_text().splitlines()[0]
    (corpus / "metadata.csv").write_text(first + "\n")
    shutil.copy(small_corpus / "speakers.csv", corpus / "speakers.csv")
    (corpus / "wavs" / f"{first.split('|')[0]}.wav").write_bytes(b"RIFF but not audio")
    done = _run([*_base(tmp_path, corpus), "data=ljspeech", f"data.path={corpus}", "experiment=broken", "+preset=basic",
                 "trainer.steps=2"])
    assert done.returncode == 1, done.stderr[-2000:]
    client, runs = _runs(tmp_path, "broken")
    assert len(runs) == 1 and runs[0].info.status == "FAILED"
    tags = runs[0].data.tags
    assert tags["outcome"] == "failed" and tags["error"].startswith("CorpusError: data.path: no usable utterance")
    assert runs[0].info.run_name == "failed · basic · tiny · lr 1e-05 · s0"
    assert tags["mlflow.note.content"].startswith("failed: CorpusError: data.path: no usable utterance")
    assert "traceback.txt" in [a.path for a in client.list_artifacts(runs[0].info.run_id)]


def test_help_names_the_lab_shows_usage_and_examples_and_lists_only_choosable_options():
    result = _run(["--help"], timeout=120)
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert text.startswith("MyXTTS Stability Lab: "), text[:200]
    assert "powered by Hydra" not in text and "_schema" not in text
    assert "Usage:\n  python -m runner [+preset=NAME]" in text
    examples = text.split("Examples:\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert len(examples) == 3 and all(line.startswith("  python -m runner ") for line in examples), examples
    choices = {line.split(":", 1)[0].strip(): line.split(":", 1)[1] for line in text.splitlines()
               if line.startswith("  ") and not line.startswith("   ") and ": " in line and "python" not in line}
    assert [o.strip() for o in choices["weighting"].split(",")] == ["dwa", "gradnorm", "legacy_tanh", "none",
                                                                     "stable", "uncertainty"]
    assert "tiny" in choices["model"] and "basic" in choices["+preset"] and "joblib" in choices["hydra/launcher"]
