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
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from myxtts import record
from runner import lifecycle, sweep, tracking
from runner.lifecycle import JobOutcome
from runner.progress import ProgressPrinter
from runner.schema import Config, config_hash, validate


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
    label = f"{c.preset} seed={c.seed} lr={c.optim.effective_lr:g}"
    run = lifecycle.claim(client, experiment, c, config_hash(c), label, overrides, parent)
    if isinstance(run, JobOutcome):
        if run.status == "BUSY":
            print(f"error: [{label}] {run.message}", file=sys.stderr)
        return run
    progress = ProgressPrinter(label, c.trainer.steps, c.tracking.progress_every)
    try:  # the run is this process's now: whatever breaks (settings, data, training, artifacts) ends it FAILED
        run.prepare(c, list(overrides or []), parent)
        return _train(c, run, uri, progress, render_sample)
    except Exception as error:  # noqa: BLE001 - any failure must end the run FAILED, never RUNNING
        outcome = run.fail(error)
        progress.finish(f"FAILED (run {run.run_id})")
        print(f"error: [{label}] run {run.run_id} FAILED: {outcome.message}", file=sys.stderr)
        return outcome


def _train(c: Config, run: lifecycle.TrackedRun, uri: str, progress: ProgressPrinter,
           render_sample: bool) -> JobOutcome:
    """Train the claimed run and end it FINISHED (or KILLED by a stop request); an exception is left to _run."""
    checkpoint_dir = checkpoint_dir_of(c, uri, run.run_id)
    if run.resumed:
        saved = (checkpoint_dir / "checkpoint").is_file()   # the manager's index (finite/ holds the replay's start)
        progress.say(f"resuming run {run.run_id}: {run.logged_steps} steps already logged, "
                     f"{'continuing from its checkpoint' if saved else 'no checkpoint yet, from step 0'}")
    progress.say(f"run {run.run_id}: preparing data, building the model and compiling the training step")
    started = time.perf_counter()
    with (StopRequest() as stop, run.recording(c.tracking.flush_every) as buffer,
          tempfile.TemporaryDirectory() as scratch):
        from myxtts.training.run import train  # TensorFlow: imported when a job trains

        output = train(c, checkpoint_dir, [buffer, progress], stop, Path(scratch), say=progress.say,
                       render_sample=render_sample)
        facts = run.finish(output.artifacts, lambda: _facts(output.result.outcome, output,
                                                            time.perf_counter() - started, buffer))
    killed = facts.outcome == record.KILLED
    if not killed:  # a finished run is never resumed; its final weights are an artifact
        shutil.rmtree(checkpoint_dir, ignore_errors=True)
    where = f" at step {facts.diverged_at_step}" if facts.diverged_at_step is not None else ""
    progress.finish(f"{facts.outcome}{where} after {facts.steps_completed} steps in {facts.job_seconds:.0f} s "
                    f"(run {run.run_id})")
    if killed:
        return JobOutcome("KILLED", record.KILLED, run.run_id, f"stopped by signal {stop.signal}")
    return JobOutcome("FINISHED", facts.outcome, run.run_id)
