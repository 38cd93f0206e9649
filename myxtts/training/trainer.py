"""The training loop: one compiled step, guards, validation, checkpoints, metrics out through callbacks.

The trainer knows nothing of MLflow or Hydra: each step's metrics leave as one dict of floats (one
device→host transfer of a stacked vector), handed to every callback.
"""
from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from myxtts import record
from myxtts.backend import tf
from myxtts.data.dataset import BatchStream
from myxtts.models.xtts import probing
from myxtts.training.diagnostics import DiagnosticsSettings, attention_layers, layer_group
from myxtts.training.faults import FaultInjector
from myxtts.training.guards import DivergenceMonitor
from myxtts.training.health import RunHealth
from myxtts.training.losses import Objective, evaluation_terms
from myxtts.training.optim import build_optimizer
from myxtts.training.settings import FaultSettings, GuardSettings, OptimizerSettings, TrainerSettings

# trainer.precision: compute dtype of the mixed policies; float16 adds dynamic loss scaling, as Keras's
# LossScaleOptimizer does it (start 2^15, ×2 after 2000 finite steps, halved and the step skipped on overflow).
LOSS_SCALE_START, LOSS_SCALE_GROWTH_STEPS = 2.0 ** 15, 2000


class TrainingCallback(Protocol):
    def on_step(self, step: int, metrics: dict[str, float]) -> None: ...

    def on_validation(self, step: int, metrics: dict[str, float]) -> None: ...

    def on_checkpoint(self, step: int) -> None:
        """Before a checkpoint of `step` completed steps is written: a run resumed from it continues after
        it, so every step up to it must be recorded by then (a kill between the two would leave a gap)."""


@dataclass
class TrainResult:
    outcome: record.Outcome            # a verdict (record.classify), or KILLED when a stop request ended it
    steps_completed: int
    diverged_at_step: int | None
    first_nonfinite_step: int | None
    skipped_steps: int
    dampened_steps: int
    best_validation: float | None
    final_metrics: dict[str, float]
    resumed_from_step: int = 0
    train_seconds: float = 0.0         # every segment of the run, not only the last one
    first_bad_step: int | None = None  # first step whose loss or gradient was non-finite (before any handling)
    initial_validation: float | None = None   # val/postnet before step 0
    final_validation: float | None = None     # val/postnet at the end (None when the run diverged)
    health: dict = field(default_factory=dict)   # RunHealth.facts(): what the outcome rules read
    spiky: bool = False


def _to_tensors(batch: dict) -> dict:
    return {key: tf.constant(value) for key, value in batch.items()}


def _all_finite(tensors) -> tf.Tensor:
    finite = tf.constant(True)
    for tensor in tensors:
        finite = tf.logical_and(finite, tf.reduce_all(tf.math.is_finite(tensor)))
    return finite


def _targets(batch: dict) -> dict:
    return {"mel_target": batch["mel"], "mel_lengths": batch["mel_lengths"], "stop_target": batch["stop_target"],
            "text_lengths": batch["text_lengths"]}


