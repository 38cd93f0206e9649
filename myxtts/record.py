"""The record contract: what a run's MLflow record holds and what it means, named once.

Imports no TensorFlow and no MLflow. The trainer emits these metric names, the runner writes these tags and
outcomes into this store location, analysis reads them back; all three import the names from here.

It also holds the liveness rule, so the runner and analysis decide "is this RUNNING run still being
trained?" the same way, and the server rule (`server_problem`), so both decide "is this address an MLflow
server?" the same way, in seconds.

A run is *live* when the process that claimed it still exists: on the same host that is checked
directly (pid plus the process's start time, so a recycled pid does not count); from another host only
the heartbeat can tell, and a heartbeat older than HEARTBEAT_TIMEOUT_S means the process is gone.
"""
from __future__ import annotations

import enum
import json
import math
import os
import socket
import time
import typing
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path

# --- where: the project's default store (sqlite:///<project>/mlflow.db, artifacts beside it) -------------
STORE_FILE, ARTIFACTS_DIR = "mlflow.db", "mlartifacts"
# A run's artifacts the runner writes and analysis reads back: the typed settings the job ran with (every
# group, as plain YAML), and the command-line overrides that made them.
CONFIG_ARTIFACT, OVERRIDES_ARTIFACT = "config.yaml", "overrides.yaml"
# A param that is not a setting but derived from two (optim.lr × optim.lr_multiplier), for MLflow searches.
DERIVED_PARAMS = ("optim.effective_lr",)


def default_store(root: Path) -> str:
    return f"sqlite:///{Path(root) / STORE_FILE}"


