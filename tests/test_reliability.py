"""Killed, repeated, concurrent and failing launches end in a right record, never a silent wrong one.

Each test runs the real runner in subprocesses (SIGTERM, SIGKILL, two at once) into a temporary store.
"""
import os
import signal
import time

import pytest
from launch import base_args, read_until, run, runs_of, start, steps_of
from mlflow import MlflowClient

pytestmark = pytest.mark.slow

KEYS = ("loss/total", "raw/mel", "grad/norm", "weight/mel")


def _one_run(tmp_path, experiment, store="mlflow.db"):
    client, runs = runs_of(tmp_path, experiment, store)
    assert len(runs) == 1, [r.info.run_name for r in runs]
    return client, runs[0]


def test_checkpoints_of_two_stores_never_meet_and_a_resume_keeps_time_and_best_validation(tmp_path, small_corpus):
    """The same configuration in two stores: B's run must not delete or feed A's checkpoint."""
    args = ["+preset=basic", "experiment=x", "trainer.steps=60", "trainer.validate_every=10",
            "trainer.synthesize=false"]
    first = start([*args, *base_args(tmp_path, small_corpus, "A.db")])
    read_until(first, "step 30/60")
    first.send_signal(signal.SIGTERM)
    assert first.wait(timeout=120) == 130
    client_a, killed = _one_run(tmp_path, "x", "A.db")
    assert killed.info.status == "KILLED"
    first_seconds = float(killed.data.tags["train_seconds"])
    other = run([*args, *base_args(tmp_path, small_corpus, "B.db")])
    assert other.returncode == 0, other.stdout + other.stderr
    assert "resuming" not in other.stdout

    again = run([*args, *base_args(tmp_path, small_corpus, "A.db")])
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"resuming run {killed.info.run_id}" in again.stdout and "continuing from its checkpoint" in again.stdout
    client_a, finished = _one_run(tmp_path, "x", "A.db")
    assert finished.info.status == "FINISHED" and finished.data.tags["outcome"] == "stable"
    for key in KEYS:
        assert steps_of(client_a, finished.info.run_id, key) == list(range(60)), key
    assert int(finished.data.tags["resumed_from_step"]) >= 30
    # Time and the best validation span both segments, not only the last one.
    assert float(finished.data.tags["train_seconds"]) > first_seconds
    validations = [m.value for m in client_a.get_metric_history(finished.info.run_id, "val/postnet")]
    assert sorted(m.step for m in client_a.get_metric_history(finished.info.run_id, "val/postnet")) == \
        [9, 19, 29, 39, 49, 59]
    assert float(finished.data.tags["best_validation"]) == pytest.approx(min(validations), rel=1e-6)
    _, b_run = _one_run(tmp_path, "x", "B.db")
    assert b_run.info.status == "FINISHED"


def test_the_same_command_twice_never_trains_one_run_from_two_processes(tmp_path, small_corpus):
    args = ["+preset=basic", "experiment=twice", "trainer.steps=80", "trainer.synthesize=false",
            *base_args(tmp_path, small_corpus)]
    first = start(args)
    read_until(first, "step 1/80")
    second = run(args, timeout=120)
    assert second.returncode == 1, second.stdout + second.stderr
    errors = [line for line in second.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and f"being trained by process {first.pid}" in errors[0] and "not taken over" in errors[0]
    first.communicate(timeout=300)
    assert first.returncode == 0
    client, only = _one_run(tmp_path, "twice")
    assert only.info.status == "FINISHED"
    for key in KEYS:
        assert steps_of(client, only.info.run_id, key) == list(range(80)), key
    assert only.data.tags["pid"] == str(first.pid)


def test_kill_9_before_and_after_a_checkpoint_resumes_the_same_run_with_every_step_once(tmp_path, small_corpus):
    args = ["+preset=stable_adaptive", "experiment=kill9", "trainer.steps=80", "trainer.checkpoint_every=20",
            "trainer.validate_every=20", "trainer.synthesize=false", *base_args(tmp_path, small_corpus)]
    process = start(args)
    read_until(process, "step 10/80")   # metrics flushed through step 6, no checkpoint yet
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=60)
    client, orphan = _one_run(tmp_path, "kill9")
    assert orphan.info.status == "RUNNING" and steps_of(client, orphan.info.run_id)

    process = start(args)
    output = read_until(process, "step 50/80")   # checkpoint at step 40, metrics through step 48
    assert any(f"resuming run {orphan.info.run_id}" in line and "from step 0" in line for line in output), output
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=60)
    assert max(steps_of(client, orphan.info.run_id)) >= 41

    resumed = run(args)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"resuming run {orphan.info.run_id}" in resumed.stdout
    client, finished = _one_run(tmp_path, "kill9")
    assert finished.info.status == "FINISHED" and finished.data.tags["resumed_from_step"] == "40"
    for key in KEYS:
        assert steps_of(client, finished.info.run_id, key) == list(range(80)), key
    assert steps_of(client, finished.info.run_id, "val/postnet") == [19, 39, 59, 79]


