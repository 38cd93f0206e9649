"""MLflow bookkeeping: where the store is, experiments, parent/child runs, buffered metrics, artifacts.

Everything goes through an explicit MlflowClient (no global "active run"), so a sweep's parent run and
its children never step on each other.
"""
from __future__ import annotations

import contextlib
from collections.abc import Mapping
import fcntl
import hashlib
import math
import sqlite3
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunStatus, RunTag

from myxtts import record
from runner.schema import PROJECT_ROOT, ConfigError

MAX_METRICS_PER_BATCH = 1000   # MLflow's log_batch limits
MAX_PARAMS_PER_BATCH = 100
MAX_PARAM_LENGTH = 6000


def resolve_store(uri: str | None, artifact_location: str | None) -> tuple[str, str | None]:
    """(tracking URI, artifact root) as absolute locations, whatever directory Hydra runs the job in."""
    if not uri:
        uri = record.default_store(PROJECT_ROOT)
        artifact_location = artifact_location or str(PROJECT_ROOT / record.ARTIFACTS_DIR)
    elif uri.startswith("sqlite:///"):
        path = Path(uri[len("sqlite:///"):]).resolve()
        uri = f"sqlite:///{path}"
        # Without this, MLflow puts artifacts in ./mlruns of whatever directory the job runs in.
        artifact_location = artifact_location or str(path.parent / record.ARTIFACTS_DIR)
    elif "://" not in uri:
        uri = str(Path(uri).resolve())
    if artifact_location and "://" not in artifact_location:
        artifact_location = Path(artifact_location).resolve().as_uri()
    return uri, artifact_location


def is_local(uri: str) -> bool:
    return urlparse(uri).scheme in ("", "file", "sqlite")


def store_key(uri: str) -> str:
    """A short name for a tracking store: checkpoints and locks of different stores never meet."""
    return hashlib.sha256(uri.encode()).hexdigest()[:12]


def _lock_path(uri: str) -> Path:
    parsed = urlparse(uri)
    if parsed.scheme == "sqlite":
        return Path(uri[len("sqlite:///"):] + ".lock")
    if parsed.scheme in ("", "file"):
        return Path(parsed.path if parsed.scheme else uri) / ".lock"
    # A remote server: processes of this machine still take turns (other machines rely on the server).
    return PROJECT_ROOT / ".cache" / "locks" / f"{store_key(uri)}.lock"


@contextlib.contextmanager
def store_lock(uri: str):
    """An inter-process lock per store around initialization, experiment creation and claiming a run:
    MLflow's first-time schema migration is not safe when two processes run it at once."""
    path = _lock_path(uri)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def check_reachable(uri: str, timeout: float = 5.0) -> None:
    """A remote store must answer its health check within `timeout` s; a local one must be creatable."""
    scheme = urlparse(uri).scheme
    if scheme in ("http", "https"):
        problem = record.server_problem(uri, timeout)
        if problem:
            raise ConfigError(f"tracking.uri={uri} {problem}: allowed the address of a running MLflow server "
                              f"(`mlflow server --host 127.0.0.1 --port PORT`), or no tracking.uri for the local "
                              f"store")
    elif scheme == "sqlite":
        folder = Path(uri[len("sqlite:///"):]).parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise ConfigError(f"tracking.uri={uri} cannot be created ({error.strerror}): allowed a "
                              f"sqlite:///path in a writable directory") from None


def check_artifact_root(location: str | None) -> None:
    """A local artifact root must be a directory this process can write in (made here when missing): a run
    that cannot keep its config.yaml would fail right after it is created."""
    if not location or urlparse(location).scheme != "file":
        return   # a server's artifact store (mlflow-artifacts:, s3: ...) is the server's to check
    folder = Path(url2pathname(urlparse(location).path))
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        raise ConfigError(f"tracking.artifact_location={folder} cannot be written ({error.strerror or error}): "
                          f"allowed a writable directory (by default the {record.ARTIFACTS_DIR} folder beside a "
                          f"sqlite:/// store)") from None


def ensure_store(uri: str) -> MlflowClient:
    """Create the store (database schema) now, under the store's lock, before any job starts."""
    with store_lock(uri):
        client = MlflowClient(tracking_uri=uri)
        client.search_experiments(max_results=1)
        if urlparse(uri).scheme == "sqlite":
            # Parallel jobs share one SQLite file: in WAL mode readers never block the writer, and a writer
            # waits for another (SQLite's busy timeout) instead of failing with "database is locked".
            with sqlite3.connect(uri[len("sqlite:///"):], timeout=30) as connection:
                connection.execute("PRAGMA journal_mode=WAL")
    return client


# What the experiment is (model training, not GenAI) for MLflow 3; its UI also wants workflowType in the address.
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}


