"""A report's evidence: the run records and metric series it was rendered from, kept beside it.

reports/<name>/evidence/ holds three files, written in a fixed order with fixed encodings so that the same
runs give the same bytes (git sees a change only when a report's runs change):
- runs.parquet: one row per run (id, name, status, times, tags, params, metric names, config.yaml text);
- history.parquet: (run_id, step, metric, value) for every series the analysis reads (load.HISTORY_KEYS and
  the per-layer diagnostics), NaN and ±inf as they are;
- inputs.json: the experiment's name and the other files the report reads (step-time benchmark, replay).

Rendering from the evidence and rendering from the store meet in load.assemble, so they give the same report.
Parquet with zstd was chosen over MLflow's own run export (one JSON document per metric series plus every
artifact: checkpoints, audio, plots) for size: a 3000-step run's series take tens of kilobytes here.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from analysis.load import RunRecord

FOLDER = "evidence"
FORMAT = 1
RUNS, HISTORY, INPUTS = "runs.parquet", "history.parquet", "inputs.json"
_RUN_COLUMNS = ("run_id", "run_name", "status", "start_time", "end_time", "tags", "params", "metrics", "config")


class EvidenceError(ValueError):
    """An evidence folder that is missing or not in this format; the message names the file and what is wrong."""


@dataclass(frozen=True)
class Inputs:
    """What a report reads besides its runs."""
    benchmark: dict | None = None
    replay: dict | None = None


@dataclass(frozen=True)
class Evidence:
    experiment: str
    runs: list[RunRecord]
    history: pd.DataFrame
    inputs: Inputs


def _json(value) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def write(folder: Path, evidence: Evidence) -> Path:
    """The evidence as three files in `folder` (created); the same evidence always gives the same bytes."""
    folder.mkdir(parents=True, exist_ok=True)
    runs = sorted(evidence.runs, key=lambda run: run.run_id)
    table = pa.table({
        "run_id": pa.array([r.run_id for r in runs], pa.string()),
        "run_name": pa.array([r.run_name for r in runs], pa.string()),
        "status": pa.array([r.status for r in runs], pa.string()),
        "start_time": pa.array([r.start_time for r in runs], pa.int64()),
        "end_time": pa.array([r.end_time for r in runs], pa.int64()),
        "tags": pa.array([_json(r.tags) for r in runs], pa.string()),
        "params": pa.array([_json(r.params) for r in runs], pa.string()),
        "metrics": pa.array([_json(list(r.metrics)) for r in runs], pa.string()),
        "config": pa.array([r.config for r in runs], pa.string()),
    })
    pq.write_table(table, folder / RUNS, compression="zstd", compression_level=9)
    history = evidence.history.sort_values(["run_id", "metric", "step"], kind="stable")
    series = pa.table({
        "run_id": pa.array(history["run_id"].astype(str).tolist(), pa.string()).dictionary_encode(),
        "metric": pa.array(history["metric"].astype(str).tolist(), pa.string()).dictionary_encode(),
        "step": pa.array(history["step"].to_numpy(dtype="int64"), pa.int64()),
        "value": pa.array(history["value"].to_numpy(dtype="float64"), pa.float64()),
    })
    # Steps rise by one within a series and values change slowly: delta and byte-stream-split encodings make
    # both compress several times better than plain pages.
    pq.write_table(series, folder / HISTORY, compression="zstd", compression_level=9,
                   use_dictionary=["run_id", "metric"], use_byte_stream_split=["value"],
                   column_encoding={"step": "DELTA_BINARY_PACKED"})
    inputs = {"format": FORMAT, "experiment": evidence.experiment,
              "benchmark": evidence.inputs.benchmark, "replay": evidence.inputs.replay}
    (folder / INPUTS).write_text(json.dumps(inputs, indent=1, sort_keys=True) + "\n")
    return folder


def _read_inputs(folder: Path) -> dict:
    path = folder / INPUTS
    try:
        inputs = json.loads(path.read_text())
    except FileNotFoundError:
        raise EvidenceError(f"{folder}: no {INPUTS}; an evidence folder holds {RUNS}, {HISTORY} and {INPUTS} "
                            f"(written by `python -m analysis`)") from None
    except (OSError, ValueError) as error:
        raise EvidenceError(f"{path}: not readable JSON ({error})") from None
    if not isinstance(inputs, dict) or inputs.get("format") != FORMAT or not isinstance(inputs.get("experiment"), str):
        raise EvidenceError(f"{path}: expected evidence format {FORMAT} with an experiment name, got "
                            f"format {inputs.get('format') if isinstance(inputs, dict) else inputs!r}")
    return inputs


def _read_table(path: Path, columns: tuple[str, ...]) -> pd.DataFrame:
    try:
        frame = pq.read_table(path).to_pandas()
    except (OSError, pa.ArrowException) as error:
        raise EvidenceError(f"{path}: not a readable parquet file ({str(error).splitlines()[0]})") from None
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise EvidenceError(f"{path}: missing column(s) {', '.join(missing)}; expected {', '.join(columns)}")
    return frame


def _optional_int(value) -> int | None:
    return None if pd.isna(value) else int(value)


def read(folder: Path) -> Evidence:
    """The evidence in `folder`; EvidenceError names the file and what is wrong with it."""
    folder = Path(folder)
    if not folder.is_dir():
        raise EvidenceError(f"{folder}: no such evidence folder (a report's evidence is reports/<name>/{FOLDER})")
    inputs = _read_inputs(folder)
    frame = _read_table(folder / RUNS, _RUN_COLUMNS)
    runs = [RunRecord(row.run_id, row.run_name, row.status, _optional_int(row.start_time),
                      _optional_int(row.end_time), json.loads(row.tags), json.loads(row.params),
                      tuple(json.loads(row.metrics)), None if row.config is None else str(row.config))
            for row in frame.itertuples(index=False)]
    history = _read_table(folder / HISTORY, ("run_id", "step", "metric", "value"))
    history = history.astype({"run_id": str, "metric": str, "step": "int64", "value": "float64"})
    return Evidence(inputs["experiment"], runs, history[["run_id", "step", "metric", "value"]],
                    Inputs(inputs.get("benchmark"), inputs.get("replay")))