class Trainer:
    def __init__(self, model, loss: Objective, optimizer: OptimizerSettings, guards: GuardSettings,
                 settings: TrainerSettings, train: BatchStream, validation: BatchStream | None = None,
                 checkpoint_dir: Path | None = None, callbacks: tuple[TrainingCallback, ...] = (),
                 fault: FaultSettings | None = None, diagnostics: DiagnosticsSettings | None = None) -> None:
        self.model, self.loss, self.guards, self.settings = model, loss, guards, settings
        self.inject = FaultInjector(fault or FaultSettings(), model)
        self.optimizer_settings = optimizer
        self.train_stream, self.validation_stream = train, validation
        self.callbacks = list(callbacks)
        self.optimizer = build_optimizer(optimizer, settings.steps)
        self.variables = list(model.trainable_variables) + list(loss.strategy.trainable_variables)
        self.optimizer.build(self.variables)
        self.monitor = DivergenceMonitor(guards.divergence_patience, guards.divergence_factor)
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="global_step")
        self.skipped_steps = tf.Variable(0, trainable=False, name="skipped_steps")
        # What a run has seen so far, checkpointed with it: a resumed run must not forget it.
        self.first_nonfinite = tf.Variable(-1, dtype=tf.int64, trainable=False, name="first_nonfinite_step")
        self.first_bad = tf.Variable(-1, dtype=tf.int64, trainable=False, name="first_bad_step")
        self.best_validation = tf.Variable(math.inf, dtype=tf.float64, trainable=False, name="best_validation")
        self.train_seconds = tf.Variable(0.0, dtype=tf.float64, trainable=False, name="train_seconds")
        self.initial_validation = tf.Variable(math.nan, dtype=tf.float64, trainable=False, name="initial_validation")
        self.float16 = settings.precision == "mixed_float16"
        self.health = RunHealth(optimizer.warmup_for(settings.steps), LOSS_SCALE_START)
        self.loss_scale = tf.Variable(LOSS_SCALE_START, trainable=False, name="loss_scale")
        self.finite_streak = tf.Variable(0, dtype=tf.int64, trainable=False, name="loss_scale_finite_steps")
        self.accumulation = optimizer.accumulation_steps
        self.accumulators = [tf.Variable(tf.zeros_like(v), trainable=False) for v in self.variables] \
            if self.accumulation > 1 else []
        self.shared_layer = getattr(model, "latent_head", None)
        self.metric_names: list[str] = []
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir else None
        self.checkpoint = tf.train.Checkpoint(
            model_variables=list(model.variables), optimizer_variables=list(self.optimizer.variables),
            loss=loss, monitor=self.monitor, step=self.step, skipped_steps=self.skipped_steps,
            accumulators=self.accumulators, first_nonfinite=self.first_nonfinite,
            best_validation=self.best_validation, train_seconds=self.train_seconds, loss_scale=self.loss_scale,
            finite_streak=self.finite_streak, first_bad=self.first_bad, health=self.health,
            initial_validation=self.initial_validation)
        self.manager = (tf.train.CheckpointManager(self.checkpoint, str(self.checkpoint_dir), max_to_keep=2)
                        if self.checkpoint_dir else None)
        # The newest state before anything non-finite happened: where the NaN-origin replay starts.
        self.finite_manager = (tf.train.CheckpointManager(self.checkpoint, str(self.checkpoint_dir / "finite"),
                                                          max_to_keep=1) if self.checkpoint_dir else None)
        self.diagnostics = diagnostics or DiagnosticsSettings()
        self._clock = time.perf_counter()  # where the next stretch of training time starts (fit resets it)
        model_variables = list(model.trainable_variables)
        self.groups = sorted({layer_group(v.path) for v in model_variables})
        self.group_members = {g: [i for i, v in enumerate(model_variables) if layer_group(v.path) == g]
                              for g in self.groups}
        self.attention = attention_layers(model)
        # True on the steps that hand out diagnostics: the attentions record their largest logit only then.
        self.diagnosing_now = tf.Variable(False, trainable=False, name="diagnosing_now")
        for layer in self.attention.values():
            object.__setattr__(layer, "recording", self.diagnosing_now)
        # One trace for every batch shape: the signature leaves batch and length dimensions open.
        signature = train.signature()
        self._train_step = tf.function(self._step, jit_compile=settings.xla,
                                       input_signature=[signature, tf.TensorSpec([], tf.float32)])
        self._validation_step = tf.function(self._evaluate, input_signature=[signature])

    # --- compiled ----------------------------------------------------------------------------------------
    def _apply(self, gradients):
        self.optimizer.apply(gradients, self.variables)
        return tf.constant(True)

    def _step(self, batch, fault_scale):
        """One compiled training step: loss and gradients, signals, accumulation, clipping, the non-finite
        policy, the update, the run's counters, and the step's metrics as one vector."""
        scale = self.loss_scale if self.float16 else tf.constant(1.0)
        due = tf.logical_and(self.diagnostics.every > 0, tf.logical_or(
            tf.equal(self.step % max(self.diagnostics.every, 1), 0), self.step < self.diagnostics.dense_steps))
        self.diagnosing_now.assign(due)
        outputs, total, metrics, gradients = self._loss_and_gradients(batch, fault_scale, scale)
        produced_finite = tf.logical_and(tf.math.is_finite(total), _all_finite(gradients))  # before any handling
        if self.diagnostics.every > 0:
            metrics.update(self._forward_signals(due, gradients, outputs, scale))
        if self.guards.nonfinite == "zero":  # upstream's NaN handling: what is not finite becomes 0, and is applied
            gradients = [tf.where(tf.math.is_finite(g), g, tf.zeros_like(g)) for g in gradients]
        gradients, ready = self._accumulate(gradients)
        gradients_finite = _all_finite(gradients)  # before clipping: clip_by_global_norm spreads one NaN everywhere
        gradients, gradient_norm, clipped_norm = self._clip(gradients, scale)
        allowed = self._allowed(tf.logical_and(tf.math.is_finite(total), gradients_finite), gradients_finite, ready)
        update = tf.logical_and(ready, allowed)
        before = [tf.identity(v) for v in self.model.trainable_variables]
        # A skipped step leaves weights and optimizer slots untouched (never "multiply by zero": 0·NaN = NaN).
        tf.cond(update, lambda: self._apply(gradients), lambda: tf.constant(False))
        update_norm = tf.sqrt(tf.add_n([tf.reduce_sum(tf.square(v - b))
                                        for v, b in zip(self.model.trainable_variables, before)]))
        if self.diagnostics.every > 0:
            metrics.update(self._update_signals(due, before))
        parameter_norm = tf.linalg.global_norm(self.model.trainable_variables)
        if self.accumulation > 1:
            for accumulator in self.accumulators:
                accumulator.assign(tf.where(ready, tf.zeros_like(accumulator), accumulator))
        skipped = tf.logical_and(ready, tf.logical_not(allowed))
        metrics.update(self._count(metrics, ready, update, skipped, produced_finite, gradient_norm, update_norm))
        metrics.update({
            record.GRAD_NORM: gradient_norm, record.GRAD_NORM_CLIPPED: clipped_norm,
            record.UPDATE_NORM: update_norm, record.UPDATE_RATIO: update_norm / tf.maximum(parameter_norm, 1e-12)})
        return self._metric_vector(metrics)

    def _loss_and_gradients(self, batch, fault_scale, scale):
        """The forward pass, the (fault-scaled, loss-scaled) objective and one dense gradient per variable;
        a strategy that reads per-term gradients (GradNorm) reads them off the tape here."""
        gradnorm = self.loss.strategy.needs_shared_gradients and self.shared_layer is not None
        with tf.GradientTape(persistent=gradnorm) as tape:
            outputs = self.model(batch, training=True)
            total, metrics = self.loss.compute(_targets(batch), outputs, raw_scale=fault_scale)
            zeroing = self.guards.nonfinite == "zero"
            objective = tf.where(tf.math.is_finite(total), total, 0.0) if zeroing else total
            objective = objective * scale
        gradients = tape.gradient(objective, self.variables)
        gradients = [tf.zeros_like(v) if g is None else tf.convert_to_tensor(g)
                     for g, v in zip(gradients, self.variables)]
        if gradnorm:
            metrics.update(self.loss.strategy.observe(
                tape, {t: metrics[record.raw(t)] for t in self.loss.strategy.terms}, self.shared_layer.kernel))
            del tape
        return outputs, total, metrics, gradients

    def _forward_signals(self, due, gradients, outputs, scale) -> dict:
        """Per-group gradient norms, attention logits and head activations, computed only on due steps."""
        names = ([record.diag("grad", g) for g in self.group_members] + [record.diag("attention", n) for n in self.attention]
                 + [record.diag("activation", "mel_head"), record.diag("activation", "stop_head")])

        def signals():
            squares = [tf.reduce_sum(tf.square(tf.cast(g, tf.float32))) for g in gradients]
            values = [tf.sqrt(tf.add_n([squares[i] for i in members])) / scale
                      for members in self.group_members.values()]
            values += [tf.identity(layer.max_logit) for layer in self.attention.values()]
            values += [tf.reduce_max(tf.abs(tf.cast(outputs[key], tf.float32))) for key in ("mel_output", "stop_logits")]
            return tf.stack(values)

        found = tf.cond(due, signals, lambda: tf.zeros([len(names)]))
        return {name: found[i] for i, name in enumerate(names)}

    def _accumulate(self, gradients):
        """With optim.accumulation_steps > 1, the mean gradient of the last N steps on every N-th step."""
        if self.accumulation == 1:
            return gradients, tf.constant(True)
        for accumulator, gradient in zip(self.accumulators, gradients):
            accumulator.assign_add(gradient / self.accumulation)
        ready = tf.equal((self.step + 1) % self.accumulation, 0)
        return [tf.where(ready, a, g) for a, g in zip(self.accumulators, gradients)], ready

    def _clip(self, gradients, scale):
        """Unscale and clip in the configured order: optim.clip_order "scaled" clips the float16-scaled
        gradient (upstream), "unscaled" the true one. Returns the gradients, their true norm and the clipped norm."""
        clip, scaled_clip = self.optimizer_settings.clip_norm, self.optimizer_settings.clip_order == "scaled"
        scaled_norm = tf.linalg.global_norm(gradients)
        gradient_norm = scaled_norm / scale  # the true gradient's norm, whatever the loss scale
        if clip is not None and scaled_clip and self.float16:
            gradients, _ = tf.clip_by_global_norm(gradients, clip, use_norm=scaled_norm)
        gradients = [g / scale for g in gradients] if self.float16 else gradients
        if clip is not None and not (scaled_clip and self.float16):
            gradients, _ = tf.clip_by_global_norm(gradients, clip, use_norm=gradient_norm)
        return gradients, gradient_norm, tf.linalg.global_norm(gradients)

    def _allowed(self, finite, gradients_finite, ready):
        """The non-finite policy: guards.nonfinite=skip refuses a non-finite step; under float16 the loss
        scaler also skips an overflowing one (unless trainer.overflow=apply) and moves the scale."""
        allowed = finite if self.guards.nonfinite == "skip" else tf.constant(True)
        if self.float16:
            if self.settings.overflow == "skip":
                allowed = tf.logical_and(allowed, gradients_finite)
            self._update_loss_scale(tf.logical_and(ready, tf.logical_not(gradients_finite)))
        return allowed

    def _update_signals(self, due, before) -> dict:
        """Per-group ‖Δθ‖/‖θ‖ of the update just applied, computed only on due steps."""
        def ratios():
            moved = [tf.reduce_sum(tf.square(v - b)) for v, b in zip(self.model.trainable_variables, before)]
            sizes = [tf.reduce_sum(tf.square(b)) for b in before]
            return tf.stack([tf.sqrt(tf.add_n([moved[i] for i in members])) / tf.maximum(
                tf.sqrt(tf.add_n([sizes[i] for i in members])), 1e-12) for members in self.group_members.values()])

        found = tf.cond(due, ratios, lambda: tf.zeros([len(self.group_members)]))
        return {record.diag("update_ratio", g): found[i] for i, g in enumerate(self.group_members)}

    def _count(self, metrics, ready, update, skipped, produced_finite, gradient_norm, update_norm) -> dict:
        """The run's in-graph counters and verdict inputs after this step, and the metrics that report them."""
        self.skipped_steps.assign_add(tf.cast(skipped, tf.int32))
        self.loss.record_gradient_norm(gradient_norm)
        undamped = metrics[record.LOSS_UNDAMPED]
        diverged = self.monitor(undamped)
        counted = self.health(self.step, ready, update, produced_finite, update_norm, undamped,
                              self.loss_scale if self.float16 else None)
        first_bad = tf.logical_and(self.first_nonfinite < 0, tf.logical_not(tf.math.is_finite(undamped)))
        self.first_nonfinite.assign(tf.where(first_bad, self.step, self.first_nonfinite))
        self.first_bad.assign(tf.where(tf.logical_and(self.first_bad < 0, tf.logical_not(produced_finite)),
                                       self.step, self.first_bad))
        self.step.assign_add(1)
        learning_rate = self.optimizer.learning_rate
        return {**counted,
                record.LR: learning_rate(self.optimizer.iterations) if callable(learning_rate) else learning_rate,
                record.GUARD_SKIPPED: tf.cast(skipped, tf.float32),
                record.GUARD_NONFINITE: tf.cast(tf.logical_not(produced_finite), tf.float32),
                record.GUARD_DIVERGED: tf.cast(diverged, tf.float32),
                record.GUARD_SKIPPED_TOTAL: self.skipped_steps, record.GUARD_DAMPENED_TOTAL: self.loss.dampener.dampened_steps}

    def _metric_vector(self, metrics: dict):
        """The step's metrics as one float32 vector (one device-to-host transfer per step)."""
        if self.float16:
            metrics[record.LOSS_SCALE] = self.loss_scale
        self.metric_names = sorted(metrics)  # runs at trace time: fixes the order of the stacked vector
        return tf.stack([tf.cast(metrics[name], tf.float32) for name in self.metric_names])

    def _update_loss_scale(self, overflow):
        streak = tf.where(overflow, tf.zeros_like(self.finite_streak), self.finite_streak + 1)
        grow = streak >= LOSS_SCALE_GROWTH_STEPS
        self.loss_scale.assign(tf.where(overflow, tf.maximum(self.loss_scale / 2.0, 1.0),
                                        tf.where(grow, self.loss_scale * 2.0, self.loss_scale)))
        self.finite_streak.assign(tf.where(grow, tf.zeros_like(streak), streak))

    def _evaluate(self, batch):
        outputs = self.model(batch, training=False)
        terms = evaluation_terms(_targets(batch), outputs)
        count = tf.cast(tf.shape(batch["mel"])[0], tf.float32)
        return tf.stack([terms[t] for t in sorted(terms)]) * count, count

    # --- host loop ---------------------------------------------------------------------------------------
    def restore(self) -> int:
        """Resume from the newest readable checkpoint if there is one; returns the step to continue from. A
        checkpoint whose files are truncated or corrupt (a kill during its write, a full disk) is passed over
        with a warning naming it, for the one before it, or for step 0 when none is readable."""
        for path in reversed(self.manager.checkpoints if self.manager else []):
            problem = unreadable_checkpoint(path)
            if problem is None:
                self.checkpoint.restore(path).assert_existing_objects_matched()
                break
            warnings.warn(f"checkpoint {path} is unreadable ({problem}): resuming from the one before it, or "
                          f"from step 0", stacklevel=2)
        return int(self.step.numpy())

    def save(self) -> None:
        if self.manager:
            for callback in self.callbacks:
                callback.on_checkpoint(int(self.step.numpy()))
            self._account_time()
            self.manager.save(checkpoint_number=int(self.step.numpy()))
            if int(self.first_bad.numpy()) < 0 and self.finite_manager:
                self.finite_manager.save(checkpoint_number=int(self.step.numpy()))

    def _account_time(self) -> None:
        now = time.perf_counter()
        self.train_seconds.assign_add(now - self._clock)
        self._clock = now

    def validate(self) -> dict[str, float]:
        if self.validation_stream is None:
            return {}
        sums: tf.Tensor | None = None
        count = 0.0
        for batch in self.validation_stream.iterate(epochs=1):
            values, n = self._validation_step(_to_tensors(batch))
            sums = values if sums is None else sums + values
            count += float(n)
        names = sorted(("mel", "postnet", "stop", "attention", "kl"))
        assert sums is not None, "a validation stream has at least one batch"
        means = (sums / count).numpy()
        result = {record.val(name): float(v) for name, v in zip(names, means)}
        base = self.loss.strategy.base
        result[record.VAL_TOTAL] = float(sum(base[name] * result[record.val(name)] for name in names))
        return result

    def fit(self, should_stop=None) -> TrainResult:
        """Train to settings.steps, to a divergence verdict, or until should_stop() says so (e.g. SIGTERM);
        an interrupted run saves a checkpoint at the step it reached, so it resumes exactly."""
        start = self.restore()
        self._clock = time.perf_counter()
        interrupted = False
        settings = self.settings
        every = self.diagnostics.every
        if start == 0 and self.finite_manager and not self.finite_manager.latest_checkpoint:
            self.finite_manager.save(checkpoint_number=0)
        if start == 0 and self.validation_stream is not None:  # what "learning" is measured against
            self.initial_validation.assign(self.validate()[record.VAL_POSTNET])
        final_validation = None
        diverged_at = None
        metrics: dict[str, float] = {}
        step = start
        batches = self.train_stream.iterate(start_step=start)
        per_epoch = self.train_stream.batches_per_epoch
        while step < settings.steps:
            tensors, scale = self.inject(step, next(batches))
            values = self._train_step(tensors, scale).numpy()  # the one transfer of the step
            metrics = dict(zip(self.metric_names, values.tolist()))
            if every and not self.diagnostics.due(step):
                metrics = {k: v for k, v in metrics.items() if not k.startswith(record.DIAG_PREFIX)}
            metrics[record.EPOCH] = (step + 1) / per_epoch  # epochs completed after this step
            for callback in self.callbacks:
                callback.on_step(step, metrics)
            step += 1
            if metrics[record.GUARD_DIVERGED] > 0:
                diverged_at = step - 1
                break
            if settings.validate_every and step % settings.validate_every == 0 and step < settings.steps:
                self._record_validation(step - 1)
            if settings.checkpoint_every and step % settings.checkpoint_every == 0:
                self.save()
            if should_stop is not None and should_stop() and step < settings.steps:
                interrupted = True
                break
        if diverged_at is None and not interrupted:
            final_validation = self._record_validation(step - 1)
        self.save()
        self._account_time()
        first_nonfinite, best = int(self.first_nonfinite.numpy()), float(self.best_validation.numpy())
        first_bad = int(self.first_bad.numpy())
        measured = float(self.initial_validation.numpy())
        initial = measured if math.isfinite(measured) else None
        health = self.health.facts()
        outcome = record.KILLED if interrupted else record.classify(
            diverged=diverged_at is not None, update_steps=health[record.UPDATE_STEPS],
            noop_steps=health[record.NOOP_STEPS], overflow_steps=health[record.OVERFLOW_STEPS],
            loss_scale_moved=health[record.LOSS_SCALE_MOVED], initial_validation=initial,
            best_validation=best if math.isfinite(best) else None)
        return TrainResult(
            outcome=outcome, steps_completed=step,
            diverged_at_step=diverged_at, first_nonfinite_step=first_nonfinite if first_nonfinite >= 0 else None,
            skipped_steps=int(self.skipped_steps.numpy()), dampened_steps=int(self.loss.dampener.dampened_steps.numpy()),
            best_validation=best if math.isfinite(best) else None, final_metrics=metrics, resumed_from_step=start,
            train_seconds=float(self.train_seconds.numpy()), first_bad_step=first_bad if first_bad >= 0 else None,
            initial_validation=initial, final_validation=final_validation, health=health,
            spiky=health[record.SPIKE_STEPS] > 0)

    def find_nan_origin(self) -> dict | None:
        """Replay the run's first non-finite step and name the layer output, loss term or gradient that was
        non-finite first. Restores the newest all-finite checkpoint and re-runs the steps after it without
        any callback (nothing is logged); leaves the trainer at that step, so call it after the run's last use.
        None when nothing non-finite happened or no checkpoint exists."""
        target = int(self.first_bad.numpy())
        if target < 0 or not (self.finite_manager and self.finite_manager.latest_checkpoint):
            return None
        self.checkpoint.restore(self.finite_manager.latest_checkpoint)
        start = int(self.step.numpy())
        batches = self.train_stream.iterate(start_step=start)
        for step in range(start, target):
            self._train_step(*self.inject(step, next(batches)))
        tensors, scale = self.inject(target, next(batches))
        found: dict[str, object] = {"step": target, "checkpoint_step": start, "replayed_steps": target - start}
        variables = list(self.model.trainable_variables)
        broken = next((v for v in variables if not bool(tf.reduce_all(tf.math.is_finite(v)))), None)
        with probing() as probe, tf.GradientTape() as tape:
            outputs = self.model(tensors, training=True)
            total, metrics = self.loss.compute(_targets(tensors), outputs, raw_scale=scale)
            objective = total * (self.loss_scale if self.float16 else 1.0)
        layer = probe.first_nonfinite()
        terms = [name for name in sorted(metrics) if name.startswith(record.RAW_PREFIX)
                 and not bool(tf.reduce_all(tf.math.is_finite(metrics[name])))]
        if broken is not None:
            origin = {"layer": broken.path.removeprefix("xtts_model/").rsplit("/", 1)[0],
                      "op": "weights (non-finite before the step)"}
        elif layer is not None:
            origin = {"layer": layer["layer"], "op": layer["op"]}
        elif terms:
            origin = {"layer": "loss", "op": terms[0]}
        else:
            gradients = tape.gradient(objective, variables)
            bad = next((v for v, g in zip(variables, gradients)
                        if g is not None and not bool(tf.reduce_all(tf.math.is_finite(g)))), None)
            origin = ({"layer": bad.path.removeprefix("xtts_model/").rsplit("/", 1)[0], "op": "gradient"}
                      if bad is not None else {"layer": "", "op": "not reproduced by the replay"})
        found.update(origin)
        found["nonfinite_loss_terms"] = terms
        found["layers"] = probe.records
        return found

    def _record_validation(self, step: int) -> float | None:
        """Validate after `step`, hand the result to the callbacks; returns its val/postnet."""
        result = self.validate()
        if not result:
            return None
        for callback in self.callbacks:
            callback.on_validation(step, result)
        value = result[record.VAL_POSTNET]
        if math.isfinite(value) and value < float(self.best_validation.numpy()):
            self.best_validation.assign(value)
        return value


def unreadable_checkpoint(path: str) -> str | None:
    """Why the checkpoint at `path` cannot be restored (every tensor is read), or None when it can."""
    try:
        reader = tf.train.load_checkpoint(path)
        for name in reader.get_variable_to_shape_map():
            reader.get_tensor(name)
    except Exception as error:  # noqa: BLE001 - TensorFlow raises IndexError, OpError or ValueError here
        return f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
    return None


def make_deterministic(seed: int) -> None:
    """Same config + seed → same metrics on CPU: seeded Python/NumPy/TF/Keras RNGs, deterministic TF ops."""
    import keras

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
