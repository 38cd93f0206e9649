"""One configuration, start to end: validate → seed → build → train → track.

A diverging configuration is a result (the run FINISHES with outcome=diverged); an exception marks the
run FAILED with its traceback as an artifact; SIGINT/SIGTERM stop at the next step boundary, flush the
metrics, save a checkpoint and mark the run KILLED, so a re-run resumes it.
"""
from __future__ import annotations

import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from myxtts import record
from runner import tracking
from runner.progress import ProgressPrinter
from runner.schema import PROJECT_ROOT, config_hash, stable_fields, validate


@dataclass
class JobOutcome:
    status: str            # FINISHED | FAILED | KILLED | SKIPPED | BUSY (another live process trains it)
    outcome: str | None    # stable | diverged | failed | killed
    run_id: str | None
    message: str = ""


class StopRequest:
    """SIGINT/SIGTERM set a flag the training loop reads between steps."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> "StopRequest":
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


def ensure_corpus(c: DictConfig) -> None:
    if c.data.kind != "espeak":
        return
    from myxtts.data.corpus import CorpusSpec, build_corpus

    build_corpus(Path(c.data.path), CorpusSpec(c.data.utterances, c.data.speakers, c.data.corpus_seed))


def _train(c: DictConfig, checkpoint_dir: Path, callbacks: list, should_stop, artifact_dir: Path):
    """Build everything from the validated config and train. Imports TensorFlow lazily."""
    from myxtts.backend import tf  # first: the quiet TensorFlow import

    import keras
    from myxtts.data.dataset import BatchStream, DataSettings, prepare_data
    from myxtts.data.features import MelSpec
    from myxtts.models.xtts import build_model
    from myxtts.training.diagnostics import DiagnosticsSettings
    from myxtts.training.losses import XTTSLoss
    from myxtts.training.optim import OptimizerSettings
    from myxtts.training.settings import FaultSettings, GuardSettings, StableSettings
    from myxtts.training.trainer import Trainer, TrainerSettings, make_deterministic

    keras.mixed_precision.set_global_policy(c.trainer.precision)
    ensure_corpus(c)
    mel_spec = MelSpec.for_scale(c.data.features.scale)
    data = prepare_data(DataSettings(Path(c.data.path), Path(c.data.cache_dir), c.data.validation_fraction,
                                     c.data.max_seconds, c.data.max_text_length, c.data.reference_frames,
                                     split_seed=c.data.corpus_seed, mel=mel_spec, scale=c.data.features.scale,
                                     subset=c.data.subset))
    make_deterministic(c.seed)
    model = build_model(c.model.size, data.tokenizer.vocab_size, mel_spec.n_mels, c.model.attention_mask)
    w = c.weighting
    options = {"stable": {"settings": StableSettings(**stable_fields(w))},
        "dwa": {"temperature": w.temperature, "window": w.window},
        "gradnorm": {"alpha": w.alpha, "learning_rate": w.learning_rate},
        "legacy_tanh": {"factor_min": w.tanh_factor_min, "factor_max": w.tanh_factor_max}}.get(w.name, {})
    smoothing = c.loss.label_smoothing_factor if c.loss.label_smoothing else 0.0
    loss = XTTSLoss(
        mel_loss_weight=c.loss.mel_loss_weight, stop_loss_weight=c.loss.stop_loss_weight,
        kl_loss_weight=c.loss.kl_loss_weight, attention_loss_weight=c.loss.attention_loss_weight,
        loss_smoothing_factor=c.loss.loss_smoothing_factor, max_loss_spike_threshold=c.guards.spike_threshold,
        gradient_norm_threshold=w.gradient_norm_threshold, weighting=w.name, weighting_options=options,
        use_huber_loss=c.loss.huber, huber_delta=c.loss.huber_delta, mel_label_smoothing=smoothing,
        stop_label_smoothing=smoothing, stop_positive_weight=c.loss.stop_positive_weight,
        total_loss_clip=c.loss.total_loss_clip, spike_dampening=c.guards.spike_dampening,
        spike_window=c.guards.spike_window, seed=c.seed)
    trainer = Trainer(
        model, loss,
        OptimizerSettings(lr=c.optim.lr * c.optim.lr_multiplier, schedule=c.optim.schedule,
                          warmup_steps=c.optim.warmup_steps, weight_decay=c.optim.weight_decay,
                          clip_norm=c.optim.clip_norm, accumulation_steps=c.optim.accumulation_steps,
                          clip_order=c.optim.clip_order, restart_period=c.optim.restart_period,
                          restart_t_mul=c.optim.restart_t_mul, restart_m_mul=c.optim.restart_m_mul,
                          min_lr=c.optim.min_lr),
        GuardSettings(**OmegaConf.to_container(c.guards)),
        TrainerSettings(steps=c.trainer.steps, xla=c.trainer.xla, validate_every=c.trainer.validate_every,
                        checkpoint_every=c.trainer.checkpoint_every, precision=c.trainer.precision,
                        fault=FaultSettings(**OmegaConf.to_container(c.fault)),
                        diagnostics=DiagnosticsSettings(**OmegaConf.to_container(c.diagnostics))),
        BatchStream(data.train, c.trainer.batch_size, c.seed, c.data.reference_frames, fixed_shapes=c.trainer.xla),
        BatchStream(data.validation, c.trainer.batch_size, c.seed, c.data.reference_frames, shuffle=False,
                    drop_remainder=False) if data.validation else None,
        checkpoint_dir=checkpoint_dir, callbacks=tuple(callbacks))
    result = trainer.fit(should_stop=should_stop)
    produced: list[Path] = []
    if result.outcome != "interrupted":
        weights = artifact_dir / "checkpoint" / "model.weights.h5"
        weights.parent.mkdir(parents=True, exist_ok=True)
        model.save_weights(weights)
        produced.append(weights.parent)
        finite = all(bool(tf.reduce_all(tf.math.is_finite(v))) for v in model.trainable_variables)
        if c.trainer.synthesize and finite:
            from runner.artifacts import render_validation_sentence

            produced += render_validation_sentence(model, data, mel_spec, artifact_dir / "samples",
                                                   c.trainer.synthesis_max_frames)
    device = ", ".join(d.name for d in tf.config.list_logical_devices("GPU")) or "CPU"
    facts = {"tf_version": tf.__version__, "device": device,
             "machine": f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs", "skipped_utterances": data.skipped.total,
             "train_utterances": len(data.train), "validation_utterances": len(data.validation),
             "steps_per_epoch": trainer.train_stream.batches_per_epoch}
    if result.outcome != "interrupted" and c.diagnostics.origin and result.first_bad_step is not None:
        # Last use of the trainer: the replay rewinds it to the first non-finite step, logging nothing.
        origin = trainer.find_nan_origin()
        if origin:
            path = artifact_dir / "nan_origin" / "nan_origin.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(origin, indent=1, allow_nan=True))
            produced.append(path.parent)
            facts.update({"nan_origin_layer": origin["layer"], "nan_origin_op": origin["op"],
                          "nan_origin_step": origin["step"]})
            print(f"[{c.preset} seed={c.seed}] NaN origin: {origin['layer'] or '?'} ({origin['op']}) "
                  f"at step {origin['step']}")
    return result, produced, facts


def _claim_run(client, experiment: str, c: DictConfig, chash: str, label: str, overrides: list[str] | None):
    """Find this configuration's run or create it, and mark it as this process's, under the store's lock
    so that two processes never both take it. Returns (JobOutcome to stop with | None, run_id, resumed)."""
    parent = tracking.parent_run_id()
    with tracking.store_lock(client.tracking_uri):
        previous = tracking.runs_with_hash(client, experiment, chash)
        finished = [r for r in previous if r.info.status == tracking.STATUS["FINISHED"]]
        if finished and not c.runner.rerun:
            print(f"[{label}] already finished as run {finished[0].info.run_id} (config {chash}); "
                  f"skipped (runner.rerun=true trains it again)")
            return JobOutcome("SKIPPED", finished[0].data.tags.get("outcome"), finished[0].info.run_id), None, False
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
            for stale in ("error", "outcome"):
                if stale in resumable[0].data.tags:
                    client.delete_tag(run_id, stale)
            if parent and resumable[0].data.tags.get("mlflow.parentRunId") != parent:
                client.set_tag(run_id, "mlflow.parentRunId", parent)
            return None, run_id, True
        commit, dirty = _git_state()
        tags = {"preset": c.preset, "system": c.system, "seed": c.seed, "config_hash": chash, "source": c.source,
                "weighting": c.weighting.name, "git_commit": commit, "git_dirty": dirty,
                "lr_multiplier": c.optim.lr_multiplier, **record.this_process()}
        if c.ablation.base:
            tags.update({"ablation_base": c.ablation.base, "ablation_factor": c.ablation.factor,
                         "ablation_direction": c.ablation.direction})
        if parent:
            tags["mlflow.parentRunId"] = parent
        run_name = f"{c.preset}-s{c.seed}" + (f"-lr{c.optim.lr_multiplier:g}x" if c.optim.lr_multiplier != 1 else "")
        run_id = client.create_run(experiment, tags={k: str(v) for k, v in tags.items()}, run_name=run_name).info.run_id
    params = tracking.flatten(OmegaConf.to_container(c, resolve=True))
    params["optim.effective_lr"] = c.optim.lr * c.optim.lr_multiplier
    tracking.log_params(client, run_id, params)
    with tempfile.TemporaryDirectory() as scratch:
        (Path(scratch) / "config.yaml").write_text(OmegaConf.to_yaml(c))
        (Path(scratch) / "overrides.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(list(overrides or []))))
        client.log_artifact(run_id, str(Path(scratch) / "config.yaml"))
        client.log_artifact(run_id, str(Path(scratch) / "overrides.yaml"))
    return None, run_id, False


def checkpoint_dir_of(c: DictConfig, uri: str, run_id: str) -> Path:
    """A run's own checkpoints: keyed by its store and run id, so no other run can ever resume from them."""
    return Path(c.runner.checkpoint_root) / tracking.store_key(uri) / run_id


