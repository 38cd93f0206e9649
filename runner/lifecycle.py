"""One configuration's MLflow run, from claim to end: the only place a job's run changes state.

`claim` finds the configuration's run by its hash or creates it, under the store's lock, so two processes
never both take it: a finished run is skipped, a run another live process trains is left alone, a failed,
killed or orphaned one is resumed. The claimed `TrackedRun` then keeps the heartbeat and the metric buffer
while the job trains, and ends the run exactly once: FINISHED (or KILLED, resumable) with its
`record.RunFacts`, or FAILED with the error and its traceback.

A run's name is what the MLflow runs table shows without configuring a column, so it carries the answer
first: `running · basic · tiny · lr 1e-05 · s0` while the job trains, its outcome in place of `running` once
the run ends (`diverged · basic · ...`). The table cuts a long name short, so the outcome leads. Nothing finds
a run by its name (a configuration's run is found by its hash tag), so renaming it changes no resume.
"""
from __future__ import annotations

import contextlib
import operator
import subprocess
import tempfile
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from myxtts import record
from runner import tracking
from runner.schema import PROJECT_ROOT, Config, as_dict


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__


RUNNING = "running"   # a run's name while its job trains; its outcome replaces the word when the run ends


def run_subject(c: Config) -> str:
    """What a run trains, as its name says it after the outcome: `basic · tiny · lr 1e-05 · s0`."""
    return f"{c.preset} · {c.model.size} · lr {c.optim.effective_lr:g} · s{c.seed}"


def run_note(facts: record.RunFacts) -> str:
    """A run's description (its page in the MLflow UI), one line: what it ended as, after how many steps,
    where it failed, its best validation loss."""
    said = [f"{facts.outcome} after {facts.steps_completed} steps"]
    if facts.diverged_at_step is not None:
        said.append(f"diverged at step {facts.diverged_at_step}")
    if facts.first_nonfinite_step is not None:
        said.append(f"first non-finite loss at step {facts.first_nonfinite_step}")
    said.append("no finite validation loss" if facts.best_validation is None
                else f"best validation {facts.best_validation:.4g}")
    if facts.spiky:
        said.append("spiky")
    if facts.outcome == record.KILLED:
        said.append("stopped by a signal: the same command resumes it")
    return " · ".join(said)


@dataclass
class JobOutcome:
    status: str            # FINISHED | FAILED | KILLED | SKIPPED | BUSY (another live process trains it)
    outcome: str | None    # a record.Outcome, or None when the job trained nothing
    run_id: str | None
    message: str = ""
    parent: str | None = None   # the sweep's parent run, when the job is part of one
    client: Any = None          # the store's client the job used


def _git_state() -> tuple[str, bool]:
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True,
                                check=True).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=PROJECT_ROOT,
                                    capture_output=True, text=True, check=True).stdout.strip())
        return commit, dirty
    except (OSError, subprocess.CalledProcessError):
        return "unknown", False


def _identity(c: Config, chash: str, overrides: list[str], parent: str | None) -> dict[str, object]:
    """The tags a new run starts with: what it trains, from which code, and which process holds it."""
    commit, dirty = _git_state()
    tags: dict[str, object] = {
        record.PRESET: c.preset, record.SYSTEM: c.system, record.SEED: c.seed, record.CONFIG_HASH: chash,
        record.SOURCE: c.source, record.DESCRIPTION: c.description, record.ROLE: c.role,
        record.WEIGHTING: c.weighting.name, record.GIT_COMMIT: commit,
        record.GIT_DIRTY: dirty, record.LR_MULTIPLIER: c.optim.lr_multiplier,
        record.OVERRIDDEN: " ".join(record.overriding(overrides)), **record.this_process()}
    if c.documented_lr is not None:
        tags[record.DOCUMENTED_LR] = c.documented_lr
    if c.ablation.base:
        tags.update({record.ABLATION_BASE: c.ablation.base, record.ABLATION_FACTOR: c.ablation.factor,
                     record.ABLATION_DIRECTION: c.ablation.direction})
    if parent:
        tags[record.PARENT] = parent
    return tags


