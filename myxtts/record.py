"""What a run's record says about the process behind it: tag names and the liveness rule.

Imports no TensorFlow and no MLflow: the runner writes these tags, analysis reads them, and both decide
"is this RUNNING run still being trained?" the same way.

A run is *live* when the process that claimed it still exists: on the same host that is checked
directly (pid plus the process's start time, so a recycled pid does not count); from another host only
the heartbeat can tell, and a heartbeat older than HEARTBEAT_TIMEOUT_S means the process is gone.
"""
from __future__ import annotations

import os
import socket
import time
from pathlib import Path

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
