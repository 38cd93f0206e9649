"""The record contract: what a run's MLflow record holds and what it means, named once.

Imports no TensorFlow and no MLflow. The trainer emits these metric names, the runner writes these tags and
outcomes into this store location, analysis reads them back; all three import the names from here.

It also holds the liveness rule, so the runner and analysis decide "is this RUNNING run still being
trained?" the same way.

A run is *live* when the process that claimed it still exists: on the same host that is checked
directly (pid plus the process's start time, so a recycled pid does not count); from another host only
the heartbeat can tell, and a heartbeat older than HEARTBEAT_TIMEOUT_S means the process is gone.
"""
from __future__ import annotations

import os
import socket
import time
from pathlib import Path

# --- where: the project's default store (sqlite:///<project>/mlflow.db, artifacts beside it) -------------
STORE_FILE, ARTIFACTS_DIR = "mlflow.db", "mlartifacts"


def default_store(root: Path) -> str:
    return f"sqlite:///{Path(root) / STORE_FILE}"


# --- per-step metrics (trainer) ----------------------------------------------------------------------------
LOSS_TOTAL, LOSS_UNDAMPED = "loss/total", "loss/undamped"   # optimised (dampened, clipped) / before the guards
WEIGHT_MEL = "weight/mel"
GRAD_NORM = "grad/norm"
EPOCH = "epoch"                                             # epochs completed after the step
GUARD_DIVERGED, GUARD_NONFINITE, GUARD_SKIPPED = "guard/diverged", "guard/nonfinite", "guard/skipped"
DIAG_PREFIX = "diag/"                                       # per-layer-group signals, every diagnostics.every
RAW_PREFIX, VAL_PREFIX = "raw/", "val/"                     # raw loss terms; validation terms
VAL_POSTNET, VAL_TOTAL = "val/postnet", "val/total"         # best_validation is the lowest val/postnet

# --- run tags (runner) -------------------------------------------------------------------------------------
OUTCOME, ERROR, CONFIG_HASH = "outcome", "error", "config_hash"
PRESET, SYSTEM, SEED, WEIGHTING = "preset", "system", "seed", "weighting"
PARENT = "mlflow.parentRunId"
NAN_ORIGIN_LAYER, NAN_ORIGIN_OP, NAN_ORIGIN_STEP = "nan_origin_layer", "nan_origin_op", "nan_origin_step"
# A sweep's parent run: found by every job through its sweep directory, each job's outcome a tag on it.
SWEEP, SWEEP_KEY, SWEEP_DIR, JOB_PREFIX = "sweep", "sweep_key", "sweep_dir", "job/"
SAMPLE_JOBS = "sample_jobs"   # on a parent: the jobs that render a sample (one per configuration)

# --- outcomes (tag `outcome`): a verdict is stable or diverged; the others say why there is none --------
STABLE, DIVERGED, FAILED, KILLED = "stable", "diverged", "failed", "killed"
VERDICTS = (STABLE, DIVERGED)

# --- the process behind a run --------------------------------------------------------------------------------
HOST, PID, PROCESS_STARTED, HEARTBEAT = "host", "pid", "process_started", "heartbeat"
HEARTBEAT_EVERY_S = 20.0
HEARTBEAT_TIMEOUT_S = 120.0

LIVE, DEAD = "live", "dead"


def process_start_ticks(pid: int) -> str:
    """The kernel's start time of `pid` (clock ticks since boot) or "" where /proc does not say."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    # The command name (field 2) may hold spaces; the fields after its closing parenthesis do not.
    return stat.rsplit(")", 1)[1].split()[19]


def this_process() -> dict[str, str]:
    pid = os.getpid()
    return {HOST: socket.gethostname(), PID: str(pid), PROCESS_STARTED: process_start_ticks(pid),
            HEARTBEAT: f"{time.time():.0f}"}


def _process_exists(pid: int, started: str) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        pass
    return not started or process_start_ticks(pid) in ("", started)


def liveness(tags: dict[str, str], now: float | None = None) -> str:
    """LIVE or DEAD for a RUNNING run, from the tags its process wrote when it claimed the run."""
    now = time.time() if now is None else now
    host, pid = tags.get(HOST), tags.get(PID, "")
    if host == socket.gethostname() and pid.isdigit():
        return LIVE if _process_exists(int(pid), tags.get(PROCESS_STARTED, "")) else DEAD
    try:
        beat = float(tags.get(HEARTBEAT, ""))
    except ValueError:
        return DEAD  # written by a runner that kept no heartbeat, or by hand: nobody is keeping it alive
    return LIVE if now - beat < HEARTBEAT_TIMEOUT_S else DEAD
