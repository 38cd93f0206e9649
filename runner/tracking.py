"""MLflow bookkeeping: where the store is, experiments, parent/child runs, buffered metrics, artifacts.

Everything goes through an explicit MlflowClient (no global "active run"), so a sweep's parent run and
its children never step on each other.
"""
from __future__ import annotations

import math
import os
import time
from pathlib import Path
from urllib.parse import urlparse

from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunStatus, RunTag

from runner.schema import PROJECT_ROOT

PARENT_RUN_ENV = "MYXTTS_PARENT_RUN_ID"
MAX_METRICS_PER_BATCH = 1000   # MLflow's log_batch limits
MAX_PARAMS_PER_BATCH = 100
MAX_PARAM_LENGTH = 6000


def resolve_store(uri: str | None, artifact_location: str | None) -> tuple[str, str | None]:
    """(tracking URI, artifact root) as absolute locations, whatever directory Hydra runs the job in."""
    if not uri:
        uri = f"sqlite:///{PROJECT_ROOT / 'mlflow.db'}"
        artifact_location = artifact_location or str(PROJECT_ROOT / "mlartifacts")
    elif uri.startswith("sqlite:///"):
        path = Path(uri[len("sqlite:///"):]).resolve()
        uri = f"sqlite:///{path}"
        # Without this, MLflow puts artifacts in ./mlruns of whatever directory the job runs in.
        artifact_location = artifact_location or str(path.parent / "mlartifacts")
    elif "://" not in uri:
        uri = str(Path(uri).resolve())
    if artifact_location and "://" not in artifact_location:
        artifact_location = Path(artifact_location).resolve().as_uri()
    return uri, artifact_location


def is_local(uri: str) -> bool:
    return urlparse(uri).scheme in ("", "file", "sqlite")


def ensure_store(uri: str) -> MlflowClient:
    """Create the store (database schema) now, in the launching process, before any job starts."""
    client = MlflowClient(tracking_uri=uri)
    client.search_experiments(max_results=1)
    return client


def experiment_id(client: MlflowClient, name: str, artifact_location: str | None) -> str:
    existing = client.get_experiment_by_name(name)
    if existing is not None:
        if existing.lifecycle_stage == "deleted":
            client.restore_experiment(existing.experiment_id)
        return existing.experiment_id
    location = f"{artifact_location.rstrip('/')}/{name}" if artifact_location else None
    try:
        return client.create_experiment(name, artifact_location=location)
    except Exception:  # noqa: BLE001 - another process created it first
        return client.get_experiment_by_name(name).experiment_id


def runs_with_hash(client: MlflowClient, experiment: str, config_hash: str) -> list:
    return client.search_runs([experiment], filter_string=f"tags.config_hash = '{config_hash}'",
                              order_by=["attributes.start_time DESC"], max_results=50)


class MetricBuffer:
    """A TrainingCallback that keeps per-step metrics and writes them with log_batch every N steps."""

    def __init__(self, client: MlflowClient, run_id: str, flush_every: int) -> None:
        self.client, self.run_id, self.flush_every = client, run_id, flush_every
        self.pending: list[Metric] = []
        self.logged = 0
        self.seconds_logging = 0.0

    def _add(self, step: int, metrics: dict[str, float]) -> None:
        now = int(time.time() * 1000)
        self.pending.extend(Metric(key, float(value), now, step) for key, value in metrics.items())

    def on_step(self, step: int, metrics: dict[str, float]) -> None:
        self._add(step, metrics)
        if (step + 1) % self.flush_every == 0:
            self.flush()

    def on_validation(self, step: int, metrics: dict[str, float]) -> None:
        self._add(step, metrics)

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


def set_tags(client: MlflowClient, run_id: str, tags: dict[str, object]) -> None:
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


def end_run(client: MlflowClient, run_id: str, status: str) -> None:
    client.set_terminated(run_id, status=status)


STATUS = {"FINISHED": RunStatus.to_string(RunStatus.FINISHED), "FAILED": RunStatus.to_string(RunStatus.FAILED),
          "KILLED": RunStatus.to_string(RunStatus.KILLED)}


def parent_run_id() -> str | None:
    return os.environ.get(PARENT_RUN_ENV) or None
