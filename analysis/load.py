"""MLflow → tidy pandas frames: one row per run, and one long frame of (run, step, metric, value).

Histories come through MlflowClient.get_metric_history (which pages over the REST API by itself) for
any store; for a local SQLite store one SQL query reads the same table the client reads, because the
client path costs about a second per run of 2,000 steps × 20 metrics. Both undo MLflow's encodings:
±inf is stored as ±1.7976931348623157e308 and NaN as a flag.
"""
from __future__ import annotations

import sqlite3
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pandas as pd
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException
from yaml import YAMLError

from analysis import roles
from myxtts import record, typed
from myxtts.training.settings import TrainingSettings

MLFLOW_INF = 1.7976931348623157e308
# The per-step metrics the report reads; everything else stays in MLflow.
HISTORY_KEYS = (record.LOSS_TOTAL, record.LOSS_UNDAMPED,
                *(record.raw(t) for t in ("mel", "postnet", "stop", "kl", "attention")),
                record.WEIGHT_MEL, record.weight("stop"), record.weight("kl"), record.WEIGHTING_DECISION, record.GRAD_NORM,
                record.GUARD_SKIPPED, record.GUARD_SPIKE, record.GUARD_NONFINITE, record.VAL_POSTNET, record.VAL_TOTAL,
                record.val("mel"), record.val("stop"), record.LR, record.UPDATE_NORM, record.WEIGHTING_ROLLBACKS)
HISTORY_PREFIXES = (record.DIAG_PREFIX,)  # the per-layer signals: their names depend on the model's layers


UNTAGGED = "(no preset tag)"
LIVE, ORPHANED = "RUNNING (live)", "RUNNING (orphaned)"


class UnknownExperiment(LookupError):  # noqa: N818 - named for what is missing, like KeyError
    pass


def run_state(status: str, tags: dict[str, str]) -> str:
    """MLflow's status, with RUNNING split into runs still trained and runs whose process died."""
    if status != "RUNNING":
        return status
    return LIVE if record.liveness(tags) == record.LIVE else ORPHANED


@dataclass
class ExperimentData:
    name: str
    runs: pd.DataFrame      # one row per child run (sweep parents are left out); `facts`: its record.RunFacts,
    #                         `config`: the TrainingSettings it trained with (None for a run not the runner's)
    history: pd.DataFrame   # run_id, step, metric, value — sorted by run, metric, step
    notes: list[str]


def undo_encoding(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64).copy()
    values[values >= MLFLOW_INF] = np.inf
    values[values <= -MLFLOW_INF] = -np.inf
    return values


def _sqlite_path(uri: str) -> str | None:
    parsed = urlparse(uri)
    return uri[len("sqlite:///"):] if parsed.scheme == "sqlite" and uri.startswith("sqlite:///") else None


def _histories_sql(path: str, run_ids: list[str], keys: tuple[str, ...]) -> pd.DataFrame:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as connection:
        frames = []
        for start in range(0, len(run_ids), 500):
            chunk = run_ids[start:start + 500]
            prefixes = " OR ".join("key LIKE ?" for _ in HISTORY_PREFIXES)
            query = (f"SELECT run_uuid AS run_id, step, key AS metric, value, is_nan FROM metrics "
                     f"WHERE run_uuid IN ({','.join('?' * len(chunk))}) "
                     f"AND (key IN ({','.join('?' * len(keys))}) OR {prefixes})")
            frames.append(pd.read_sql_query(query, connection,
                                            params=[*chunk, *keys, *(f"{p}%" for p in HISTORY_PREFIXES)]))
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
        columns=["run_id", "step", "metric", "value", "is_nan"])
    values = undo_encoding(frame["value"].to_numpy())
    values[frame["is_nan"].to_numpy().astype(bool)] = np.nan
    frame["value"] = values
    return frame.drop(columns="is_nan")


def _histories_client(client: MlflowClient, run_ids: list[str], available: dict[str, set],
                      keys: tuple[str, ...]) -> pd.DataFrame:
    def one(run_id: str) -> list[tuple]:
        rows = []
        wanted = [k for k in available.get(run_id, ()) if k in keys or k.startswith(HISTORY_PREFIXES)]
        for key in sorted(wanted):
            rows += [(run_id, m.step, key, m.value) for m in client.get_metric_history(run_id, key)]
        return rows

    with ThreadPoolExecutor(max_workers=4) as pool:
        rows = [row for chunk in pool.map(one, run_ids) for row in chunk]
    frame = pd.DataFrame(rows, columns=["run_id", "step", "metric", "value"])
    frame["value"] = undo_encoding(frame["value"].to_numpy()) if len(frame) else frame["value"]
    return frame


