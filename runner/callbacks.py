"""Hydra callback: one MLflow parent run per multirun, children attach to it; the report at the end.

The same sweep command run again (after a crash, a kill or to completion) continues the same parent run
unless that parent's process is still alive, so every child of the sweep stays under one parent.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from myxtts import record
from runner import tracking
from runner.progress import clock


def _store(config: DictConfig) -> tuple[Any, str, str | None]:
    uri, artifacts = tracking.resolve_store(config.tracking.uri, config.tracking.artifact_location)
    return tracking.ensure_store(uri), uri, artifacts


def close_parent_run(config: DictConfig, status: str) -> None:
    parent = tracking.parent_run_id()
    if parent:
        client, _, _ = _store(config)
        tracking.end_run(client, parent, tracking.STATUS[status])
        os.environ.pop(tracking.PARENT_RUN_ENV, None)


def sweep_key(experiment: str, params: dict, overrides: list[str]) -> str:
    """Identifies a sweep command: the same experiment, sweep parameters and overrides."""
    content = json.dumps({"experiment": experiment, "params": params, "overrides": sorted(overrides)}, sort_keys=True)
    return hashlib.sha256(content.encode()).hexdigest()[:16]


class MlflowSweepCallback(Callback):
    def __init__(self) -> None:
        self.started = 0.0
        self.total = 0
        self.job_started = 0.0
        self.durations: list[float] = []
        self.heartbeat: tracking.Heartbeat | None = None

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        # Hydra turns a callback's exception into a warning and runs the jobs anyway: children without a
        # parent and no report. A sweep that cannot set up its parent stops here, in one line.
        try:
            self._open_parent(config)
        except Exception as error:  # noqa: BLE001
            print(f"error: the sweep's parent run could not be set up: {type(error).__name__}: "
                  f"{str(error).splitlines()[0] if str(error) else ''}", file=sys.stderr)
            parent = tracking.parent_run_id()
            if parent:
                tracking.end_run(_store(config)[0], parent, tracking.STATUS["FAILED"])
            raise SystemExit(1) from None

    def _open_parent(self, config: DictConfig) -> None:
        from runner.preflight import expand

        client, _, artifacts = _store(config)
        experiment = tracking.experiment_id(client, config.experiment, artifacts)
        params = OmegaConf.to_container(config.hydra.sweeper.params, resolve=True) if config.hydra.sweeper.get(
            "params") else {}
        overrides = list(config.hydra.overrides.task)
        self.total = len(expand(params, overrides))
        key = sweep_key(config.experiment, params, overrides)
        with tracking.store_lock(client.tracking_uri):
            earlier = [] if config.runner.rerun else client.search_runs(
                [experiment], filter_string=f"tags.sweep_key = '{key}'", order_by=["attributes.start_time DESC"])
            reusable = [run for run in earlier if not tracking.is_live(run)]
            if reusable:
                run_id = reusable[0].info.run_id
                tracking.claim(client, run_id)
                print(f"sweep {config.experiment}: continuing parent run {run_id} of the same command")
            else:
                run = client.create_run(
                    experiment, run_name=f"sweep {config.experiment} {time.strftime('%Y-%m-%d %H:%M')}",
                    tags={"sweep": "true", "sweep_key": key, "sweep_params": str(params),
                          "overrides": " ".join(overrides), **record.this_process()})
                run_id = run.info.run_id
                os.environ[tracking.PARENT_RUN_ENV] = run_id
                # Sweeper keys may carry Hydra's + / ~ / ++ prefixes, which MLflow does not allow in names.
                tracking.log_params(client, run_id, {"overrides": " ".join(overrides), "jobs": self.total,
                                                     **{f"sweep.{k.lstrip('+~')}": v for k, v in params.items()}})
        os.environ[tracking.PARENT_RUN_ENV] = run_id
        self.heartbeat = tracking.Heartbeat(client, run_id).__enter__()
        self.started = time.perf_counter()

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        from runner.app import OUTCOMES

        if not self.total:  # a single run, not a sweep
            return
        self.job_started = time.perf_counter()
        done = len(OUTCOMES)
        counts = {key: sum(1 for o in OUTCOMES if (o.outcome or o.status.lower()) == key)
                  for key in ("diverged", "failed")}
        skipped = sum(1 for o in OUTCOMES if o.status in ("SKIPPED", "BUSY"))
        mean = sum(self.durations) / len(self.durations) if self.durations else float("nan")
        print(f"sweep {config.experiment}: job {done + 1}/{self.total} · {done} done ({counts['diverged']} diverged, "
              f"{counts['failed']} failed, {skipped} skipped) · ETA {clock(mean * (self.total - done))}", flush=True)

    def on_job_end(self, config: DictConfig, job_return: Any = None, **kwargs: Any) -> None:
        from hydra.core.utils import JobStatus

        completed = job_return is not None and job_return.status == JobStatus.COMPLETED
        if self.total and not (completed and job_return.return_value in ("SKIPPED", "BUSY")):
            self.durations.append(time.perf_counter() - self.job_started)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from runner.app import SWEEP_ERRORS

        try:
            self._close_parent(config)
        except Exception as error:  # noqa: BLE001 - said in one line and in the exit code, never only warned
            message = f"the sweep's parent run could not be closed: {type(error).__name__}: {error}"
            print(f"error: {message}".splitlines()[0], file=sys.stderr)
            SWEEP_ERRORS.append(message)

    def _close_parent(self, config: DictConfig) -> None:
        from runner.app import OUTCOMES, SWEEP_ERRORS

        parent = tracking.parent_run_id()
        if not parent:
            return
        if self.heartbeat:
            self.heartbeat.__exit__(None, None, None)
        client, uri, _ = _store(config)
        counts: dict[str, int] = {}
        for outcome in OUTCOMES:
            key = outcome.outcome or outcome.status.lower()
            counts[key] = counts.get(key, 0) + 1
        jobs = [{"run_id": o.run_id, "status": o.status, "outcome": o.outcome, "message": o.message}
                for o in OUTCOMES]
        with tempfile.TemporaryDirectory() as scratch:
            path = Path(scratch) / "jobs.json"
            path.write_text(json.dumps(jobs, indent=1))
            client.log_artifact(parent, str(path))
        tracking.set_tags(client, parent, {f"jobs_{k}": v for k, v in counts.items()} |
                          {"sweep_seconds": round(time.perf_counter() - self.started, 1)})
        status = "FINISHED"
        if config.runner.report:
            from analysis.report import write_report_for

            try:
                path = write_report_for(config.experiment, uri, config.runner.report_dir)
                client.log_artifacts(parent, str(path.parent), artifact_path="report")
                print(f"report: {path}")
            except Exception as error:  # noqa: BLE001 - said in one line, the exit code and the parent's status
                message = f"the report of experiment {config.experiment} failed: {type(error).__name__}: {error}"
                print(f"error: {message}".splitlines()[0], file=sys.stderr)
                tracking.set_tags(client, parent, {"error": message[:500]})
                SWEEP_ERRORS.append(message)
                status = "FAILED"
        tracking.end_run(client, parent, tracking.STATUS[status])
        os.environ.pop(tracking.PARENT_RUN_ENV, None)
