"""The loss of a step as separate pieces, and `XTTSLoss`, the source documents' API over them.

    LossTerms ──raw terms──► weighting strategy (weighting.py) ──weighted sum──► SpikeDampener (a guard,
    guards.py) ──► optional total clip = Objective, what the trainer optimises (build_objective composes it
    from the loss, weighting and guards settings). XTTSLoss is the fix summary's and pull request's class:
    a thin facade that builds the same pieces from its documented arguments and adds the documented
    running statistics and controls.

Terms (each masked by lengths, reported raw and weighted):
    mel        L1 or Huber(delta) between mel_output and the target; optional "label smoothing" = Gaussian
               noise on the target with std = factor × std(target) (what the documents' code base means)
    postnet    the same on postnet_output; it shares the mel weight
    stop       binary cross-entropy on logits, positive-class weight, optional label smoothing
    attention  guided attention: diagonal prior on the cross-attention alignment
    kl         KL(N(mean, e^logvar) ‖ N(0, I)) of the style latent
The total may be clipped with clip_by_value(total, 0, c) — the documents' "100 before, 10 after" — which
also zeroes the gradient whenever the total is above c.
"""
from __future__ import annotations

from myxtts import record
from myxtts.backend import tf
from myxtts.training.guards import SpikeDampener
from myxtts.training.history import RecentWindow
from myxtts.training.settings import GuardSettings, LossSettings, StableSettings, WeightingSettings
from myxtts.training.weighting import DECISIONS, MEL_TERMS, StableWeighting, WeightingStrategy, build_weighting

TERMS = ("mel", "postnet", "stop", "attention", "kl")


def frame_mask(lengths, frames):
    return tf.sequence_mask(lengths, frames, dtype=tf.float32)


def masked_mel_loss(prediction, target, lengths, huber_delta=None):
    """Mean over real frames and mel channels of |error| (or Huber with delta)."""
    error = tf.cast(prediction, tf.float32) - target
    if huber_delta is None:
        elementwise = tf.abs(error)
    else:
        absolute = tf.abs(error)
        quadratic = tf.minimum(absolute, huber_delta)
        elementwise = 0.5 * quadratic ** 2 + huber_delta * (absolute - quadratic)
    mask = frame_mask(lengths, tf.shape(target)[1])
    per_frame = tf.reduce_mean(elementwise, axis=-1)
    return tf.reduce_sum(per_frame * mask) / tf.maximum(tf.reduce_sum(mask), 1.0)


def stop_loss(logits, targets, lengths, positive_weight=1.0, label_smoothing=0.0):
    targets = targets * (1.0 - label_smoothing) + 0.5 * label_smoothing
    per_frame = tf.nn.weighted_cross_entropy_with_logits(targets, tf.cast(logits, tf.float32), positive_weight)
    mask = frame_mask(lengths, tf.shape(targets)[1])
    return tf.reduce_sum(per_frame * mask) / tf.maximum(tf.reduce_sum(mask), 1.0)


def stop_z_loss(logits, lengths):
    """The z-loss of PaLM and Wortsman et al. for the stop logit: mean over real frames of log^2 Z, where a
    binary logit z against a fixed 0 has log Z = softplus(z). It keeps the logits from drifting large."""
    logits = tf.cast(logits, tf.float32)
    mask = frame_mask(lengths, tf.shape(logits)[1])
    return tf.reduce_sum(tf.square(tf.nn.softplus(logits)) * mask) / tf.maximum(tf.reduce_sum(mask), 1.0)


def guided_attention_loss(alignment, text_lengths, mel_lengths, sigma=0.2):
    """Penalise attention far from the diagonal n/N ≈ t/T (Tachibana et al. 2018)."""
    alignment = tf.cast(alignment, tf.float32)
    frames, tokens = tf.shape(alignment)[1], tf.shape(alignment)[2]
    t = tf.cast(tf.range(frames), tf.float32)[None, :, None] / tf.cast(mel_lengths, tf.float32)[:, None, None]
    n = tf.cast(tf.range(tokens), tf.float32)[None, None, :] / tf.cast(text_lengths, tf.float32)[:, None, None]
    prior = 1.0 - tf.exp(-((n - t) ** 2) / (2.0 * sigma ** 2))
    mask = frame_mask(mel_lengths, frames)[:, :, None] * frame_mask(text_lengths, tokens)[:, None, :]
    return tf.reduce_sum(alignment * prior * mask) / tf.maximum(tf.reduce_sum(mask), 1.0)