def latest_experiment(tracking_uri: str) -> str:
    """The name of the experiment whose newest run started last."""
    client = MlflowClient(tracking_uri=tracking_uri)
    newest: tuple[int, str] | None = None
    for experiment in client.search_experiments():
        runs = client.search_runs([experiment.experiment_id], max_results=1, order_by=["attributes.start_time DESC"])
        if runs and (newest is None or runs[0].info.start_time > newest[0]):
            newest = (runs[0].info.start_time, experiment.name)
    if newest is None:
        raise UnknownExperiment(f"no experiment in {tracking_uri} has runs yet")
    return newest[1]


def attach_to_parent(tracking_uri: str, experiment: str, folder, root: Path | None = None) -> str | None:
    """Log a report folder as artifacts/report of the experiment's newest sweep parent run, so the MLflow UI
    shows the regenerated report beside the runs, and say so in the run's description (the report's path
    relative to `root` when inside it); None when the experiment has no sweep parent."""
    client = MlflowClient(tracking_uri=tracking_uri)
    found = client.get_experiment_by_name(experiment)
    parents = client.search_runs([found.experiment_id], filter_string=f"tags.{record.SWEEP} = 'true'", max_results=1,
                                 order_by=["attributes.start_time DESC"]) if found else []
    if not parents:
        return None
    client.log_artifacts(parents[0].info.run_id, str(folder), artifact_path=record.REPORT_ARTIFACT)
    client.set_tag(parents[0].info.run_id, record.NOTE, record.report_note(Path(folder) / "report.md", root))
    return parents[0].info.run_id


def _all_runs(client: MlflowClient, experiment_id: str) -> list:
    runs, page = [], None
    while True:
        batch = client.search_runs([experiment_id], max_results=1000, page_token=page)
        runs += list(batch)
        page = batch.token
        if not page:
            return runs


@dataclass(frozen=True)
class RunRecord:
    """One run as analysis reads it, whether from a store or from a report's evidence (analysis/evidence.py):
    the two sources meet here, so a report rendered from either is the same report."""
    run_id: str
    run_name: str
    status: str
    start_time: int | None
    end_time: int | None
    tags: dict[str, str]
    params: dict[str, str]
    metrics: tuple[str, ...]     # the names of the metrics it logged
    config: str | None           # its config.yaml artifact (None: recorded without one)


def _artifact_text(client: MlflowClient, run_id: str, name: str) -> str | None:
    try:
        with tempfile.TemporaryDirectory() as scratch:
            return Path(client.download_artifacts(run_id, name, scratch)).read_text()
    except (MlflowException, OSError):
        return None


def _records(client: MlflowClient, runs: list) -> list[RunRecord]:
    def one(run) -> RunRecord:
        return RunRecord(run.info.run_id, run.info.run_name or "", run.info.status, run.info.start_time,
                         run.info.end_time, dict(run.data.tags), dict(run.data.params), tuple(sorted(run.data.metrics)),
                         _artifact_text(client, run.info.run_id, record.CONFIG_ARTIFACT))

    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(one, runs))


def _run_row(run: RunRecord, notes: list[str]) -> dict:
    """One run as a row: its state, every tag as a column, its facts (a run whose facts do not
    parse is noted and read without them)."""
    tags = run.tags
    row: dict[str, object] = {"run_id": run.run_id, "run_name": run.run_name, "status": run.status,
           "state": run_state(run.status, tags),
           "start_time": run.start_time, "end_time": run.end_time,
           "parent_run_id": tags.get(record.PARENT)}
    row.update({record.tag_column(k): v for k, v in tags.items() if not k.startswith("mlflow.")})
    aliases = tags.get(record.ABLATION_ALIASES, "").split()
    if any(alias.count(":") != 2 for alias in aliases):   # hand-edited: the run stands for its own arm only
        row[record.tag_column(record.ABLATION_ALIASES)] = " ".join(a for a in aliases if a.count(":") == 2)
        notes.append(f"run {run.run_name or run.run_id}: tag {record.ABLATION_ALIASES} "
                     f"{tags[record.ABLATION_ALIASES]!r} is not 'base:factor:direction' separated by spaces; "
                     f"the malformed entries are ignored")
    try:
        row["facts"] = record.RunFacts.from_tags(tags)
    except ValueError as error:   # a hand-edited or foreign tag: the run counts as one without facts
        row["facts"] = None
        notes.append(f"run {run.run_name or run.run_id}: {error}; its facts are not read")
    return row


TRAINING_GROUPS = tuple(f.name for f in fields(TrainingSettings))


