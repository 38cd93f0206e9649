"""One configuration, start to end: validate → claim its MLflow run → train (myxtts) → record.

The runner's side of a job: MLflow, Hydra's config and the process's signals. Everything that touches
TensorFlow is in myxtts.training.run, imported when a job trains (never at module level).

A diverging configuration is a result (the run FINISHES with outcome=diverged); an exception marks the
run FAILED with its traceback as an artifact; SIGINT/SIGTERM stop at the next step boundary, flush the
metrics, save a checkpoint and mark the run KILLED, so a re-run resumes it.
"""
from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from myxtts import record
from runner import sweep, tracking
from runner.progress import ProgressPrinter
from runner.schema import PROJECT_ROOT, Config, as_dict, config_hash, validate


@dataclass
class JobOutcome:
    status: str            # FINISHED | FAILED | KILLED | SKIPPED | BUSY (another live process trains it)
    outcome: str | None    # stable | diverged | failed | killed
    run_id: str | None
    message: str = ""
    parent: str | None = None   # the sweep's parent run, when the job is part of one
    client: Any = None          # the store's client the job used


class StopRequest:
    """SIGINT/SIGTERM set a flag the training loop reads between steps."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self._previous: dict[int, Any] = {}  # whatever signal.signal returned: a handler, an int or None

    def __enter__(self) -> StopRequest:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, _frame) -> None:
        self.signal = signum

    def __call__(self) -> bool:
        return self.signal is not None

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def _git_state() -> tuple[str, bool]:
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True,
                                check=True).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=PROJECT_ROOT,
                                    capture_output=True, text=True, check=True).stdout.strip())
        return commit, dirty
    except (OSError, subprocess.CalledProcessError):
        return "unknown", False


def _claim_run(client, experiment: str, c: Config, chash: str, label: str, overrides: list[str] | None,
               parent: str | None):
    """Find this configuration's run or create it, and mark it as this process's, under the store's lock
    so that two processes never both take it. Returns (JobOutcome to stop with | None, run_id, resumed)."""
    with tracking.store_lock(client.tracking_uri):
        previous = tracking.runs_with_hash(client, experiment, chash)
        finished = [r for r in previous if r.info.status == tracking.STATUS["FINISHED"]]
        if finished and not c.runner.rerun:
            print(f"[{label}] already finished as run {finished[0].info.run_id} (config {chash}); "
                  f"skipped (runner.rerun=true trains it again)")
            return JobOutcome("SKIPPED", finished[0].data.tags.get(record.OUTCOME), finished[0].info.run_id), None, False
        live = [r for r in previous if tracking.is_live(r)]
        if live and not c.runner.rerun:
            tags = live[0].data.tags
            message = (f"run {live[0].info.run_id} of this configuration is being trained by process "
                       f"{tags.get(record.PID, '?')} on {tags.get(record.HOST, '?')}: not taken over "
                       f"(wait for it, or stop that process and run this again to resume)")
            return JobOutcome("BUSY", None, live[0].info.run_id, message), None, False
        resumable = [r for r in previous if r.info.status != tracking.STATUS["FINISHED"]]
        if resumable and not c.runner.rerun:
            run_id = resumable[0].info.run_id
            tracking.claim(client, run_id)
            for stale in (record.ERROR, record.OUTCOME):
                if stale in resumable[0].data.tags:
                    client.delete_tag(run_id, stale)
            if parent and resumable[0].data.tags.get(record.PARENT) != parent:
                client.set_tag(run_id, record.PARENT, parent)
            return None, run_id, True
        commit, dirty = _git_state()
        tags = {record.PRESET: c.preset, record.SYSTEM: c.system, record.SEED: c.seed, record.CONFIG_HASH: chash,
                record.SOURCE: c.source, record.WEIGHTING: c.weighting.name, record.GIT_COMMIT: commit,
                record.GIT_DIRTY: dirty, record.LR_MULTIPLIER: c.optim.lr_multiplier,
                record.OVERRIDDEN: " ".join(record.overriding(overrides or [])), **record.this_process()}
        if c.ablation.base:
            tags.update({record.ABLATION_BASE: c.ablation.base, record.ABLATION_FACTOR: c.ablation.factor,
                         record.ABLATION_DIRECTION: c.ablation.direction})
        if parent:
            tags[record.PARENT] = parent
        run_name = f"{c.preset}-s{c.seed}-lr{c.optim.effective_lr:g}"
        run_id = client.create_run(experiment, tags={k: str(v) for k, v in tags.items()}, run_name=run_name).info.run_id
    params = tracking.flatten(as_dict(c))
    params["optim.effective_lr"] = c.optim.effective_lr
    tracking.log_params(client, run_id, params)
    with tempfile.TemporaryDirectory() as scratch:
        (Path(scratch) / "config.yaml").write_text(OmegaConf.to_yaml(as_dict(c)))
        (Path(scratch) / "overrides.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(list(overrides or []))))
        client.log_artifact(run_id, str(Path(scratch) / "config.yaml"))
        client.log_artifact(run_id, str(Path(scratch) / "overrides.yaml"))
    return None, run_id, False


def checkpoint_dir_of(c: Config, uri: str, run_id: str) -> Path:
    """A run's own checkpoints: keyed by its store and run id, so no other run can ever resume from them."""
    return Path(c.runner.checkpoint_root) / tracking.store_key(uri) / run_id