def _log_config(client, run_id: str, c: Config, overrides: list[str]) -> None:
    """The settings as params (searchable) and as config.yaml / overrides.yaml artifacts (reloadable)."""
    params = tracking.flatten(as_dict(c))
    params.update({name: operator.attrgetter(name)(c) for name in record.DERIVED_PARAMS})
    tracking.log_params(client, run_id, params)
    with tempfile.TemporaryDirectory() as scratch:
        (Path(scratch) / record.CONFIG_ARTIFACT).write_text(OmegaConf.to_yaml(as_dict(c)))
        (Path(scratch) / record.OVERRIDES_ARTIFACT).write_text(OmegaConf.to_yaml(OmegaConf.create(list(overrides))))
        client.log_artifact(run_id, str(Path(scratch) / record.CONFIG_ARTIFACT))
        client.log_artifact(run_id, str(Path(scratch) / record.OVERRIDES_ARTIFACT))


def _serve_ablation_arm(client, run, c: Config) -> str:
    """A finished run with this job's configuration stands for this job's ablation arm too (the tag
    `ablation_aliases`), so the ablation table has the arm's row; returns what to say about it."""
    if not c.ablation.base:
        return ""
    arm = record.ablation_arm(c.ablation.base, c.ablation.factor, c.ablation.direction)
    arms = record.ablation_arms(run.data.tags)
    if arm not in arms:
        aliases = [*run.data.tags.get(record.ABLATION_ALIASES, "").split(), arm]
        client.set_tag(run.info.run_id, record.ABLATION_ALIASES, " ".join(aliases))
    own = run.data.tags.get(record.PRESET, "?")
    return f", the same configuration as {own}: its run stands for {arm} too" if own != c.preset else ""


def claim(client, experiment: str, c: Config, chash: str, label: str, overrides: list[str] | None,
          parent: str | None) -> TrackedRun | JobOutcome:
    """This configuration's run, claimed by this process; or the JobOutcome to stop with (SKIPPED: it
    finished already; BUSY: another live process trains it)."""
    overrides = list(overrides or [])
    with tracking.store_lock(client.tracking_uri):
        previous = tracking.runs_with_hash(client, experiment, chash)
        finished = [r for r in previous if r.info.status == tracking.STATUS["FINISHED"]]
        if finished and not c.runner.rerun:
            serves = _serve_ablation_arm(client, finished[0], c)
            print(f"[{label}] already finished as run {finished[0].info.run_id} (config {chash}){serves}; "
                  f"skipped (runner.rerun=true trains it again)")
            return JobOutcome("SKIPPED", finished[0].data.tags.get(record.OUTCOME), finished[0].info.run_id)
        live = [r for r in previous if tracking.is_live(r)]
        if live and not c.runner.rerun:
            tags = live[0].data.tags
            message = (f"run {live[0].info.run_id} of this configuration is being trained by process "
                       f"{tags.get(record.PID, '?')} on {tags.get(record.HOST, '?')}: not taken over "
                       f"(wait for it, or stop that process and run this again to resume)")
            return JobOutcome("BUSY", None, live[0].info.run_id, message)
        resumable = [r for r in previous if r.info.status != tracking.STATUS["FINISHED"]]
        if resumable and not c.runner.rerun:  # no live process holds it: it is this process's again
            tracking.claim(client, resumable[0].info.run_id)
            return TrackedRun(client, resumable[0].info.run_id, resumed=True, subject=run_subject(c))
        tags = _identity(c, chash, overrides, parent)
        run_id = client.create_run(experiment, tags={k: str(v) for k, v in tags.items()},
                                   run_name=f"{RUNNING} · {run_subject(c)}").info.run_id
    return TrackedRun(client, run_id, resumed=False, subject=run_subject(c))