def _training_part(values: dict) -> dict:
    """The settings that decide what a run trained (the runner's own keys and derived params left out)."""
    return {key: value for key, value in values.items() if key in TRAINING_GROUPS}


def run_config(run: RunRecord) -> TrainingSettings | None:
    """What a run trained with, typed: its config artifact through the settings classes (which check it);
    a run recorded without one is read from its params; None for a run with neither (not the runner's).
    A configuration today's settings reject raises ValueError naming the key."""
    if run.config is not None:
        values = OmegaConf.to_container(OmegaConf.create(run.config))
    else:
        params = {k: v for k, v in run.params.items() if k not in record.DERIVED_PARAMS}
        if not params:
            return None
        values = typed.unflatten(params)
    if not isinstance(values, dict):
        raise ValueError(f"{record.CONFIG_ARTIFACT} holds no mapping of settings")
    return typed.build(TrainingSettings, _training_part(values))


def _config_or_note(run: RunRecord, notes: list[str]) -> TrainingSettings | None:
    try:
        return run_config(run)
    except (ValueError, TypeError, OmegaConfBaseException, YAMLError) as error:
        notes.append(f"run {run.run_name or run.run_id}: its configuration is not read "
                     f"({str(error).splitlines()[0]})")
        return None


def read_store(name: str, tracking_uri: str,
               keys: tuple[str, ...] = HISTORY_KEYS) -> tuple[list[RunRecord], pd.DataFrame]:
    """An experiment's child runs (sweep parents left out) and the histories of `keys`, as the store holds them."""
    client = MlflowClient(tracking_uri=tracking_uri)
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        known = sorted(e.name for e in client.search_experiments())
        raise UnknownExperiment(f"experiment {name!r} not found in {tracking_uri}; known: {', '.join(known) or 'none'}")
    children = [run for run in _all_runs(client, experiment.experiment_id) if run.data.tags.get(record.SWEEP) != "true"]
    runs = _records(client, children)
    run_ids = [run.run_id for run in runs]
    path = _sqlite_path(tracking_uri)
    if path:
        history = _histories_sql(path, run_ids, keys)
    else:
        history = _histories_client(client, run_ids, {run.run_id: set(run.metrics) for run in runs}, keys)
    return runs, history


def load_experiment(name: str, tracking_uri: str, keys: tuple[str, ...] = HISTORY_KEYS) -> ExperimentData:
    return assemble(name, *read_store(name, tracking_uri, keys))


def assemble(name: str, runs: list[RunRecord], history: pd.DataFrame) -> ExperimentData:
    """Run records and their histories as the frames every table reads, with notes on runs that cannot be
    read or judged."""
    notes: list[str] = []
    rows = [_run_row(run, notes) for run in runs]
    for row, run in zip(rows, runs):
        row["config"] = _config_or_note(run, notes)
    frame = pd.DataFrame(rows)
    if frame.empty:
        return ExperimentData(name, frame, pd.DataFrame(columns=["run_id", "step", "metric", "value"]),
                              [f"experiment {name!r} has no runs yet"])
    # Runs not written by the runner (or by a process that died before tagging) lack tags: "" not NaN,
    # so every table can treat a tag as text.
    recorded = [c for c in frame.columns if c.startswith(record.TAG_COLUMN)]
    frame[recorded] = frame[recorded].astype(object).where(frame[recorded].notna(), "")
    frame[roles.EXPERIMENT] = name   # where a run recorded before its role tag finds its experiment's design
    preset, seed = record.tag_column(record.PRESET), record.tag_column(record.SEED)
    frame[preset] = frame.get(preset, pd.Series("", index=frame.index)).replace("", UNTAGGED)
    frame = frame.sort_values([preset, seed, "run_id"] if seed in frame else [preset, "run_id"],
                              na_position="last").reset_index(drop=True)
    run_ids = frame["run_id"].tolist()
    history = history[history["run_id"].isin(run_ids)]
    history = history.sort_values(["run_id", "metric", "step"], kind="stable").reset_index(drop=True)
    history["step"] = history["step"].astype(int)
    for state, says in ((LIVE, "still being trained"), (ORPHANED, "orphaned (RUNNING, but its process is gone)"),
                        ("FAILED", "failed"), ("KILLED", "killed before the end")):
        these = frame[frame["state"] == state]
        if len(these):
            notes.append(f"{len(these)} run(s) {says}: {', '.join(these['run_name'].astype(str))}")
    without = set(run_ids) - set(history["run_id"])
    if without:
        names = frame.set_index("run_id").loc[sorted(without), "run_name"].astype(str)
        notes.append(f"{len(without)} run(s) logged no metrics: {', '.join(names)}")
    return ExperimentData(name, frame, history, notes)