def kl_loss(mean, logvar):
    mean, logvar = tf.cast(mean, tf.float32), tf.cast(logvar, tf.float32)
    return tf.reduce_mean(-0.5 * (1.0 + logvar - tf.square(mean) - tf.exp(logvar)))


def evaluation_terms(y_true: dict, y_pred: dict) -> dict:
    """Validation terms, the same for every configuration (plain L1, no smoothing) so runs compare."""
    lengths = y_true["mel_lengths"]
    target = tf.cast(y_true["mel_target"], tf.float32)
    return {"mel": masked_mel_loss(y_pred["mel_output"], target, lengths),
            "postnet": masked_mel_loss(y_pred["postnet_output"], target, lengths),
            "stop": stop_loss(y_pred["stop_logits"], tf.cast(y_true["stop_target"], tf.float32), lengths),
            "attention": guided_attention_loss(y_pred["alignment"], y_true["text_lengths"], lengths),
            "kl": kl_loss(y_pred["latent_mean"], y_pred["latent_logvar"])}


class LossTerms(tf.Module):
    """The five raw terms of a step (no weights): mel, postnet, stop, guided attention, KL."""

    def __init__(self, huber_delta: float | None = None, mel_label_smoothing: float = 0.0,
                 stop_label_smoothing: float = 0.0, stop_positive_weight: float = 1.0,
                 guided_attention_sigma: float = 0.2, seed: int = 0) -> None:
        super().__init__(name="loss_terms")
        self.huber_delta = huber_delta
        self.mel_label_smoothing, self.stop_label_smoothing = mel_label_smoothing, stop_label_smoothing
        self.stop_positive_weight, self.guided_attention_sigma = stop_positive_weight, guided_attention_sigma
        self.seed = seed

    @classmethod
    def from_settings(cls, loss: LossSettings, seed: int) -> LossTerms:
        return cls(loss.huber_delta if loss.huber else None, loss.smoothing, loss.smoothing, loss.stop_positive_weight,
                   seed=seed)

    def __call__(self, y_true: dict, y_pred: dict, step) -> dict:
        """`step` (int64) seeds the label-smoothing noise: the same step draws the same noise."""
        target = tf.cast(y_true["mel_target"], tf.float32)
        lengths = y_true["mel_lengths"]
        if self.mel_label_smoothing > 0:
            mask = frame_mask(lengths, tf.shape(target)[1])[:, :, None]
            count = tf.maximum(tf.reduce_sum(mask) * tf.cast(tf.shape(target)[2], tf.float32), 1.0)
            mean = tf.reduce_sum(target * mask) / count
            std = tf.sqrt(tf.reduce_sum(tf.square(target - mean) * mask) / count)
            noise = tf.random.stateless_normal(tf.shape(target), seed=tf.stack(
                [tf.constant(self.seed, tf.int64), tf.cast(step, tf.int64)]))
            target = target + self.mel_label_smoothing * std * noise
        raw = {"mel": masked_mel_loss(y_pred["mel_output"], target, lengths, self.huber_delta)}
        zero = tf.constant(0.0)
        raw["postnet"] = (masked_mel_loss(y_pred["postnet_output"], target, lengths, self.huber_delta)
                          if "postnet_output" in y_pred else zero)
        raw["stop"] = (stop_loss(y_pred["stop_logits"], tf.cast(y_true["stop_target"], tf.float32), lengths,
                                 self.stop_positive_weight, self.stop_label_smoothing)
                       if "stop_logits" in y_pred and "stop_target" in y_true else zero)
        raw["attention"] = (guided_attention_loss(y_pred["alignment"], y_true["text_lengths"], lengths,
                                                  self.guided_attention_sigma)
                            if "alignment" in y_pred and "text_lengths" in y_true else zero)
        raw["kl"] = (kl_loss(y_pred["latent_mean"], y_pred["latent_logvar"])
                     if "latent_mean" in y_pred and "latent_logvar" in y_pred else zero)
        return raw