def test_two_first_launches_at_once_on_a_new_sqlite_store_both_succeed(tmp_path, small_corpus):
    processes = [start(["+preset=basic", "experiment=race", f"seed={seed}", "trainer.steps=5",
                        "trainer.synthesize=false", *base_args(tmp_path, small_corpus)]) for seed in (0, 1)]
    outputs = [p.communicate(timeout=300)[0] for p in processes]
    for process, output in zip(processes, outputs):
        assert process.returncode == 0, output
    client, runs = runs_of(tmp_path, "race")
    assert sorted(r.data.tags["seed"] for r in runs) == ["0", "1"]
    assert all(r.info.status == "FINISHED" for r in runs)
    assert len(client.search_experiments()) == 2  # Default and race: created once


def test_an_unreachable_tracking_server_stops_the_launch_in_one_line(tmp_path, small_corpus):
    started = time.monotonic()
    result = run(["+preset=basic", *base_args(tmp_path, small_corpus), "tracking=server",
                  "tracking.uri=http://127.0.0.1:9/"], timeout=120)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: tracking.uri=http://127.0.0.1:9/ is unreachable")
    assert time.monotonic() - started < 60
    assert not (tmp_path / "mlflow.db").exists()


def test_a_parallel_sweep_killed_with_its_workers_resumes_every_job_when_run_again(tmp_path, small_corpus):
    """`make sweep`'s launcher (joblib, one process per job) and the whole process group SIGKILLed, as a crash
    or a lost machine would: the same command continues the parent and resumes each job from its checkpoint."""
    args = ["-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "+preset=basic",
            "seed=0,1", "experiment=jobkill", "trainer.steps=40", "trainer.checkpoint_every=10",
            "trainer.synthesize=false", *base_args(tmp_path, small_corpus)]
    process = start(args, start_new_session=True)
    output = read_until(process, "step 30/40")   # that job checkpointed at step 20
    assert any("step 30/40" in line for line in output), output
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=60)
    client, runs = runs_of(tmp_path, "jobkill")
    parent = next(r for r in runs if r.data.tags.get("sweep") == "true")
    orphans = {r.info.run_id for r in runs if r.data.tags.get("mlflow.parentRunId")}
    assert parent.info.status == "RUNNING" and orphans
    assert all(client.get_run(run_id).info.status == "RUNNING" for run_id in orphans)

    again = run(args)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert f"continuing parent run {parent.info.run_id}" in again.stdout
    client, runs = runs_of(tmp_path, "jobkill")
    children = [r for r in runs if r.data.tags.get("sweep") != "true"]
    assert len(children) == 2 and orphans <= {c.info.run_id for c in children}
    assert all(c.data.tags["mlflow.parentRunId"] == parent.info.run_id for c in children)
    assert max(int(c.data.tags["resumed_from_step"]) for c in children) >= 20
    for child in children:
        assert child.info.status == "FINISHED"
        for key in KEYS:
            assert steps_of(client, child.info.run_id, key) == list(range(40)), key
    assert client.get_run(parent.info.run_id).info.status == "FINISHED"
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"jobs.json", "report"} <= artifacts
    assert "report/report.md" in {a.path for a in client.list_artifacts(parent.info.run_id, "report")}
    assert "+preset=basic seed=0,1" in client.get_run(parent.info.run_id).data.params["overrides"]
    assert client.get_experiment_by_name("jobkill").tags["mlflow.experimentKind"] == "custom_model_development"