@dataclass
class TrackedRun:
    """A run this process holds. `recording` keeps it alive and buffers its metrics while the job trains;
    `finish` or `fail` ends it."""
    client: Any
    run_id: str
    resumed: bool
    subject: str = ""       # what the run trains, as its name says it (run_subject)
    already: dict[str, int] = field(default_factory=dict)   # the last step in the store per metric (a resume)
    buffer: tracking.MetricBuffer | None = None

    def named(self, state: str) -> str | None:
        """The run's name once it is `state` (an outcome, or RUNNING)."""
        return f"{state} · {self.subject}" if self.subject else None

    def prepare(self, c: Config, overrides: list[str], parent: str | None) -> None:
        """What the claimed run needs before it trains: a new one its settings (params, config.yaml); a resumed
        one its old verdict cleared (tags, description, the outcome in its name), its sweep's parent and the
        steps it logged already (and its settings, when the attempt before failed ahead of them)."""
        if not self.resumed:
            _log_config(self.client, self.run_id, c, overrides)
            return
        run = self.client.get_run(self.run_id)
        if not run.data.params:
            _log_config(self.client, self.run_id, c, overrides)
        self.client.update_run(self.run_id, name=self.named(RUNNING))
        for stale in (record.ERROR, record.OUTCOME, record.NOTE):
            if stale in run.data.tags:
                self.client.delete_tag(self.run_id, stale)
        if parent and run.data.tags.get(record.PARENT) != parent:
            self.client.set_tag(self.run_id, record.PARENT, parent)
        self.already = tracking.logged_through(self.client, self.run_id)

    @property
    def logged_steps(self) -> int:
        return max(self.already.values(), default=-1) + 1

    @contextlib.contextmanager
    def recording(self, flush_every: int) -> Iterator[tracking.MetricBuffer]:
        """The heartbeat beats and the metrics buffer for as long as the job trains."""
        self.buffer = tracking.MetricBuffer(self.client, self.run_id, flush_every, self.already)
        with tracking.Heartbeat(self.client, self.run_id):
            yield self.buffer

    def fail(self, error: Exception) -> JobOutcome:
        """A job that raised after its claim (its settings, its training, its artifacts): the run ends FAILED
        with the error as a tag and its traceback as an artifact. The store that broke may be the one that
        keeps the traceback or the last metrics: then the run still ends FAILED, and the message (one line)
        says what could not be kept."""
        lost = []
        if self.buffer is not None:
            try:
                self.buffer.flush()
            except Exception as problem:  # noqa: BLE001 - said in the message; the run must still end
                lost.append(f"its last metrics ({_one_line(problem)})")
        try:
            with tempfile.TemporaryDirectory() as scratch:
                path = Path(scratch) / "traceback.txt"
                path.write_text("".join(traceback.format_exception(error)))
                self.client.log_artifact(self.run_id, str(path))
        except Exception as problem:  # noqa: BLE001 - said in the message; the run must still end
            lost.append(f"its traceback ({_one_line(problem)})")
        message = _one_line(error) + (f"; not kept: {', '.join(lost)}" if lost else "")
        try:
            tracking.set_tags(self.client, self.run_id, {
                record.OUTCOME: record.FAILED, record.ERROR: f"{type(error).__name__}: {error}"[:500],
                record.NOTE: f"failed: {_one_line(error)}"[:400] + " · its traceback: artifact traceback.txt · "
                             "a re-run resumes it"})
            tracking.end_run(self.client, self.run_id, tracking.STATUS["FAILED"], name=self.named(record.FAILED))
        except Exception as problem:  # noqa: BLE001 - the tracking store itself is gone: say so, in one line
            message += f"; the run could not be ended ({_one_line(problem)}): a re-run resumes it"
        return JobOutcome("FAILED", record.FAILED, self.run_id, message)

    def finish(self, artifacts: list[Path], facts_of: Callable[[], record.RunFacts]) -> record.RunFacts:
        """A training that returned: its metrics, its artifacts, then its facts (`facts_of` is asked last,
        so the job's timings cover the writes); FINISHED, or KILLED when a stop request ended it (the
        checkpoint stays, so a re-run resumes)."""
        if self.buffer is not None:
            self.buffer.flush()
        for path in artifacts:
            if path.is_dir():
                self.client.log_artifacts(self.run_id, str(path), artifact_path=path.name)
            else:
                self.client.log_artifact(self.run_id, str(path), artifact_path="samples")
        facts = facts_of()
        tracking.set_tags(self.client, self.run_id, facts.to_tags() | {record.NOTE: run_note(facts)})
        killed = facts.outcome == record.KILLED
        tracking.end_run(self.client, self.run_id, tracking.STATUS["KILLED" if killed else "FINISHED"],
                         name=self.named(facts.outcome))
        return facts