def server_problem(uri: str, timeout: float = 5.0) -> str | None:
    """Why an http(s):// tracking URI is not a usable MLflow server, as the end of a sentence that starts
    with the URI ("is unreachable (...)", "answers but is not an MLflow tracking server (...)"), or None.
    MLflow's own client retries a dead address for minutes; the runner before a launch and analysis before
    a report ask once, each request within `timeout` s, and decide the same way."""
    base = uri.rstrip("/")
    try:
        with urllib.request.urlopen(f"{base}/health", timeout=timeout) as response:
            response.read(64)
    except urllib.error.HTTPError as error:   # something answers, but not as MLflow's /health does
        return f"answers but is not an MLflow tracking server (its /health gave: HTTP {error.code} {error.reason})"
    except (urllib.error.URLError, OSError, ValueError) as error:
        return f"is unreachable ({_first_line(getattr(error, 'reason', None) or error)})"
    # Anything may answer /health: an MLflow server also answers its REST API with a JSON object.
    search = urllib.request.Request(f"{base}/api/2.0/mlflow/experiments/search", data=b'{"max_results": 1}',
                                    method="POST", headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(search, timeout=timeout) as response:
            answer = json.loads(response.read(1 << 20) or b"{}")
        if not isinstance(answer, dict):
            raise ValueError("not a JSON object")
    except urllib.error.HTTPError as error:
        return f"answers but is not an MLflow tracking server (its REST API gave: HTTP {error.code} {error.reason})"
    except (urllib.error.URLError, OSError, ValueError) as error:
        reason = _first_line(getattr(error, "reason", None) or error)
        return f"answers but is not an MLflow tracking server (its REST API gave: {reason})"
    return None


def _first_line(reason: object) -> str:
    lines = str(reason).strip().splitlines()
    return lines[0] if lines else type(reason).__name__


# --- per-step metrics: the catalogue (name, meaning, who writes it) ---------------------------------------
# Every name a run logs per step. Names with a term, group or layer in them are built by the functions below,
# so the prefix is spelt once. Writers: trainer (myxtts/training/trainer.py), loss (losses.py), weighting
# (weighting.py), guards (the spike dampener and divergence monitor), health (health.py).
LOSS_TOTAL = "loss/total"          # loss: the optimised loss (weighted, dampened, clipped)
LOSS_UNDAMPED = "loss/undamped"    # loss: the weighted sum before the spike dampener and the loss clip
LOSS_STOP_Z = "loss/stop_z"        # loss: the stop logits' z-loss penalty (loss.stop_z_loss_weight)
RAW_PREFIX, WEIGHTED_PREFIX, WEIGHT_PREFIX, VAL_PREFIX = "raw/", "weighted/", "weight/", "val/"


def raw(term: str) -> str:
    """loss: one loss term before weighting (mel, postnet, stop, kl, attention)."""
    return f"{RAW_PREFIX}{term}"


def weighted(term: str) -> str:
    """loss: one term times its effective weight."""
    return f"{WEIGHTED_PREFIX}{term}"


def weight(term: str) -> str:
    """weighting: the effective weight of one term in this step."""
    return f"{WEIGHT_PREFIX}{term}"


def val(term: str) -> str:
    """trainer: one validation term (mean over the validation set), or `total` (their weighted sum)."""
    return f"{VAL_PREFIX}{term}"


WEIGHT_MEL = weight("mel")
VAL_POSTNET, VAL_TOTAL = val("postnet"), val("total")   # best_validation is the lowest val/postnet
GRAD_NORM, GRAD_NORM_CLIPPED = "grad/norm", "grad/norm_clipped"   # trainer: true gradient norm, after clipping
UPDATE_NORM, UPDATE_RATIO = "update/norm", "update/ratio"          # trainer: ||dtheta||, ||dtheta|| / ||theta||
LR, LOSS_SCALE = "lr", "loss_scale"                                # trainer: the step's rate; float16 loss scale
EPOCH = "epoch"                                                    # trainer: epochs completed after the step
GUARD_DIVERGED, GUARD_NONFINITE, GUARD_SKIPPED = "guard/diverged", "guard/nonfinite", "guard/skipped"  # trainer
GUARD_SKIPPED_TOTAL, GUARD_DAMPENED_TOTAL = "guard/skipped_total", "guard/dampened_total"           # trainer
GUARD_SPIKE, GUARD_SPIKE_RATIO = "guard/spike", "guard/spike_ratio"   # guards: dampened this step / its ratio
HEALTH_NOOP, HEALTH_SPIKE = "health/noop", "health/spike"            # health: no update applied / loss spiked
# weighting: the adaptive strategies' own state
WEIGHTING_DECISION, WEIGHTING_RATIO = "weighting/decision", "weighting/ratio"
WEIGHTING_ROLLBACKS, WEIGHTING_LOSS_VARIANCE = "weighting/rollbacks", "weighting/loss_variance"
WEIGHTING_STABLE_STEPS = "weighting/consecutive_stable_steps"
WEIGHTING_SINCE_CHANGE = "weighting/steps_since_weight_change"
WEIGHTING_GRADIENT_GROWING, WEIGHTING_GRADNORM_LOSS = "weighting/gradient_growing", "weighting/gradnorm_loss"


def weighting_detail(kind: str, term: str) -> str:
    """weighting: a per-term value of a strategy (log_variance for uncertainty, shared_grad_norm for GradNorm)."""
    return f"weighting/{kind}_{term}"


DIAG_PREFIX = "diag/"   # trainer: per-layer-group signals, every diagnostics.every steps


def diag(signal: str, part: str) -> str:
    """trainer: one per-layer signal (grad, update_ratio, attention, activation) of one group or layer."""
    return f"{DIAG_PREFIX}{signal}/{part}"


# --- run tags: the catalogue (name, meaning, who writes it) -----------------------------------------------
# Identity, written by the runner when it creates a run (runner/job.py):
PRESET, SYSTEM, SEED, WEIGHTING = "preset", "system", "seed", "weighting"   # the preset, its system, seed, strategy
CONFIG_HASH, SOURCE = "config_hash", "source"           # the configuration's hash (resume key); the preset's source
# What the preset is (its one-line `description`) and the learning rate its documents give (`documented_lr`,
# absent where they give none), from the preset's yaml; the part the configuration plays in its experiment
# (`role`: the sweep file's `roles` mapping, ROLES below), so analysis reads roles and never preset names.
DESCRIPTION, DOCUMENTED_LR, ROLE = "description", "documented_lr", "role"
GIT_COMMIT, GIT_DIRTY = "git_commit", "git_dirty"       # the code it ran ("True" when uncommitted changes)
LR_MULTIPLIER = "lr_multiplier"                         # optim.lr_multiplier (the learning-rate stress)
ABLATION_BASE, ABLATION_FACTOR, ABLATION_DIRECTION = "ablation_base", "ablation_factor", "ablation_direction"
# runner (runner/lifecycle.py), on a finished run that a later job skipped because that job's ablation arm has
# the same configuration (e.g. `upstream_fp16` with its float16 order corrected is `upstream`): the other arms
# this run's seeds stand for, each "base:factor:direction", separated by spaces.
ABLATION_ALIASES = "ablation_aliases"
# runner (runner/evidence.py), on a run re-created in a store from a report's evidence: "<evidence folder>:<run id>".
IMPORTED_FROM = "imported_from"
PARENT = "mlflow.parentRunId"                           # MLflow's: the sweep's parent run
NOTE = "mlflow.note.content"   # MLflow's: a run's description, one line (runner: a run's result, a sweep's report)
OUTCOME, ERROR = "outcome", "error"                     # runner: the Outcome; a failed run's error, one line
# A sweep's parent run: found by every job through its sweep directory, each job's outcome a tag on it.
SWEEP, SWEEP_KEY, SWEEP_DIR, JOB_PREFIX = "sweep", "sweep_key", "sweep_dir", "job/"
SAMPLE_JOBS = "sample_jobs"   # on a parent: the jobs that render a sample (one per configuration)
# On a parent: its experiment's report folder as artifacts (REPORT_ARTIFACT/report.md), attached by the sweep's
# end (runner/callbacks.py) or by `python -m analysis` (analysis/load.py); its description says where (report_note).
REPORT_ARTIFACT = "report"

# The values of tags `system` and `role`, in the order a report's tables list them. A role is what the
# experiment's design makes a configuration (conf/sweep/*.yaml `roles`): the control and its treatment, a baseline,
# a one-change arm of the treatment (weighting alone), a configuration before or after a documented fix, or any
# other arm (the default for a preset the mapping does not name).
SYSTEMS = ("base", "old", "new", "baseline")
ROLES = ("control", "treatment", "baseline", "weighting_only", "before_fix", "after_fix", "arm")
DEFAULT_ROLE = "arm"


def report_note(report: Path, root: Path | None = None) -> str:
    """A sweep parent's description of its report: the file (relative to `root` when inside it) and the
    artifact beside the run."""
    shown = report.relative_to(root) if root is not None and report.is_relative_to(root) else report
    return f"report: {shown} · artifact {REPORT_ARTIFACT}/{report.name} of this run"


# How a runs table (mlflow.search_runs, analysis.load) names a tag's column (settings are read typed).
TAG_COLUMN = "tag."


def tag_column(name: str) -> str:
    return f"{TAG_COLUMN}{name}"


# --- outcomes (tag `outcome`): a finished run's verdict, or why there is none (failed, killed) -----------
class Outcome(enum.StrEnum):
    STABLE = "stable"
    DIVERGED = "diverged"
    FROZEN = "frozen"
    NOT_LEARNING = "not_learning"
    FAILED = "failed"       # the job raised: no verdict
    KILLED = "killed"       # stopped by a signal: resumable, no verdict yet


STABLE, DIVERGED, FAILED, KILLED = Outcome.STABLE, Outcome.DIVERGED, Outcome.FAILED, Outcome.KILLED
FROZEN, NOT_LEARNING = Outcome.FROZEN, Outcome.NOT_LEARNING
VERDICTS = (STABLE, DIVERGED, FROZEN, NOT_LEARNING)
FAILURES = (DIVERGED, FROZEN, NOT_LEARNING)   # every verdict that is not "stable"
# The facts of a training that returned (RunFacts below), each the tag of its name; writers: trainer (t),
# health counters (h), the training entry point (e: myxtts/training/run.py), runner (r).
STEPS_COMPLETED, RESUMED_FROM_STEP = "steps_completed", "resumed_from_step"              # t
DIVERGED_AT_STEP, FIRST_NONFINITE_STEP = "diverged_at_step", "first_nonfinite_step"      # t
SKIPPED_STEPS, DAMPENED_STEPS = "skipped_steps", "dampened_steps"                        # t: guards
INITIAL_VALIDATION, BEST_VALIDATION, FINAL_VALIDATION = "initial_validation", "best_validation", "final_validation"  # t
SPIKY = "spiky"                               # t: a flag beside the verdict ("true"/"false"), not an outcome
UPDATE_STEPS, NOOP_STEPS, SPIKE_STEPS = "update_steps", "noop_steps", "spike_steps"      # h
OVERFLOW_STEPS, LOSS_SCALE_MOVED = "overflow_steps", "loss_scale_moved"                  # h
TRAIN_SECONDS, SETUP_SECONDS, FINISH_SECONDS = "train_seconds", "setup_seconds", "finish_seconds"   # t, e, e
JOB_SECONDS, LOGGING_SECONDS = "job_seconds", "logging_seconds"                          # r
TF_VERSION, DEVICE, MACHINE = "tf_version", "device", "machine"                          # e
TRAIN_UTTERANCES, VALIDATION_UTTERANCES = "train_utterances", "validation_utterances"    # e
SKIPPED_UTTERANCES, STEPS_PER_EPOCH = "skipped_utterances", "steps_per_epoch"            # e
SAMPLE = "sample"                             # e: why no sample was rendered (absent when one was)
NAN_ORIGIN_LAYER, NAN_ORIGIN_OP, NAN_ORIGIN_STEP = "nan_origin_layer", "nan_origin_op", "nan_origin_step"  # e


def _blank_when_none(default=None):
    """A fact written as "" when unknown (the other optional facts are left out of the tags)."""
    return field(default=default, metadata={"blank": True})


@dataclass(frozen=True)
class RunFacts:
    """What one training established, with one way to write it as tags and one to read it back. Field
    names are the tag names above; None is written as "" where marked, otherwise left out."""
    outcome: Outcome
    steps_completed: int
    diverged_at_step: int | None = _blank_when_none()
    first_nonfinite_step: int | None = _blank_when_none()
    skipped_steps: int = 0
    dampened_steps: int = 0
    best_validation: float | None = _blank_when_none()
    initial_validation: float | None = _blank_when_none()
    final_validation: float | None = _blank_when_none()
    spiky: bool = False
    update_steps: int = 0
    noop_steps: int = 0
    overflow_steps: int = 0
    spike_steps: int = 0
    loss_scale_moved: bool = False
    train_seconds: float = 0.0
    job_seconds: float = 0.0
    resumed_from_step: int = 0
    logging_seconds: float = 0.0
    setup_seconds: float | None = None
    tf_version: str | None = None
    device: str | None = None
    machine: str | None = None
    skipped_utterances: int | None = None
    train_utterances: int | None = None
    validation_utterances: int | None = None
    steps_per_epoch: int | None = None
    sample: str | None = None
    nan_origin_layer: str | None = None
    nan_origin_op: str | None = None
    nan_origin_step: int | None = None
    finish_seconds: float | None = None

    def to_tags(self) -> dict[str, str]:
        tags = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None and not f.metadata.get("blank"):
                continue
            if value is not None and isinstance(value, float) and not math.isfinite(value):
                value = None
            tags[f.name] = "" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
        return tags

    @classmethod
    def from_tags(cls, tags: Mapping[str, str]) -> RunFacts | None:
        """The facts of a run's tags; None when the run has none (never finished a training, or failed).
        A malformed value raises ValueError naming the tag."""
        if tags.get(OUTCOME) in (None, "", FAILED) or STEPS_COMPLETED not in tags:
            return None
        hints = typing.get_type_hints(cls)
        values: dict[str, typing.Any] = {}
        for f in fields(cls):
            text = tags.get(f.name, "")
            if text == "":
                continue
            kind = next(t for t in typing.get_args(hints[f.name]) or (hints[f.name],) if t is not type(None))
            try:
                values[f.name] = (Outcome(text) if kind is Outcome else text.lower() == "true" if kind is bool
                                  else int(float(text)) if kind is int else kind(text))
            except ValueError:
                allowed = (", ".join(Outcome) if kind is Outcome else "an integer" if kind is int
                           else "a number" if kind is float else kind.__name__)
                raise ValueError(f"tag {f.name}={text!r}: allowed is {allowed}") from None
        return cls(**values)


FACT_TAGS = tuple(f.name for f in fields(RunFacts))

# The outcome rules, fixed before any sweep (never fitted to a result); the README states them.
# - diverged: the loss was non-finite for guards.divergence_patience consecutive steps, or exceeded
#   guards.divergence_factor x its first loss (the trainer's DivergenceMonitor stops the run there).
# - frozen: more than FROZEN_FRACTION of the update steps applied no update (skipped by a guard or the loss
#   scaler, gradients non-finite and zeroed, or ||dtheta|| = 0), or under float16 the gradients overflowed
#   and the loss scale never left its start (an overflow the scaler never saw).
# - not_learning: the best validation loss is not below NOT_LEARNING_RATIO x the validation loss before
#   step 0 (no finite validation at all counts as not learning).
# - spiky (flag): after the warmup steps the training loss exceeded SPIKE_FACTOR x its running minimum.
FROZEN_FRACTION = 0.5
NOT_LEARNING_RATIO = 0.9
SPIKE_FACTOR = 3.0


def classify(*, diverged: bool, update_steps: int, noop_steps: int, overflow_steps: int = 0,
             loss_scale_moved: bool = True, initial_validation: float | None = None,
             best_validation: float | None = None) -> Outcome:
    """A finished run's outcome from its facts, by the rules above (first that applies wins)."""
    if diverged:
        return DIVERGED
    if update_steps and noop_steps > FROZEN_FRACTION * update_steps:
        return FROZEN
    if overflow_steps > 0 and not loss_scale_moved:
        return FROZEN
    if initial_validation is not None and math.isfinite(initial_validation) and (
            best_validation is None or not math.isfinite(best_validation)
            or best_validation > NOT_LEARNING_RATIO * initial_validation):
        return NOT_LEARNING
    return STABLE

# --- which runs are evidence for their preset's documented claims ------------------------------------------
# A run is evidence for a claim about its preset only when it trains what the preset sets, on the base values:
# every command-line or sweep override is one that changes nothing the claims depend on (the regime: length,
# batch, subset, validation and logging cadence; where things are stored) or picks the preset, seed or sweep.
# The runner writes the others as the tag OVERRIDDEN ("optim.lr=0.01 fault=nan_batch"); analysis lists such
# runs as not used for the claims.
OVERRIDDEN = "overridden"
NEUTRAL_OVERRIDES = ("+preset", "preset", "+ablation", "seed", "sweep", "experiment", "tracking", "runner", "hydra",
                     "diagnostics", "roles", "description",
                     "trainer.steps", "trainer.batch_size", "trainer.validate_every", "trainer.checkpoint_every",
                     "trainer.synthesize", "trainer.synthesis_max_frames", "trainer.threads", "trainer.xla",
                     "data.subset", "data.path", "data.cache_dir", "data.utterances", "data.speakers",
                     "data.max_seconds", "data.validation_fraction")


def overriding(overrides: list[str]) -> list[str]:
    """The overrides (as given, "key=value") that change what a preset's claims are about."""
    def key(override: str) -> str:
        return override.split("=", 1)[0].lstrip("+~").replace("/", ".")

    return [o for o in overrides if not any(key(o) == n.lstrip("+") or key(o).startswith(n.lstrip("+") + ".")
                                            for n in NEUTRAL_OVERRIDES)]


def ablation_arm(base: str, factor: str, direction: str) -> str:
    """One ablation arm as the tag `ablation_aliases` writes it."""
    return f"{base}:{factor}:{direction}"


def ablation_arms(tags: dict[str, str]) -> list[str]:
    """Every ablation arm a run's seeds stand for: its own (if it has one), then its aliases."""
    own = [ablation_arm(tags[ABLATION_BASE], tags.get(ABLATION_FACTOR, ""), tags.get(ABLATION_DIRECTION, ""))] \
        if tags.get(ABLATION_BASE) and tags.get(ABLATION_FACTOR) else []
    return own + tags.get(ABLATION_ALIASES, "").split()


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


# Every tag name a run or a sweep parent carries (JOB_PREFIX heads one tag per job on a parent).
TAGS = (PRESET, SYSTEM, SEED, WEIGHTING, CONFIG_HASH, SOURCE, DESCRIPTION, DOCUMENTED_LR, ROLE, GIT_COMMIT, GIT_DIRTY,
        LR_MULTIPLIER, ABLATION_BASE, ABLATION_FACTOR, ABLATION_DIRECTION, ABLATION_ALIASES, PARENT, NOTE, ERROR,
        OVERRIDDEN, SWEEP, SWEEP_KEY, SWEEP_DIR, SAMPLE_JOBS, HOST, PID, PROCESS_STARTED, HEARTBEAT, *FACT_TAGS)
