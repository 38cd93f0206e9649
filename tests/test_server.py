"""Scale-out for real: a shared tracking server (PostgreSQL on 127.0.0.1, `mlflow server --serve-artifacts` over
it) that a sweep of 2 presets x 2 seeds in 2 parallel jobs is sent to, and a local Ray cluster on 127.0.0.1 that
runs such a sweep's jobs through Hydra's Ray launcher. Nothing may be lost on the way."""
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from launch import ENV, base_args, runs_of, steps_of
from launch import run as _run
from mlflow import MlflowClient

from runner.schema import ConfigError
from runner.server import LocalPostgres, MlflowServer, free_port, postgres_bin

pytestmark = pytest.mark.slow

try:
    postgres_bin()
    MISSING = ""
except ConfigError as error:  # .ci/run installs it where it can (as root)
    MISSING = str(error)


@pytest.fixture
def server(tmp_path):
    if MISSING:
        pytest.skip(MISSING)
    # Not under tmp_path: as root, PostgreSQL runs as `postgres`, which cannot enter pytest's private folders.
    cluster = Path(tempfile.mkdtemp(prefix="myxtts-postgres-"))
    database = LocalPostgres(cluster, free_port())
    tracking = None
    try:
        database.start()   # makes the password the server's URI carries
        tracking = MlflowServer(database.uri, tmp_path / "served", free_port())
        with open(tmp_path / "server.log", "w") as log:
            tracking.start(log=log)
        yield tracking
    finally:
        if tracking:
            tracking.stop()
        database.stop()
        shutil.rmtree(cluster, ignore_errors=True)