def run_job(cfg: DictConfig, overrides: list[str] | None = None) -> JobOutcome:
    c = validate(cfg)
    uri, artifact_root = tracking.resolve_store(c.tracking.uri, c.tracking.artifact_location)
    client = tracking.ensure_store(uri)
    experiment = tracking.experiment_id(client, c.experiment, artifact_root)
    chash = config_hash(c)
    label = f"{c.preset} seed={c.seed}" + (f" lr×{c.optim.lr_multiplier:g}" if c.optim.lr_multiplier != 1 else "")
    stopped, run_id, resumed = _claim_run(client, experiment, c, chash, label, overrides)
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
            result, produced, facts = _train(c, checkpoint_dir, [buffer, progress], stop, Path(scratch))
        except Exception as error:  # noqa: BLE001 - any failure must end the run FAILED, never RUNNING
            buffer.flush()
            (Path(scratch) / "traceback.txt").write_text(traceback.format_exc())
            client.log_artifact(run_id, str(Path(scratch) / "traceback.txt"))
            tracking.set_tags(client, run_id, {"outcome": "failed", "error": f"{type(error).__name__}: {error}"[:500]})
            tracking.end_run(client, run_id, tracking.STATUS["FAILED"])
            progress.finish(f"FAILED: {type(error).__name__}: {error}")
            return JobOutcome("FAILED", "failed", run_id, str(error))
        buffer.flush()
        for path in produced:
            if path.is_dir():
                client.log_artifacts(run_id, str(path), artifact_path=path.name)
            else:
                client.log_artifact(run_id, str(path), artifact_path="samples")
        seconds = time.perf_counter() - started
        killed = result.outcome == "interrupted"
        outcome = "killed" if killed else result.outcome
        tags = {"outcome": outcome, "steps_completed": result.steps_completed,
                "diverged_at_step": result.diverged_at_step if result.diverged_at_step is not None else "",
                "first_nonfinite_step": result.first_nonfinite_step if result.first_nonfinite_step is not None else "",
                "skipped_steps": result.skipped_steps, "dampened_steps": result.dampened_steps,
                "best_validation": tracking.finite_or_none(result.best_validation) or "",
                "train_seconds": round(result.train_seconds, 1), "job_seconds": round(seconds, 1),
                "resumed_from_step": result.resumed_from_step,
                "logging_seconds": round(buffer.seconds_logging, 2), **facts}
        tracking.set_tags(client, run_id, tags)
        tracking.end_run(client, run_id, tracking.STATUS["KILLED" if killed else "FINISHED"])
    if not killed:  # a finished run is never resumed; its final weights are an artifact
        shutil.rmtree(checkpoint_dir, ignore_errors=True)
    where = f" at step {result.diverged_at_step}" if result.diverged_at_step is not None else ""
    progress.finish(f"{outcome}{where} after {result.steps_completed} steps in {seconds:.0f} s (run {run_id})")
    if killed:
        return JobOutcome("KILLED", "killed", run_id, f"stopped by signal {stop.signal}")
    return JobOutcome("FINISHED", outcome, run_id)
