"""A sweep's launching process and the worker processes its launcher started (joblib/loky on one machine).

SIGTERM to the launching process alone would end it and leave its workers training (or idle) with nobody to
report to. `ForwardStop` passes the signal on to the workers, whose jobs stop at the next step boundary as a
SIGTERM to themselves would stop them (checkpoint, flushed metrics, run KILLED). It waits until every
worker's run has ended, so that none is cut off mid-record when the first Interrupted exit reaches the
launcher, which then ends the workers and exits 130. With no worker (Hydra's basic launcher between
two jobs) the launching process closes the sweep's parent run as KILLED and exits 130 itself.
"""
from __future__ import annotations

import os
import signal
import sys
import typing
from pathlib import Path
from collections.abc import Callable
import contextlib

# Processes a launcher starts that are not workers: signalling them would only break its own shutdown.
HELPERS = ("resource_tracker", "semaphore_tracker")


def children(pid: int | None = None) -> list[int]:
    """The live (not zombie) direct child processes of `pid` (this process by default); empty off Linux."""
    pid = os.getpid() if pid is None else pid
    found = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # ended while we looked
            continue
        state, ppid = stat[stat.rindex(")") + 2:].split()[:2]
        if int(ppid) == pid and state != "Z" and not any(helper in cmdline for helper in HELPERS):
            found.append(int(entry.name))
    return found


class ForwardStop:
    """SIGTERM handler of a sweep's launching process (installed by the sweep callback)."""

    def __init__(self, on_no_workers: Callable[[], None], wait_for: Callable[[list[int]], None]) -> None:
        self.on_no_workers, self.wait_for = on_no_workers, wait_for
        self.previous: typing.Any = None  # whatever signal.signal returned: a handler, an int or None

    def install(self) -> ForwardStop:
        self.previous = signal.signal(signal.SIGTERM, self._handle)
        return self

    def uninstall(self) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGTERM, self.previous)
            self.previous = None

    def _handle(self, signum: int, _frame) -> None:
        workers = children()
        for pid in workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)
        if workers:
            print(f"signal {signum}: stopping {len(workers)} worker process(es) at their next step", flush=True)
            self.wait_for(workers)
            return  # their jobs end KILLED; the launcher sees it and stops the sweep
        self.on_no_workers()
        from runner.app import Interrupted

        print(f"signal {signum}: sweep stopped between jobs", file=sys.stderr, flush=True)
        raise Interrupted(130)