class Objective(tf.Module):
    """What the trainer optimises: raw terms → strategy's weights → weighted sum (+ the strategy's
    regularizer) → spike dampener → optional clip_by_value(total, 0, clip). All state is in tf.Variables,
    so it runs eagerly and inside tf.function(jit_compile=True)."""

    def __init__(self, terms: LossTerms, strategy: WeightingStrategy, dampener: SpikeDampener,
                 total_loss_clip: float | None = None, stop_z_loss_weight: float = 0.0) -> None:
        super().__init__(name="objective")
        self.terms, self.strategy, self.dampener, self.total_loss_clip = terms, strategy, dampener, total_loss_clip
        self.stop_z_loss_weight = stop_z_loss_weight
        # Trainer-fed: the global gradient norm (before clipping) of the previous step; < 0 = none yet.
        self.last_gradient_norm = tf.Variable(-1.0, trainable=False, name="last_gradient_norm")
        self.adaptive_enabled = tf.Variable(True, trainable=False, name="adaptive_enabled")
        self.step_count = tf.Variable(0, dtype=tf.int64, trainable=False, name="step_count")

    def raw_terms(self, y_true: dict, y_pred: dict) -> dict:
        return self.terms(y_true, y_pred, self.step_count)

    def compute(self, y_true: dict, y_pred: dict, gradient_norm=None, raw_scale=None) -> tuple[tf.Tensor, dict]:
        """Total loss to optimise and one flat dict of scalar metrics for this step.

        `raw_scale` multiplies every raw term: the injected loss-spike fault of the experiments.
        """
        raw = self.raw_terms(y_true, y_pred)
        if raw_scale is not None:
            raw = {t: v * tf.cast(raw_scale, tf.float32) for t, v in raw.items()}
        self.step_count.assign_add(1)
        if gradient_norm is None:
            gradient_norm = self.last_gradient_norm
        adapted, strategy_metrics = self.strategy(raw, gradient_norm)
        weights = {t: tf.where(self.adaptive_enabled, tf.cast(adapted[t], tf.float32),
                               tf.constant(self.strategy.base[t])) for t in TERMS}
        weighted = {t: weights[t] * raw[t] for t in TERMS}
        undamped = tf.add_n(list(weighted.values())) + self.strategy.regularizer()
        penalty = None
        if self.stop_z_loss_weight and "stop_logits" in y_pred:
            penalty = self.stop_z_loss_weight * stop_z_loss(y_pred["stop_logits"], y_true["mel_lengths"])
            if raw_scale is not None:
                penalty = penalty * tf.cast(raw_scale, tf.float32)
            undamped = undamped + penalty
        total, spike, spike_ratio = self.dampener(undamped)
        if self.total_loss_clip is not None:
            total = tf.clip_by_value(total, 0.0, self.total_loss_clip)
        metrics = {record.LOSS_TOTAL: total, record.LOSS_UNDAMPED: undamped, record.GUARD_SPIKE: tf.cast(spike, tf.float32),
                   record.GUARD_SPIKE_RATIO: spike_ratio}
        for t in TERMS:
            metrics[record.raw(t)] = raw[t]
            metrics[record.weighted(t)] = weighted[t]
            if t not in MEL_TERMS or t == "mel":
                metrics[record.weight(t)] = weights[t]
        if penalty is not None:
            metrics[record.LOSS_STOP_Z] = penalty
        metrics.update(strategy_metrics)
        return total, metrics

    def __call__(self, y_true: dict, y_pred: dict):
        return self.compute(y_true, y_pred)[0]

    def record_gradient_norm(self, gradient_norm) -> None:
        """Called by the trainer after each step with the global norm before clipping."""
        self.last_gradient_norm.assign(tf.cast(gradient_norm, tf.float32))


def build_objective(loss: LossSettings, weighting: WeightingSettings, guards: GuardSettings, seed: int = 0
                    ) -> Objective:
    """The trainer's objective from the loss, weighting and guards settings of a run."""
    return Objective(LossTerms.from_settings(loss, seed), build_weighting(weighting, loss.base_weights, TERMS),
                     SpikeDampener.from_settings(guards), loss.total_loss_clip, loss.stop_z_loss_weight)