def test_a_sweep_says_where_it_is_and_a_failing_report_fails_it_in_one_line(tmp_path, small_corpus):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    result = run(["-m", "+preset=basic", "seed=0,1", "experiment=badreport", "trainer.steps=3",
                  "trainer.synthesize=false", *base_args(tmp_path, small_corpus), f"runner.report_dir={blocker}"])
    assert result.returncode == 1, result.stdout + result.stderr
    assert "job 1/2 · 0 done (0 diverged, 0 failed, 0 skipped)" in result.stdout
    assert "job 2/2 · 1 done" in result.stdout
    assert "preparing data, building the model and compiling the training step" in result.stdout
    errors = [line for line in result.stderr.splitlines() if line.startswith("error")]
    assert len(errors) == 1 and errors[0].startswith("error: the report of experiment badreport failed")
    assert "Traceback" not in result.stderr
    _client, runs = runs_of(tmp_path, "badreport")
    parent = next(r for r in runs if r.data.tags.get("sweep") == "true")
    assert parent.info.status == "FAILED" and "report" in parent.data.tags["error"]


def test_an_empty_corpus_is_refused_before_any_run(tmp_path):
    corpus = tmp_path / "empty"
    corpus.mkdir()
    (corpus / "metadata.csv").write_text("\n")
    result = run(["+preset=basic", "data=ljspeech", f"data.path={corpus}", "experiment=empty",
                  f"tracking.uri=sqlite:///{tmp_path / 'm.db'}"], timeout=120)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "metadata.csv lists no usable utterance" in lines[0]
    assert not (tmp_path / "m.db").exists() or not MlflowClient(f"sqlite:///{tmp_path / 'm.db'}").search_runs(["0"])