def run_job(cfg: DictConfig, overrides: list[str] | None = None, sweep_dir: str | None = None,
            job_number: int | None = None) -> JobOutcome:
    """Train one configuration into its MLflow run. `sweep_dir`: the directory of the sweep this job is
    part of (its `job_number`); its parent run is found through MLflow by it."""
    c = validate(cfg)
    uri, artifact_root = tracking.resolve_store(c.tracking.uri, c.tracking.artifact_location)
    client = tracking.ensure_store(uri)
    experiment = tracking.experiment_id(client, c.experiment, artifact_root)
    found = sweep.find_parent(client, experiment, sweep_dir) if sweep_dir else None
    parent = found.info.run_id if found else None
    outcome = _run(c, client, uri, experiment, overrides, parent, sweep.renders_sample(found, job_number))
    outcome.parent, outcome.client = parent, client
    return outcome


def _fail(client, run_id: str, error: Exception, scratch: Path, buffer, progress) -> JobOutcome:
    """A training that raised: flush what it logged, keep its traceback, end the run FAILED with the error."""
    buffer.flush()
    (scratch / "traceback.txt").write_text(traceback.format_exc())
    client.log_artifact(run_id, str(scratch / "traceback.txt"))
    tracking.set_tags(client, run_id, {record.OUTCOME: record.FAILED,
                                       record.ERROR: f"{type(error).__name__}: {error}"[:500]})
    tracking.end_run(client, run_id, tracking.STATUS["FAILED"])
    progress.finish(f"FAILED: {type(error).__name__}: {error}")
    return JobOutcome("FAILED", record.FAILED, run_id, str(error))


def _facts(outcome: record.Outcome, output, seconds: float, buffer) -> record.RunFacts:
    """What a training that returned established (the trainer's result, its health counters, the entry
    point's machine and data facts, and this job's timings), as one record."""
    result = output.result
    return record.RunFacts(
        outcome=outcome, steps_completed=result.steps_completed, diverged_at_step=result.diverged_at_step,
        first_nonfinite_step=result.first_nonfinite_step, skipped_steps=result.skipped_steps,
        dampened_steps=result.dampened_steps, best_validation=tracking.finite_or_none(result.best_validation),
        initial_validation=tracking.finite_or_none(result.initial_validation),
        final_validation=tracking.finite_or_none(result.final_validation), spiky=result.spiky, **result.health,
        train_seconds=round(result.train_seconds, 1), job_seconds=round(seconds, 1),
        resumed_from_step=result.resumed_from_step, logging_seconds=round(buffer.seconds_logging, 2), **output.facts)


def _run(c: Config, client, uri: str, experiment: str, overrides: list[str] | None, parent: str | None,
         render_sample: bool = True) -> JobOutcome:
    chash = config_hash(c)
    label = f"{c.preset} seed={c.seed} lr={c.optim.effective_lr:g}"
    stopped, run_id, resumed = _claim_run(client, experiment, c, chash, label, overrides, parent)
    if stopped is not None:
        if stopped.status == "BUSY":
            print(f"error: [{label}] {stopped.message}", file=sys.stderr)
        return stopped
    checkpoint_dir = checkpoint_dir_of(c, uri, run_id)
    already = tracking.logged_through(client, run_id) if resumed else {}
    progress = ProgressPrinter(label, c.trainer.steps, c.tracking.progress_every)
    if resumed:
        logged = max(already.values(), default=-1) + 1
        saved = (checkpoint_dir / "checkpoint").is_file()   # the manager's index (finite/ holds the replay's start)
        progress.say(f"resuming run {run_id}: {logged} steps already logged, "
                     f"{'continuing from its checkpoint' if saved else 'no checkpoint yet, from step 0'}")
    progress.say(f"run {run_id}: preparing data, building the model and compiling the training step")
    buffer = tracking.MetricBuffer(client, run_id, c.tracking.flush_every, already)
    started = time.perf_counter()
    with StopRequest() as stop, tracking.Heartbeat(client, run_id), tempfile.TemporaryDirectory() as scratch:
        try:
            from myxtts.training.run import train  # TensorFlow: imported when a job trains

            output = train(c, checkpoint_dir, [buffer, progress], stop, Path(scratch), say=progress.say,
                           render_sample=render_sample)
        except Exception as error:  # noqa: BLE001 - any failure must end the run FAILED, never RUNNING
            return _fail(client, run_id, error, Path(scratch), buffer, progress)
        buffer.flush()
        result = output.result
        for path in output.artifacts:
            if path.is_dir():
                client.log_artifacts(run_id, str(path), artifact_path=path.name)
            else:
                client.log_artifact(run_id, str(path), artifact_path="samples")
        seconds = time.perf_counter() - started
        outcome = result.outcome
        killed = outcome == record.KILLED
        tracking.set_tags(client, run_id, _facts(outcome, output, seconds, buffer).to_tags())
        tracking.end_run(client, run_id, tracking.STATUS["KILLED" if killed else "FINISHED"])
    if not killed:  # a finished run is never resumed; its final weights are an artifact
        shutil.rmtree(checkpoint_dir, ignore_errors=True)
    where = f" at step {result.diverged_at_step}" if result.diverged_at_step is not None else ""
    progress.finish(f"{outcome}{where} after {result.steps_completed} steps in {seconds:.0f} s (run {run_id})")
    if killed:
        return JobOutcome("KILLED", record.KILLED, run_id, f"stopped by signal {stop.signal}")
    return JobOutcome("FINISHED", outcome, run_id)