def experiment_id(client: MlflowClient, name: str, artifact_location: str | None) -> str:
    with store_lock(client.tracking_uri):
        existing = client.get_experiment_by_name(name)
        if existing is None:
            location = f"{artifact_location.rstrip('/')}/{name}" if artifact_location else None
            found = client.create_experiment(name, artifact_location=location, tags=EXPERIMENT_KIND)
        else:
            found = existing.experiment_id
            if existing.lifecycle_stage == "deleted":
                client.restore_experiment(found)
            if existing.tags.get("mlflow.experimentKind") is None:
                client.set_experiment_tag(found, *next(iter(EXPERIMENT_KIND.items())))
    return found


def runs_with_hash(client: MlflowClient, experiment: str, config_hash: str) -> list:
    return client.search_runs([experiment], filter_string=f"tags.{record.CONFIG_HASH} = '{config_hash}'",
                              order_by=["attributes.start_time DESC"], max_results=50)


def logged_through(client: MlflowClient, run_id: str) -> dict[str, int]:
    """The last step already in the store, per metric key (MLflow keeps each key's latest step)."""
    return {metric.key: metric.step for metric in client.get_run(run_id).data.to_proto().metrics}


class MetricBuffer:
    """A TrainingCallback that keeps per-step metrics and writes them with log_batch every N steps.

    It flushes before every checkpoint, so a checkpoint never runs ahead of the record. A resumed run
    retrains the steps between its checkpoint and the kill, some of them flushed already; `already` (the
    last logged step per key) keeps those from being logged a second time."""

    def __init__(self, client: MlflowClient, run_id: str, flush_every: int,
                 already: dict[str, int] | None = None) -> None:
        self.client, self.run_id, self.flush_every = client, run_id, flush_every
        self.already = already or {}
        self.pending: list[Metric] = []
        self.logged = 0
        self.seconds_logging = 0.0

    def _add(self, step: int, metrics: dict[str, float]) -> None:
        now = int(time.time() * 1000)
        self.pending.extend(Metric(key, float(value), now, step) for key, value in metrics.items()
                            if step > self.already.get(key, -1))

    def on_step(self, step: int, metrics: dict[str, float]) -> None:
        self._add(step, metrics)
        if (step + 1) % self.flush_every == 0:
            self.flush()

    def on_validation(self, step: int, metrics: dict[str, float]) -> None:
        self._add(step, metrics)

    def on_checkpoint(self, step: int) -> None:
        self.flush()

    def flush(self) -> None:
        started = time.perf_counter()
        while self.pending:
            chunk, self.pending = self.pending[:MAX_METRICS_PER_BATCH], self.pending[MAX_METRICS_PER_BATCH:]
            self.client.log_batch(self.run_id, metrics=chunk, synchronous=True)
            self.logged += len(chunk)
        self.seconds_logging += time.perf_counter() - started


def log_params(client: MlflowClient, run_id: str, params: dict[str, object]) -> None:
    entries = [Param(key, str(value)[:MAX_PARAM_LENGTH]) for key, value in sorted(params.items())]
    for start in range(0, len(entries), MAX_PARAMS_PER_BATCH):
        client.log_batch(run_id, params=entries[start:start + MAX_PARAMS_PER_BATCH], synchronous=True)


def set_tags(client: MlflowClient, run_id: str, tags: Mapping[str, object]) -> None:
    client.log_batch(run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()], synchronous=True)


def flatten(container: dict, prefix: str = "") -> dict[str, object]:
    flat: dict[str, object] = {}
    for key, value in container.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def finite_or_none(value) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def end_run(client: MlflowClient, run_id: str, status: str, name: str | None = None) -> None:
    """End a run as `status`; `name`: what it is called from now on (renamed first, so a run that ended never
    keeps the name it had while running)."""
    if name:
        client.update_run(run_id, name=name)
    client.set_terminated(run_id, status=status)


def is_live(run) -> bool:
    """A RUNNING run whose process still exists (same host) or still beats (another host)."""
    return run.info.status == "RUNNING" and record.liveness(run.data.tags) == record.LIVE


def claim(client: MlflowClient, run_id: str) -> None:
    """Mark a run as this process's: status RUNNING, host, pid and a first heartbeat."""
    client.update_run(run_id, status="RUNNING")
    set_tags(client, run_id, record.this_process())


class Heartbeat:
    """Refreshes the run's heartbeat tag from a background thread, whatever the main thread is doing
    (building a corpus, compiling, validating), so other hosts can tell a live run from a dead one."""

    def __init__(self, client: MlflowClient, run_id: str, every: float = record.HEARTBEAT_EVERY_S) -> None:
        self.client, self.run_id, self.every = client, run_id, every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"heartbeat-{run_id[:8]}", daemon=True)

    def _beat(self) -> None:
        while not self._stop.wait(self.every):
            with contextlib.suppress(Exception):  # a missed beat must never stop training
                self.client.set_tag(self.run_id, record.HEARTBEAT, f"{time.time():.0f}", synchronous=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=self.every + 5)


STATUS = {"FINISHED": RunStatus.to_string(RunStatus.FINISHED), "FAILED": RunStatus.to_string(RunStatus.FAILED),
          "KILLED": RunStatus.to_string(RunStatus.KILLED)}