class StepOfLastChange:
    """`last_weight_change_step` of the documents' loss: the step of the last weight change, derived from the
    in-graph counters (step count − steps since the change), never stored twice. `assign(step)` moves the
    steps-since-change counter so that the view reads `step` (the documents' own test sets it this way)."""

    def __init__(self, step_count: tf.Variable, since_change: tf.Variable) -> None:
        self._steps, self._since = step_count, since_change

    def read_value(self) -> tf.Tensor:
        return self._steps - tf.cast(self._since, self._steps.dtype)

    def numpy(self):
        return self.read_value().numpy()

    def __int__(self) -> int:
        return int(self.numpy())

    def assign(self, step) -> None:
        self._since.assign(tf.cast(self._steps - tf.cast(step, self._steps.dtype), self._since.dtype))


class XTTSLoss(Objective):
    """The documents' loss class: their constructor, attributes and helpers over the Objective's pieces.

    `use_adaptive_weights=True` picks the stable strategy unless `weighting` names another one.
    """

    def __init__(self, mel_loss_weight: float = 2.5, stop_loss_weight: float = 1.0, kl_loss_weight: float = 1.0,
                 attention_loss_weight: float = 0.0, use_adaptive_weights: bool = True,
                 loss_smoothing_factor: float = 0.1, max_loss_spike_threshold: float = 2.0,
                 gradient_norm_threshold: float = 5.0, adaptive_weight_max_change_percent: float = 0.05,
                 adaptive_weight_cooling_period: int = 50, adaptive_weight_min_stable_steps: int = 10,
                 adaptive_weight_min_warmup_steps: int = 100, adaptive_weight_variance_threshold: float = 0.5,
                 *, weighting: str | WeightingSettings | None = None, use_huber_loss: bool = False,
                 huber_delta: float = 1.0, mel_label_smoothing: float = 0.0, stop_label_smoothing: float = 0.0,
                 stop_positive_weight: float = 1.0, guided_attention_sigma: float = 0.2,
                 total_loss_clip: float | None = None, spike_dampening: bool = True, spike_window: int = 10,
                 seed: int = 0) -> None:
        # The documented arguments, checked by the same settings classes the configuration uses.
        smoothing = max(mel_label_smoothing, stop_label_smoothing)
        settings = LossSettings(mel_loss_weight, stop_loss_weight, kl_loss_weight, attention_loss_weight,
                                use_huber_loss, huber_delta, smoothing > 0, smoothing if smoothing > 0 else 0.1,
                                stop_positive_weight, total_loss_clip, loss_smoothing_factor)
        guards = GuardSettings(spike_dampening=spike_dampening, spike_threshold=max_loss_spike_threshold,
                               spike_window=spike_window)
        chosen = weighting or ("stable" if use_adaptive_weights else "none")
        if chosen == "stable":
            chosen = StableSettings(
                max_change_percent=adaptive_weight_max_change_percent, cooling_period=adaptive_weight_cooling_period,
                min_stable_steps=adaptive_weight_min_stable_steps, min_warmup_steps=adaptive_weight_min_warmup_steps,
                variance_threshold=adaptive_weight_variance_threshold, gradient_norm_threshold=gradient_norm_threshold)
        terms = LossTerms(huber_delta if use_huber_loss else None, mel_label_smoothing, stop_label_smoothing,
                          stop_positive_weight, guided_attention_sigma, seed)
        self._assemble(settings, chosen, guards, terms, adaptive_weight_variance_threshold)

    @classmethod
    def from_settings(cls, loss: LossSettings, weighting: WeightingSettings, guards: GuardSettings,
                      seed: int = 0) -> XTTSLoss:
        """The documents' class over a run's own settings: the objective `build_objective` gives the trainer,
        with the documented attributes and helpers on top."""
        self = cls.__new__(cls)
        variance = getattr(weighting, "variance_threshold", StableSettings().variance_threshold)
        self._assemble(loss, weighting, guards, LossTerms.from_settings(loss, seed), variance)
        return self

    def _assemble(self, settings: LossSettings, weighting: str | WeightingSettings, guards: GuardSettings,
                  terms: LossTerms, variance_threshold: float) -> None:
        super().__init__(terms, build_weighting(weighting, settings.base_weights, TERMS),
                         SpikeDampener.from_settings(guards), settings.total_loss_clip, settings.stop_z_loss_weight)
        self.base_weights = settings.base_weights
        self.loss_smoothing_factor = settings.loss_smoothing_factor
        self.variance_threshold = variance_threshold
        spike_window, mel_loss_weight = guards.spike_window, settings.mel_loss_weight
        self.running_mel_loss = tf.Variable(0.0, trainable=False, name="running_mel_loss")
        self.running_total_loss = tf.Variable(0.0, trainable=False, name="running_total_loss")
        self.total_window = RecentWindow(spike_window, name="total_window")
        self.gradient_window = RecentWindow(10, name="gradient_window")
        # The stable strategy owns its controller state; for the others the facade tracks the same quantities
        # so the documented attributes exist for every strategy — never a second copy of the stable one's.
        self._stable = self.strategy if isinstance(self.strategy, StableWeighting) else None
        if self._stable is None:
            self._weight_now = tf.Variable(float(mel_loss_weight), trainable=False, name="mel_weight")
            self._weight_before = tf.Variable(float(mel_loss_weight), trainable=False, name="previous_mel_weight")
            self._since_change = tf.Variable(0, trainable=False, name="steps_since_weight_change")
            self._stable_steps = tf.Variable(0, trainable=False, name="consecutive_stable_steps")

    def compute(self, y_true: dict, y_pred: dict, gradient_norm=None, raw_scale=None) -> tuple[tf.Tensor, dict]:
        total, metrics = super().compute(y_true, y_pred, gradient_norm, raw_scale)
        self._track(metrics[record.raw("mel")], metrics[record.LOSS_UNDAMPED], metrics[record.WEIGHT_MEL])
        return total, metrics

    def loss_fn(self, y_true: dict, y_pred: dict):
        return self.compute(y_true, y_pred)[0]

    def _track(self, mel_loss, total, mel_weight) -> None:
        rate = self.loss_smoothing_factor
        first = tf.equal(self.step_count, 1)
        for variable, value in ((self.running_mel_loss, mel_loss), (self.running_total_loss, total)):
            value = tf.cast(value, tf.float32)
            smoothed = tf.where(first, value, (1.0 - rate) * variable + rate * value)
            variable.assign(tf.where(tf.math.is_finite(value), smoothed, variable))
        self.total_window.push(total)
        if self._stable is not None:
            return
        stable = tf.logical_and(tf.math.is_finite(total), self.total_window.variance() < self.variance_threshold)
        self._stable_steps.assign(tf.where(stable, self._stable_steps + 1, 0))
        changed = tf.not_equal(mel_weight, self._weight_now)
        self._weight_before.assign(tf.where(changed, self._weight_now, self._weight_before))
        self._since_change.assign(tf.where(changed, 0, self._since_change + 1))
        self._weight_now.assign(mel_weight)

    def record_gradient_norm(self, gradient_norm) -> None:
        super().record_gradient_norm(gradient_norm)
        self.gradient_window.push(tf.cast(gradient_norm, tf.float32))

    # --- the documents' attributes and helpers: a facade over the strategy ----------------------------------
    @property
    def current_mel_weight(self):
        """The mel weight in force (the base weight while adaptation is disabled)."""
        if self._stable is not None:
            return self._stable.effective_mel_weight()
        return tf.where(self.adaptive_enabled, self._weight_now, tf.constant(self.strategy.base["mel"]))

    @property
    def previous_mel_weight(self):
        return self._stable.previous_mel_weight if self._stable is not None else self._weight_before

    @property
    def steps_since_weight_change(self):
        return self._stable.steps_since_weight_change if self._stable is not None else self._since_change

    @property
    def last_weight_change_step(self) -> StepOfLastChange:
        if self._stable is not None:
            return StepOfLastChange(self._stable.step_count, self._stable.steps_since_weight_change)
        return StepOfLastChange(self.step_count, self._since_change)

    @property
    def consecutive_stable_steps(self):
        """Consecutive finite low-variance steps: of the mel loss (stable strategy) or the total loss."""
        return self._stable.consecutive_stable_steps if self._stable is not None else self._stable_steps

    @property
    def weight_adjustment_enabled(self):
        return self.adaptive_enabled

    def _controller(self, what: str) -> StableWeighting:
        if self._stable is None:
            raise RuntimeError(f"{what}: only the stable strategy has this (this loss uses {self.strategy.name!r})")
        return self._stable

    def _safe_tensor(self, value, name: str = "value", fallback=0.0):
        """`value` where finite, else `fallback` (`name` says what it is, for the reader of the call)."""
        return StableWeighting.safe_tensor(value, fallback)[0]

    def _update_gradient_history(self, gradient_norm):
        return self._controller("_update_gradient_history").update_gradient_history(gradient_norm)

    def _is_adaptation_safe(self):
        return self._controller("_is_adaptation_safe").is_adaptation_safe()[0]

    def _calculate_safe_ratio(self, current_mel_loss):
        return self._controller("_calculate_safe_ratio").calculate_safe_ratio(current_mel_loss)

    def _calculate_loss_variance(self):
        return self._controller("_calculate_loss_variance").calculate_loss_variance()

    def _determine_weight_adjustment(self, loss_ratio, loss_variance=None, gradient_growing=False):
        """(should_adjust, direction): the documents' decision tree."""
        return self._controller("_determine_weight_adjustment").determine_weight_adjustment(
            loss_ratio, loss_variance, gradient_growing)

    def _apply_conservative_adjustment(self, weight, direction):
        return self._controller("_apply_conservative_adjustment").apply_conservative_adjustment(weight, direction)

    def _validate_new_weight(self, new_weight, current_mel_loss):
        return self._controller("_validate_new_weight").validate_new_weight(new_weight, current_mel_loss)

    # --- the documents' entry point and controls --------------------------------------------------------
    def _adaptive_mel_weight(self, mel_loss, gradient_norm=None):
        """The fix summary's entry point: this step's mel weight from the configured adaptive strategy."""
        adaptive = getattr(self.strategy, "adaptive_mel_weight", None)
        if adaptive is None:
            return tf.constant(self.strategy.base["mel"])
        if isinstance(self.strategy, StableWeighting):
            return adaptive(mel_loss, gradient_norm)[0]
        return adaptive(tf.cast(mel_loss, tf.float32))[0]

    def disable_adaptive_weights(self) -> None:
        self.adaptive_enabled.assign(False)
        if isinstance(self.strategy, StableWeighting):
            self.strategy.adjustment_enabled.assign(False)

    def enable_adaptive_weights(self) -> None:
        self.adaptive_enabled.assign(True)
        if isinstance(self.strategy, StableWeighting):
            self.strategy.adjustment_enabled.assign(True)

    def reset_stability_state(self) -> None:
        """Statistics cleared and the base weight back in force, as at the start of training."""
        for variable in (self.running_mel_loss, self.running_total_loss):
            variable.assign(0.0)
        self.step_count.assign(0)
        self.total_window.reset()
        self.gradient_window.reset()
        self.dampener.recent.reset()
        if self._stable is not None:
            self._stable.reset_monitoring()
        else:
            for variable in (self._weight_now, self._weight_before):
                variable.assign(self.strategy.base["mel"])
            self._since_change.assign(0)
            self._stable_steps.assign(0)

    def rollback_weight(self) -> None:
        self._controller("rollback_weight").rollback_weight()

    def get_stability_metrics(self) -> dict:
        variance = float(self.total_window.variance())
        return {"running_mel_loss": float(self.running_mel_loss), "running_total_loss": float(self.running_total_loss),
                "loss_variance": variance, "loss_stability_score": 1.0 / (1.0 + variance),
                "step_count": int(self.step_count)}

    def get_adaptive_weight_metrics(self) -> dict:
        metrics: dict[str, float | int | str | bool] = {
            "current_mel_weight": float(self.current_mel_weight),
            "previous_mel_weight": float(self.previous_mel_weight),
            "base_mel_weight": float(self.strategy.base["mel"]),
            "steps_since_weight_change": int(self.steps_since_weight_change),
            "consecutive_stable_steps": int(self.consecutive_stable_steps),
            "weight_adjustment_enabled": bool(self.adaptive_enabled),
            "avg_gradient_norm": float(self.gradient_window.mean()),
        }
        if self._stable is not None:  # the controller's gates and counters, as the documents list them
            s, stable = self._stable.settings, self._stable
            metrics.update({
                "warmup_steps_remaining": max(0, s.min_warmup_steps + 1 - int(stable.step_count)),
                "cooling_steps_remaining": max(0, s.cooling_period - int(stable.steps_since_weight_change)),
                "stable_steps_needed": max(0, s.min_stable_steps - int(stable.consecutive_stable_steps)),
                "last_decision": DECISIONS[int(stable.last_decision)],
                "rollbacks": int(stable.rollbacks), "replaced_inputs": int(stable.replaced_inputs)})
        return metrics
