"""Hydra callback: one MLflow parent run per multirun (opened by the sweeper with the job list it launches,
runner/sweeper.py), children attach to it; the report at the end.

The same sweep command run again (after a crash, a kill or to completion) continues the same parent run
unless that parent's process is still alive, so every child of the sweep stays under one parent. Jobs
reach the parent through MLflow (runner/sweep.py), so this works with any Hydra launcher.
"""
from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from myxtts import record
from runner import sweep, tracking
from runner.workers import ForwardStop
from runner.progress import clock
from runner.schema import PROJECT_ROOT


def store_of(config: DictConfig) -> tuple[Any, str, str | None]:
    uri, artifacts = tracking.resolve_store(config.tracking.uri, config.tracking.artifact_location)
    return tracking.ensure_store(uri), uri, artifacts


class MlflowSweepCallback(Callback):
    began = 0.0  # also the value of a callback pickled before this attribute existed

    def __init__(self) -> None:
        self.started = 0.0
        self.total = 0
        self.began = 0.0   # wall clock (time.time): the jobs run in other processes too
        self.heartbeat: tracking.Heartbeat | None = None
        self.parent: str | None = None
        self.stop: ForwardStop | None = None
        self.experiment = ""

    def __getstate__(self) -> dict:
        """Launchers that run jobs in other processes pickle the callbacks: the heartbeat thread and the
        signal handler stay in the launching process."""
        return {**self.__dict__, "heartbeat": None, "stop": None}

    def open_parent(self, config: DictConfig, jobs: list[list[str]]) -> None:
        """The sweeper (runner/sweeper.py) hands over the job list it checked and will launch."""
        # A sweep that cannot set up its parent stops here, in one line: never children without a parent.
        try:
            self._open_parent(config, jobs)
        except Exception as error:  # noqa: BLE001
            print(f"error: the sweep's parent run could not be set up: {type(error).__name__}: "
                  f"{str(error).splitlines()[0] if str(error) else ''}", file=sys.stderr)
            if self.parent:
                sweep.close(store_of(config)[0], self.parent, "FAILED",
                            name=sweep.parent_name(config.experiment, self.total, record.FAILED))
            raise SystemExit(1) from None

    def _open_parent(self, config: DictConfig, jobs: list[list[str]]) -> None:
        from runner.schema import container

        client, _, artifacts = store_of(config)
        experiment = self.experiment = tracking.experiment_id(client, config.experiment, artifacts)
        params = container(config.hydra.sweeper.params) if config.hydra.sweeper.get("params") else {}
        overrides = list(config.hydra.overrides.task)
        self.total = len(jobs)
        key = sweep.sweep_key(config.experiment, params, overrides)
        with tracking.store_lock(client.tracking_uri):
            earlier = [] if config.runner.rerun else client.search_runs(
                [experiment], filter_string=f"tags.{record.SWEEP_KEY} = '{key}'",
                order_by=["attributes.start_time DESC"])
            reusable = [run for run in earlier if not tracking.is_live(run)]
            if reusable:
                self.parent = reusable[0].info.run_id
                tracking.claim(client, self.parent)
                client.update_run(self.parent, name=sweep.parent_name(config.experiment, self.total))
                sweep.clear_jobs(client, self.parent)
                print(f"sweep {config.experiment}: continuing parent run {self.parent} of the same command")
            else:
                self.parent = client.create_run(
                    experiment, run_name=sweep.parent_name(config.experiment, self.total),
                    tags={record.SWEEP: "true", record.SWEEP_KEY: key, "sweep_params": str(params),
                          "overrides": " ".join(overrides), **record.this_process()}).info.run_id
                # Sweeper keys may carry Hydra's + / ~ / ++ prefixes, which MLflow does not allow in names.
                tracking.log_params(client, self.parent, {"overrides": " ".join(overrides), "jobs": self.total,
                                                          **{f"sweep.{k.lstrip('+~')}": v for k, v in params.items()}})
            # How every job, wherever it runs, finds this parent and whether it renders a sample (runner/sweep.py).
            tracking.set_tags(client, self.parent, {record.SWEEP_DIR: str(config.hydra.sweep.dir),
                                                    record.SAMPLE_JOBS: ",".join(map(str, sweep.sample_jobs(jobs)))})
        self.heartbeat = tracking.Heartbeat(client, self.parent).__enter__()
        self.stop = ForwardStop(lambda: self._stopped(config), lambda pids: self._runs_ended(config, pids)).install()
        self.started, self.began = time.perf_counter(), time.time()

    def _runs_ended(self, config: DictConfig, pids: list[int], timeout: float = 180.0) -> None:
        """Wait (at most `timeout` s) until no run of this sweep is RUNNING in one of the worker processes `pids`."""
        client = store_of(config)[0]
        wanted = {str(pid) for pid in pids}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            running = client.search_runs(
                [self.experiment],
                filter_string=f"tags.`{record.PARENT}` = '{self.parent}' and attributes.status = 'RUNNING'")
            if not any(run.data.tags.get(record.PID) in wanted for run in running):
                return
            time.sleep(1.0)

    def _stopped(self, config: DictConfig) -> None:
        """SIGTERM with no job running: the parent ends KILLED (the same command continues it)."""
        if self.heartbeat:
            self.heartbeat.__exit__(None, None, None)
        if self.parent:
            sweep.close(store_of(config)[0], self.parent, "KILLED",
                        name=sweep.parent_name(config.experiment, self.total, record.KILLED))

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        if not self.total:  # a single run, not a sweep
            return
        jobs = sweep.job_outcomes(store_of(config)[0], self.parent) if self.parent else []  # from every process
        done = len(jobs)
        counts = {key: sum(1 for job in jobs if (job["outcome"] or job["status"].lower()) == key)
                  for key in (record.DIVERGED, record.FAILED)}
        skipped = sum(1 for job in jobs if job["status"] in ("SKIPPED", "BUSY"))
        # The sweep's own pace (wall time per recorded job), so parallel jobs and skipped ones count as they ran.
        pace = (time.time() - self.began) / done if done and self.began else float("nan")
        # Hydra's own job number: parallel workers each start a different job, whatever is done so far.
        number = config.hydra.job.get("num") if "hydra" in config else None
        number = done if number is None else int(number)
        print(f"sweep {config.experiment}: job {number + 1}/{self.total} · {done} done ({counts[record.DIVERGED]} "
              f"diverged, {counts[record.FAILED]} failed, {skipped} skipped) · ETA {clock(pace * (self.total - done))}",
              flush=True)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        """Close the parent with what the jobs recorded on it; a sweep that did not do it all exits 1."""
        if not self.parent:
            return
        try:
            problems = self._close_parent(config)
        except Exception as error:  # noqa: BLE001 - said in one line and in the exit code, never only warned
            message = f"the sweep's parent run could not be closed: {type(error).__name__}: {error}"
            print(f"error: {message}".splitlines()[0], file=sys.stderr)
            try:   # never leave it RUNNING: FAILED, with the reason as its error tag
                client = store_of(config)[0]
                tracking.set_tags(client, self.parent, {record.ERROR: message[:500]})
                sweep.close(client, self.parent, "FAILED")
            except Exception:  # noqa: BLE001 - the store itself is what failed; the line above said why
                pass
            raise SystemExit(1) from None
        if problems:
            raise SystemExit(1)

    def _close_parent(self, config: DictConfig) -> list[str]:
        if self.stop:
            self.stop.uninstall()
        if self.heartbeat:
            self.heartbeat.__exit__(None, None, None)
        client, uri, _ = store_of(config)
        assert self.parent is not None, "on_multirun_start made or continued it"
        jobs = sweep.job_outcomes(client, self.parent)
        counts: dict[str, int] = {}
        for job in jobs:
            key = job["outcome"] or job["status"].lower()
            counts[key] = counts.get(key, 0) + 1
        problems = [f"{job['status']}: {job['message']}" for job in jobs if job["status"] in sweep.INCOMPLETE]
        if len(jobs) < self.total:
            problems.append(f"{self.total - len(jobs)} of {self.total} jobs recorded no outcome")
        with tempfile.TemporaryDirectory() as scratch:
            path = Path(scratch) / "jobs.json"
            path.write_text(json.dumps(jobs, indent=1))
            client.log_artifact(self.parent, str(path))
        tracking.set_tags(client, self.parent, {f"jobs_{k}": v for k, v in counts.items()} |
                          {"sweep_seconds": round(time.perf_counter() - self.started, 1)})
        status, said = "FINISHED", sweep.counted(counts, self.total)
        # The parent's name says what the jobs ended as; its description where the report is (a report written
        # later by `python -m analysis` is attached here and says so too).
        note = f"no report (runner.report=false): python -m analysis --experiment {config.experiment} writes it"
        if config.runner.report:
            from analysis.report import write_report_for

            try:
                path = write_report_for(config.experiment, uri, config.runner.report_dir)
                client.log_artifacts(self.parent, str(path.parent), artifact_path=record.REPORT_ARTIFACT)
                print(f"report: {path}")
                note = record.report_note(path, PROJECT_ROOT)
            except Exception as error:  # noqa: BLE001 - said in one line, the exit code and the parent's status
                message = f"the report of experiment {config.experiment} failed: {type(error).__name__}: {error}"
                print(f"error: {message}".splitlines()[0], file=sys.stderr)
                tracking.set_tags(client, self.parent, {record.ERROR: message[:500]})
                problems.append(message)
                status, note = "FAILED", "the report failed (tag error says why)"
        tracking.set_tags(client, self.parent, {record.NOTE: note})
        sweep.close(client, self.parent, status, name=sweep.parent_name(config.experiment, self.total, said))
        return problems