def test_a_parallel_sweep_into_a_postgres_backed_server_loses_nothing(tmp_path, small_corpus, server):
    result = _run(["-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2",
                   "+preset=basic,legacy", "seed=0,1", "trainer.steps=12", "trainer.synthesis_max_frames=16",
                   "experiment=shared", "tracking=server", f"tracking.uri={server.uri}", f"data.path={small_corpus}",
                   "data.utterances=16", "data.speakers=2", "data.max_seconds=4.0", f"data.cache_dir={tmp_path / 'c'}",
                   f"runner.checkpoint_root={tmp_path / 'ckpt'}", f"runner.report_dir={tmp_path / 'reports'}",
                   f"hydra.sweep.dir={tmp_path / 'sweep'}", "trainer.batch_size=2", "tracking.flush_every=5"])
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    client = MlflowClient(server.uri)
    runs = client.search_runs([client.get_experiment_by_name("shared").experiment_id])
    parents = [r for r in runs if r.data.tags.get("sweep") == "true"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId")]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED" and len(children) == 4
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == {parents[0].info.run_id}
    assert {(r.data.tags["preset"], r.data.tags["seed"]) for r in children} == {
        (p, s) for p in ("basic", "legacy") for s in ("0", "1")}
    for child in children:
        assert child.info.status == "FINISHED" and child.data.params["trainer.steps"] == "12"
        for key in ("loss/total", "weight/mel", "grad/norm"):
            assert sorted(m.step for m in client.get_metric_history(child.info.run_id, key)) == list(range(12))
        artifacts = {a.path for a in client.list_artifacts(child.info.run_id)}
        assert {"checkpoint", "config.yaml"} <= artifacts, artifacts
        # One sample per configuration: its first seed's run renders it, the other says where it is.
        first_seed = child.data.tags["seed"] == "0"
        assert ("samples" in artifacts) == first_seed and ("sample" in child.data.tags) != first_seed
        assert first_seed or child.data.tags["sample"].startswith("not rendered: in a sweep, only the first seed")
    # The report at the sweep's end read the same server (analysis) and went back to it as an artifact.
    assert "report" in {a.path for a in client.list_artifacts(parents[0].info.run_id)}
    assert (tmp_path / "reports" / "shared" / "report.md").read_text().count("basic") >= 1


def test_the_database_password_is_on_no_command_line_and_the_server_writes_to_postgres(server):
    """A command line is readable by every user of the machine (ps, /proc/PID/cmdline); the backend URI with
    the database's password reaches `mlflow server` by its environment, which only its owner reads."""
    from urllib.parse import urlparse

    import psycopg2

    backend = urlparse(server.backend)
    assert backend.password and len(backend.password) >= 24
    session, members, exposed = server.process.pid, [], []   # start_new_session: it heads its own session
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            stat, cmdline = (entry / "stat").read_text(), (entry / "cmdline").read_bytes()
        except OSError:   # ended while we looked
            continue
        if backend.password.encode() in cmdline:
            exposed.append(cmdline.replace(b"\0", b" ").decode(errors="replace"))
        if int(stat.rsplit(")", 1)[1].split()[3]) == session:
            members.append(int(entry.name))
    assert not exposed, exposed   # no process of the machine, the server's workers included
    assert session in members and len(members) >= 3, members   # mlflow server and its 2 workers were looked at
    environ = Path(f"/proc/{session}/environ").read_bytes().split(b"\0")
    assert f"MLFLOW_BACKEND_STORE_URI={server.backend}".encode() in environ
    # ... and MLflow took it from there: what the server records lands in PostgreSQL (not a default SQLite file)
    MlflowClient(server.uri).create_experiment("in-postgres")
    connection = psycopg2.connect(host=backend.hostname, port=backend.port, user=backend.username,
                                  password=backend.password, dbname=backend.path.lstrip("/"), connect_timeout=10)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT name FROM experiments WHERE name = 'in-postgres'")
            assert cursor.fetchall() == [("in-postgres",)]
    finally:
        connection.close()


# Ray replaces a loopback address with the machine's own unless told this is a one-machine cluster; with it,
# every Ray process listens on 127.0.0.1 only. The runner's process needs it too, to connect to that address.
LOOPBACK_RAY = {**ENV, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}


@pytest.fixture
def ray_cluster():
    ray = Path(sys.executable).parent / "ray"
    if not ray.exists():
        pytest.skip("Ray is not installed (it comes with hydra-ray-launcher)")
    temp = Path(tempfile.mkdtemp(prefix="myxtts-ray-"))   # short: Ray's socket paths live under it
    port = free_port()
    started = subprocess.run([str(ray), "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}",
                              "--num-cpus=2", "--include-dashboard=false", "--disable-usage-stats",
                              f"--temp-dir={temp}"], capture_output=True, text=True, env=LOOPBACK_RAY, timeout=120)
    try:
        assert started.returncode == 0, started.stdout[-2000:] + started.stderr[-2000:]
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run([str(ray), "stop", "--force"], capture_output=True, env=LOOPBACK_RAY, timeout=120)
        shutil.rmtree(temp, ignore_errors=True)


def test_a_sweep_through_the_ray_launcher_on_a_local_ray_cluster_loses_nothing(tmp_path, small_corpus, ray_cluster):
    result = _run(["-m", "hydra/launcher=ray_cluster", f"hydra.launcher.ray.init.address={ray_cluster}",
                   "+preset=basic,legacy", "seed=0", "trainer.steps=12",
                   "trainer.synthesize=false", "experiment=ray", *base_args(tmp_path, small_corpus)],
                  env=LOOPBACK_RAY)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert f"Connecting to existing Ray cluster at address: {ray_cluster}" in result.stderr + result.stdout
    client, runs = runs_of(tmp_path, "ray")
    parents = [r for r in runs if r.data.tags.get("sweep") == "true"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId")]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED" and len(children) == 2
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == {parents[0].info.run_id}
    assert sorted(k for k in parents[0].data.tags if k.startswith("job/")) == ["job/0", "job/1"]
    assert parents[0].data.tags["pid"] not in {r.data.tags["pid"] for r in children}   # Ray's workers trained them
    for child in children:
        assert child.info.status == "FINISHED"
        for key in ("loss/total", "weight/mel", "grad/norm"):
            assert steps_of(client, child.info.run_id, key) == list(range(12))
    assert (tmp_path / "reports" / "ray" / "report.md").is_file()


def test_make_server_needs_its_generated_password_and_sigterm_stops_both_servers(tmp_path):
    if MISSING:
        pytest.skip(MISSING)
    import signal
    import socket

    import psycopg2

    from runner.schema import PROJECT_ROOT

    root = Path(tempfile.mkdtemp(prefix="myxtts-server-"))
    root.chmod(0o755)   # PostgreSQL (as `postgres`) must enter it to reach its own folder inside
    mlflow_port, postgres_port = free_port(), free_port()
    process = subprocess.Popen([sys.executable, "-m", "runner.server", "--port", str(mlflow_port), "--postgres-port",
                                str(postgres_port), "--root", str(root)], cwd=PROJECT_ROOT, env=ENV, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        seen = []
        for line in process.stdout:
            seen.append(line)
            if line.startswith(("tracking server:", "error:")):
                break
        assert seen and seen[-1].startswith("tracking server:"), "".join(seen)
        password_file = root / "postgres" / "password"
        assert (password_file.stat().st_mode & 0o777) == 0o600
        assert password_file.read_text().strip() not in "".join(seen)   # never printed
        login = {"host": "127.0.0.1", "port": postgres_port, "user": "mlflow", "dbname": "mlflow", "connect_timeout": 10}
        with pytest.raises(psycopg2.OperationalError, match="password"):
            psycopg2.connect(**login, password="not-the-password")
        psycopg2.connect(**login, password=password_file.read_text().strip()).close()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=120) == 0
        for port in (mlflow_port, postgres_port):   # both servers are gone
            with socket.socket() as probe, pytest.raises(OSError):
                probe.settimeout(2)
                probe.connect(("127.0.0.1", port))
        assert not (root / "postgres" / "data" / "postmaster.pid").exists()
    finally:
        if process.poll() is None:
            process.kill()
        LocalPostgres(root / "postgres", postgres_port).stop()
        shutil.rmtree(root, ignore_errors=True)