def test_a_named_sweep_config_links_its_children_and_writes_the_report(tmp_path, small_corpus):
    """sweep=... configs carry sweeper keys such as +preset: the parent must still be set up."""
    result = run(["-m", "sweep=before_after", "+preset=basic", "seed=0", "trainer.steps=3", "data.subset=null",
                  "trainer.synthesize=false", *base_args(tmp_path, small_corpus)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "UserWarning: Callback" not in result.stderr
    client, runs = runs_of(tmp_path, "before_after")
    parent = next(r for r in runs if r.data.tags.get("sweep") == "true")
    children = [r for r in runs if r.data.tags.get("sweep") != "true"]
    assert parent.info.status == "FINISHED" and len(children) == 1
    assert children[0].data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert parent.data.params["sweep.preset"] == "enhanced,basic,stable_adaptive,upstream"
    assert "report/report.md" in {a.path for a in client.list_artifacts(parent.info.run_id, "report")}


def test_a_server_that_is_not_mlflow_and_a_broken_store_stop_the_launch_in_one_line(tmp_path, small_corpus, capfd):
    import functools
    import http.server
    import threading

    from runner.__main__ import main

    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "health").write_text("OK")   # answers /health with 200, and nothing else
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):   # the server's request log would land on this test's stderr
            pass

    handler = functools.partial(Quiet, directory=str(tmp_path / "site"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        uri = f"http://127.0.0.1:{server.server_address[1]}"
        code = main(["+preset=basic", *base_args(tmp_path, small_corpus), "tracking=server", f"tracking.uri={uri}"])
    finally:
        server.shutdown()
        server.server_close()
    lines = [line for line in capfd.readouterr().err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1
    assert lines[0].startswith(f"error: tracking.uri={uri} answers but is not an MLflow tracking server")
    (tmp_path / "broken.db").write_bytes(b"this is not a database" * 100)
    args = [a for a in base_args(tmp_path, small_corpus) if not a.startswith("tracking.uri=")]
    code = main(["+preset=basic", *args, f"tracking.uri=sqlite:///{tmp_path / 'broken.db'}"])
    lines = [line for line in capfd.readouterr().err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1, lines
    assert f"error: tracking.uri=sqlite:///{tmp_path / 'broken.db'} cannot be used as an MLflow store" in lines[0]


def test_sigterm_to_a_parallel_sweep_stops_its_workers_and_jobs_are_numbered_by_hydra(tmp_path, small_corpus):
    """SIGTERM to the launching process only (as `kill PID` does): its joblib workers stop their jobs at the
    next step (runs KILLED, parent KILLED), no worker outlives it, and the two workers print different job
    numbers."""
    from runner.workers import children

    args = ["-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "+preset=basic",
            "seed=0,1", "experiment=termsweep", "trainer.steps=400", "trainer.synthesize=false",
            *base_args(tmp_path, small_corpus)]
    process = start(args, start_new_session=True)
    output = read_until(process, "step 10/400")
    workers = children(process.pid)
    assert len(workers) >= 2, (workers, output)
    process.send_signal(signal.SIGTERM)
    output += process.stdout.readlines()
    assert process.wait(timeout=180) == 130, "".join(output[-40:])
    time.sleep(2)
    assert not [pid for pid in workers if os.path.exists(f"/proc/{pid}")], "".join(output[-40:])
    numbers = sorted(line.split("job ")[1].split("/")[0] for line in output if "sweep termsweep: job" in line)
    assert numbers[:2] == ["1", "2"], numbers
    _client, runs = runs_of(tmp_path, "termsweep")
    parent = next(r for r in runs if r.data.tags.get("sweep") == "true")
    children_runs = [r for r in runs if r.data.tags.get("sweep") != "true"]
    assert len(children_runs) == 2 and all(r.info.status == "KILLED" for r in children_runs), \
        [(r.info.status, r.data.tags.get("outcome")) for r in children_runs]
    assert parent.info.status == "KILLED"
    assert all(int(r.data.tags["steps_completed"]) < 400 for r in children_runs)


def test_an_artifact_root_that_cannot_be_written_stops_the_launch_in_one_line(tmp_path, small_corpus, capfd):
    from runner.__main__ import main

    blocker = tmp_path / "a-file"
    blocker.write_text("")
    args = [a for a in base_args(tmp_path, small_corpus) if not a.startswith("tracking.artifact_location=")]
    code = main(["+preset=basic", "experiment=noart", *args, f"tracking.artifact_location={blocker / 'art'}"])
    lines = [line for line in capfd.readouterr().err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1, lines
    assert lines[0].startswith(f"error: tracking.artifact_location={blocker / 'art'} cannot be written (Not a directory)")
    assert runs_of(tmp_path, "noart")[1] == []


def test_a_run_whose_artifact_store_breaks_ends_failed_with_its_error_in_one_line(tmp_path, small_corpus):
    """The experiment keeps its artifacts where nothing can be written (a path under a regular file; made
    elsewhere, so the launch's own artifact root is fine): the run's first artifact fails right after the
    run is created, and so does its traceback. The run still ends FAILED with the error, never RUNNING."""
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}").create_experiment(
        "unwritable", artifact_location=(blocker / "art").as_uri())
    result = run(["+preset=basic", "experiment=unwritable", "trainer.steps=2", "trainer.synthesize=false",
                  *base_args(tmp_path, small_corpus)], timeout=300)
    assert result.returncode == 1, result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    _client, failed = _one_run(tmp_path, "unwritable")
    assert lines[0].startswith(f"error: [basic seed=0 lr=1e-05] run {failed.info.run_id} FAILED: NotADirectoryError")
    assert "; not kept: its traceback (NotADirectoryError" in lines[0], lines[0]
    assert failed.info.status == "FAILED" and failed.data.tags["outcome"] == "failed"
    assert failed.data.tags["error"].startswith("NotADirectoryError")
