"""Loss-weighting strategies, selected by name (conf/weighting ↔ this module).

Every strategy turns this step's raw loss terms into effective weights, keeping all of its state in
tf.Variables so it runs inside a compiled (XLA) train step. The mel weight also applies to the postnet
mel term: the source documents have one `mel_loss_weight` for both.

- none          static base weights.
- legacy_tanh   the OLD adaptive mel weight (the design note's "old system", verbatim).
- stable        the NEW stable adaptive mel weight (the stable-weight documents: warmup, cooling, variance gate,
                gradient awareness, ±5 % steps, validation).
- uncertainty   Kendall et al. 2018: learned log-variances s, loss ½e^{-s}·L + ½s.
- dwa           Liu et al. 2019, dynamic weight averaging on windowed means, temperature T.
- gradnorm      Chen et al. 2018, gradient normalisation on the last layer every term depends on.
"""
from __future__ import annotations

from myxtts import record
from myxtts.backend import tf
from myxtts.training.history import RecentWindow
from myxtts.training.settings import (DECISIONS, WEIGHTING_NAMES, DwaSettings, GradNormSettings,
                                     LegacyTanhSettings, StableSettings, UncertaintySettings, WeightingSettings)

MEL_TERMS = ("mel", "postnet")
DECISION_CODES = {name: code for code, name in enumerate(DECISIONS)}


class WeightingStrategy(tf.Module):
    """Base: static weights. Subclasses adapt them; `terms` fixes the order of the terms they see."""

    name = "none"
    settings_class: type[WeightingSettings] = WeightingSettings
    needs_shared_gradients = False

    def __init__(self, base_weights: dict[str, float], terms: tuple[str, ...],
                 settings: WeightingSettings | None = None) -> None:
        super().__init__(name=self.name)
        self.settings = settings if settings is not None else self.settings_class()
        self.terms = tuple(terms)
        self.base = {t: float(base_weights.get(self._weight_key(t), 0.0)) for t in self.terms}
        self.step_count = tf.Variable(0, dtype=tf.int64, trainable=False, name="step_count")

    @staticmethod
    def _weight_key(term: str) -> str:
        return "mel" if term in MEL_TERMS else term

    @property
    def active_terms(self) -> tuple[str, ...]:
        return tuple(t for t in self.terms if self.base[t] > 0)

    def __call__(self, raw: dict, gradient_norm) -> tuple[dict, dict]:
        """Effective weight per term and extra metrics for this step; updates the strategy's state."""
        self.step_count.assign_add(1)
        return {t: tf.constant(self.base[t]) for t in self.terms}, {}

    def regularizer(self):
        return tf.constant(0.0)

    def observe(self, tape, raw: dict, shared_kernel) -> dict:
        """After the step's gradients: strategies that look at per-term gradients (GradNorm) do it here."""
        return {}


class LegacyTanhWeighting(WeightingStrategy):
    """The OLD system exactly as in the source document: no NaN handling, changes every step."""

    name = "legacy_tanh"
    settings_class = LegacyTanhSettings
    settings: LegacyTanhSettings

    def __init__(self, base_weights, terms, settings: LegacyTanhSettings | None = None) -> None:
        super().__init__(base_weights, terms, settings)
        self.factor_min, self.factor_max = self.settings.tanh_factor_min, self.settings.tanh_factor_max
        self.running_mel_loss = tf.Variable(0.0, trainable=False, name="running_mel_loss")

    def adaptive_mel_weight(self, current_mel_loss):
        self.step_count.assign_add(1)
        decay = tf.minimum(tf.cast(self.step_count, tf.float32) / float(self.settings.ramp_steps),
                           self.settings.max_decay)
        self.running_mel_loss.assign(decay * self.running_mel_loss + (1.0 - decay) * current_mel_loss)
        ratio = current_mel_loss / (self.running_mel_loss + 1e-8)
        adaptation_factor = tf.clip_by_value(0.5 + 0.5 * tf.tanh(ratio - 1.0), self.factor_min, self.factor_max)
        return tf.clip_by_value(self.base["mel"] * adaptation_factor, 1.0, 5.0), ratio

    def __call__(self, raw, gradient_norm):
        mel_weight, ratio = self.adaptive_mel_weight(tf.cast(raw["mel"], tf.float32))
        weights = {t: mel_weight if t in MEL_TERMS else tf.constant(self.base[t]) for t in self.terms}
        return weights, {record.WEIGHTING_RATIO: ratio}


class StableWeighting(WeightingStrategy):
    """The NEW system: conservative, gated, validated changes of the mel weight.

    The documents show it as a chain of named helpers; each is a method here (graph-safe, no Python
    branch on a tensor) and adaptive_mel_weight() runs them in the documents' order:
    1. safe_tensor: a non-finite loss is replaced by the fallback and the step counts as unstable; a
       replaced value never enters the running mean or the loss window (the first *finite* loss starts
       the running mean, then EMA with `ema_rate`);
    2. update_gradient_history: the previous step's gradient norm is "growing" above
       `gradient_growth_factor` × the mean of the last `history_size`, or above `gradient_norm_threshold`;
    3. is_adaptation_safe: enabled, warmup done, cooling passed, loss variance low and the loss in a
       stable range (`min_stable_steps` consecutive low-variance steps); the first failing gate names the
       decision;
    4. determine_weight_adjustment (the decision tree): ratio > increase_ratio and gradients not
       growing → +1; ratio < decrease_ratio or gradients growing → −1; else 0 (hold);
    5. apply_conservative_adjustment: ±max_change_percent, kept in [min_weight, max_weight];
    6. validate_new_weight: finite, in range, weight × loss finite and <= max_weighted_loss, else rejected;
    7. automatic return to a safe state: when the weight in force makes the weighted loss unacceptable,
       it goes back to the previous weight (or the base weight), restarting the cooling period.
    """

    name = "stable"
    settings_class = StableSettings
    settings: StableSettings
    # The checks every step runs, each with the method that runs it (the claims audit counts them).
    SAFETY_CHECKS = (
        ("non-finite loss replaced and counted as unstable", "safe_tensor"),
        ("gradient norm growing against its recent mean", "update_gradient_history"),
        ("gradient norm above an absolute threshold", "update_gradient_history"),
        ("adaptation switched off", "is_adaptation_safe"),
        ("warmup not over", "is_adaptation_safe"),
        ("cooling period since the last change", "is_adaptation_safe"),
        ("loss variance high or stable streak too short", "in_stable_range"),
        ("change capped at ±max_change_percent", "apply_conservative_adjustment"),
        ("weight kept within [min_weight, max_weight]", "apply_conservative_adjustment"),
        ("new weight and weighted loss finite and bounded", "validate_new_weight"),
        ("automatic return to the previous weight", "rollback_weight"),
    )

    def __init__(self, base_weights, terms, settings: StableSettings | None = None) -> None:
        super().__init__(base_weights, terms, settings)
        base = self.base.get("mel", 0.0)
        self.base_mel_weight = tf.constant(base, tf.float32)
        self.current_mel_weight = tf.Variable(base, dtype=tf.float32, trainable=False, name="current_mel_weight")
        self.previous_mel_weight = tf.Variable(base, dtype=tf.float32, trainable=False, name="previous_mel_weight")
        self.running_mel_loss = tf.Variable(0.0, trainable=False, name="running_mel_loss")
        self.has_running_mean = tf.Variable(False, trainable=False, name="has_running_mean")
        self.steps_since_weight_change = tf.Variable(0, trainable=False, name="steps_since_weight_change")
        self.consecutive_stable_steps = tf.Variable(0, trainable=False, name="consecutive_stable_steps")
        self.adjustment_enabled = tf.Variable(True, trainable=False, name="adjustment_enabled")
        self.last_decision = tf.Variable(DECISION_CODES["warmup"], trainable=False, name="last_decision")
        self.rollbacks = tf.Variable(0, trainable=False, name="rollbacks")
        self.replaced_inputs = tf.Variable(0, trainable=False, name="replaced_inputs")
        self.loss_window = RecentWindow(self.settings.history_size, name="loss_window")
        self.gradient_window = RecentWindow(self.settings.history_size, name="gradient_window")

    # --- the documents' helpers -------------------------------------------------------------------------
    @staticmethod
    def safe_tensor(value, fallback=0.0):
        """(value, True) when finite, else (fallback, False)."""
        value = tf.cast(value, tf.float32)
        finite = tf.math.is_finite(value)
        return tf.where(finite, value, tf.cast(fallback, tf.float32)), finite

    def update_gradient_history(self, gradient_norm):
        """Record a finite, non-negative norm; True when it is growing against the norms before it."""
        s = self.settings
        norm = tf.cast(gradient_norm, tf.float32)
        present = tf.logical_and(tf.math.is_finite(norm), norm >= 0.0)
        growing = tf.logical_and(present, tf.logical_or(
            tf.logical_and(self.gradient_window.count > 0, norm > s.gradient_growth_factor * self.gradient_window.mean()),
            norm > s.gradient_norm_threshold))
        self.gradient_window.push(norm, when=present)
        return growing

    def calculate_safe_ratio(self, current_mel_loss):
        """current / running mean; 1 (no signal) before the first finite loss or for a non-finite one."""
        ratio = tf.cast(current_mel_loss, tf.float32) / tf.maximum(self.running_mel_loss, 1e-8)
        return tf.where(tf.logical_and(self.has_running_mean, tf.math.is_finite(ratio)), ratio, 1.0)

    def calculate_loss_variance(self):
        return self.loss_window.variance()

    def in_stable_range(self, stable_now=True):
        """This step finite with low loss variance, after `min_stable_steps` such steps in a row."""
        s = self.settings
        return (tf.cast(stable_now, tf.bool) & (self.calculate_loss_variance() < s.variance_threshold)
                & (self.consecutive_stable_steps >= s.min_stable_steps))

    def is_adaptation_safe(self, stable_now=True):
        """(safe, decision code of the first failing gate; "hold" when all pass)."""
        s = self.settings
        gates = [(tf.logical_not(self.adjustment_enabled), "disabled"),
                 (self.step_count <= s.min_warmup_steps, "warmup"),
                 (self.steps_since_weight_change < s.cooling_period, "cooling"),
                 (tf.logical_not(self.in_stable_range(stable_now)), "unstable")]
        code = tf.constant(DECISION_CODES["hold"])
        for failing, name in reversed(gates):
            code = tf.where(failing, DECISION_CODES[name], code)
        return tf.equal(code, DECISION_CODES["hold"]), code

    def determine_weight_adjustment(self, loss_ratio, loss_variance=None, gradient_growing=False):
        """The decision tree: (should_adjust, direction +1 / -1 / 0). Variance is a gate, not a branch."""
        s = self.settings
        growing = tf.cast(gradient_growing, tf.bool)
        up = tf.logical_and(loss_ratio > s.increase_ratio, tf.logical_not(growing))
        down = tf.logical_and(tf.logical_not(up), tf.logical_or(loss_ratio < s.decrease_ratio, growing))
        direction = tf.where(up, 1, tf.where(down, -1, 0))
        return tf.not_equal(direction, 0), direction

    def apply_conservative_adjustment(self, weight, direction):
        s = self.settings
        step = 1.0 + s.max_change_percent * tf.cast(tf.sign(direction), tf.float32)
        return tf.clip_by_value(tf.cast(weight, tf.float32) * step, s.min_weight, s.max_weight)

    def validate_new_weight(self, new_weight, current_mel_loss):
        s = self.settings
        weighted = new_weight * tf.cast(current_mel_loss, tf.float32)
        return (tf.math.is_finite(new_weight) & (new_weight >= s.min_weight) & (new_weight <= s.max_weight)
                & tf.math.is_finite(weighted) & (weighted <= s.max_weighted_loss))

    def rollback_weight(self) -> None:
        """Return to the weight before the last change and restart the cooling period."""
        self.current_mel_weight.assign(self.previous_mel_weight)
        self.steps_since_weight_change.assign(0)

    def effective_mel_weight(self):
        """The weight in force: the adapted one, or the base weight while adaptation is disabled."""
        s = self.settings
        return tf.clip_by_value(tf.where(self.adjustment_enabled, self.current_mel_weight, self.base_mel_weight),
                                s.min_weight, s.max_weight)

    # --- one step -----------------------------------------------------------------------------------------
    def adaptive_mel_weight(self, current_mel_loss, gradient_norm=None):
        s = self.settings
        self.step_count.assign_add(1)
        loss, finite = self.safe_tensor(current_mel_loss, 0.0)
        self.replaced_inputs.assign_add(tf.cast(tf.logical_not(finite), tf.int32))
        starts = tf.logical_and(finite, tf.logical_not(self.has_running_mean))
        self.running_mel_loss.assign(tf.where(starts, loss, tf.where(
            finite, (1.0 - s.ema_rate) * self.running_mel_loss + s.ema_rate * loss, self.running_mel_loss)))
        self.has_running_mean.assign(tf.logical_or(self.has_running_mean, finite))
        ratio = tf.where(finite, self.calculate_safe_ratio(loss), 1.0)

        growing = self.update_gradient_history(tf.constant(-1.0) if gradient_norm is None else gradient_norm)
        self.loss_window.push(loss, when=finite)
        variance = self.calculate_loss_variance()
        stable_now = tf.logical_and(finite, variance < s.variance_threshold)
        self.consecutive_stable_steps.assign(tf.where(stable_now, self.consecutive_stable_steps + 1, 0))
        self.steps_since_weight_change.assign_add(1)

        weight = self.current_mel_weight
        safe, gate = self.is_adaptation_safe(stable_now)
        should_adjust, direction = self.determine_weight_adjustment(ratio, variance, growing)
        proposal = self.apply_conservative_adjustment(weight, direction)
        valid = self.validate_new_weight(proposal, loss)
        moves = tf.logical_and(should_adjust, tf.not_equal(proposal, weight))
        decision = tf.where(tf.logical_not(safe), gate, tf.where(
            tf.logical_not(moves), DECISION_CODES["hold"], tf.where(
                tf.logical_not(valid), DECISION_CODES["rejected"],
                tf.where(direction > 0, DECISION_CODES["increase"], DECISION_CODES["decrease"]))))
        apply = tf.logical_and(safe, tf.logical_and(moves, valid))
        self.previous_mel_weight.assign(tf.where(apply, weight, self.previous_mel_weight))
        self.current_mel_weight.assign(tf.where(apply, proposal, weight))
        self.steps_since_weight_change.assign(tf.where(apply, 0, self.steps_since_weight_change))

        # Automatic return to a safe state: the weight in force must keep the weighted loss acceptable.
        in_force = self.current_mel_weight
        target = tf.where(tf.not_equal(in_force, self.previous_mel_weight), self.previous_mel_weight,
                          self.base_mel_weight)
        back = (self.adjustment_enabled & finite & tf.logical_not(self.validate_new_weight(in_force, loss))
                & tf.not_equal(target, in_force))
        self.current_mel_weight.assign(tf.where(back, target, in_force))
        self.previous_mel_weight.assign(tf.where(back, in_force, self.previous_mel_weight))
        self.steps_since_weight_change.assign(tf.where(back, 0, self.steps_since_weight_change))
        self.rollbacks.assign_add(tf.cast(back, tf.int32))
        decision = tf.where(back, DECISION_CODES["rollback"], decision)
        self.last_decision.assign(decision)
        metrics = {record.WEIGHTING_DECISION: decision, record.WEIGHTING_RATIO: ratio, record.WEIGHTING_LOSS_VARIANCE: variance,
                   record.WEIGHTING_STABLE_STEPS: self.consecutive_stable_steps,
                   record.WEIGHTING_SINCE_CHANGE: self.steps_since_weight_change,
                   record.WEIGHTING_GRADIENT_GROWING: tf.cast(growing, tf.float32),
                   record.WEIGHTING_ROLLBACKS: self.rollbacks}
        return self.effective_mel_weight(), metrics

    def __call__(self, raw, gradient_norm):
        mel_weight, metrics = self.adaptive_mel_weight(raw["mel"], gradient_norm)
        weights = {t: mel_weight if t in MEL_TERMS else tf.constant(self.base[t]) for t in self.terms}
        return weights, metrics

    def reset_monitoring(self) -> None:
        """Back to the state of a new run: statistics cleared and the base weight in force."""
        self.running_mel_loss.assign(0.0)
        self.has_running_mean.assign(False)
        self.step_count.assign(0)
        self.steps_since_weight_change.assign(0)
        self.consecutive_stable_steps.assign(0)
        self.current_mel_weight.assign(self.base_mel_weight)
        self.previous_mel_weight.assign(self.base_mel_weight)
        self.last_decision.assign(DECISION_CODES["warmup"])
        self.loss_window.reset()
        self.gradient_window.reset()


class UncertaintyWeighting(WeightingStrategy):
    """Kendall et al. 2018: each active term gets ½e^{-s}·(base·L) + ½s with s learned by the optimizer."""

    name = "uncertainty"
    settings_class = UncertaintySettings
    settings: UncertaintySettings

    def __init__(self, base_weights, terms, settings: UncertaintySettings | None = None) -> None:
        super().__init__(base_weights, terms, settings)
        self.log_variances = {t: tf.Variable(0.0, trainable=True, name=f"log_variance_{t}")
                              for t in self.active_terms}

    def __call__(self, raw, gradient_norm):
        self.step_count.assign_add(1)
        weights = {t: (self.base[t] * 0.5 * tf.exp(-self.log_variances[t]) if t in self.log_variances
                       else tf.constant(self.base[t])) for t in self.terms}
        metrics = {record.weighting_detail("log_variance", t): tf.identity(v) for t, v in self.log_variances.items()}
        return weights, metrics

    def regularizer(self):
        return tf.add_n([0.5 * s for s in self.log_variances.values()]) if self.log_variances else tf.constant(0.0)


class DynamicWeightAveraging(WeightingStrategy):
    """Liu et al. 2019: w_i = K·softmax_i(r_i / T), r_i = mean L_i of the last window / of the one before."""

    name = "dwa"
    settings_class = DwaSettings
    settings: DwaSettings

    def __init__(self, base_weights, terms, settings: DwaSettings | None = None) -> None:
        super().__init__(base_weights, terms, settings)
        self.temperature, self.window = self.settings.temperature, self.settings.window
        k = len(self.active_terms)
        self.sums = tf.Variable(tf.zeros([k]), trainable=False, name="window_sums")
        self.counts = tf.Variable(tf.zeros([k]), trainable=False, name="window_counts")
        self.previous = tf.Variable(tf.ones([k]), trainable=False, name="previous_window_mean")
        self.before_previous = tf.Variable(tf.ones([k]), trainable=False, name="before_previous_window_mean")
        self.windows_done = tf.Variable(0, trainable=False, name="windows_done")
        self.factors = tf.Variable(tf.ones([k]), trainable=False, name="factors")

    def __call__(self, raw, gradient_norm):
        self.step_count.assign_add(1)
        active = self.active_terms
        if not active:
            return super().__call__(raw, gradient_norm)
        values = tf.stack([tf.cast(raw[t], tf.float32) for t in active])
        finite = tf.math.is_finite(values)
        self.sums.assign_add(tf.where(finite, values, 0.0))
        self.counts.assign_add(tf.cast(finite, tf.float32))
        window_closed = tf.equal(self.step_count % self.window, 0)
        mean = self.sums / tf.maximum(self.counts, 1.0)
        self.before_previous.assign(tf.where(window_closed, self.previous, self.before_previous))
        self.previous.assign(tf.where(window_closed, mean, self.previous))
        self.sums.assign(tf.where(window_closed, tf.zeros_like(self.sums), self.sums))
        self.counts.assign(tf.where(window_closed, tf.zeros_like(self.counts), self.counts))
        self.windows_done.assign_add(tf.cast(window_closed, tf.int32))
        rates = self.previous / tf.maximum(self.before_previous, 1e-8)
        factors = len(active) * tf.nn.softmax(rates / self.temperature)
        self.factors.assign(tf.where(self.windows_done >= 2, factors, tf.ones_like(factors)))
        weights = {t: tf.constant(self.base[t]) for t in self.terms}
        for i, t in enumerate(active):
            weights[t] = self.base[t] * self.factors[i]
        return weights, {}


class GradNormWeighting(WeightingStrategy):
    """Chen et al. 2018 with α: factors move so each term's gradient norm on the shared layer tracks
    the mean norm × (relative inverse training rate)^α; factors are renormalised to sum to K."""

    name = "gradnorm"
    settings_class = GradNormSettings
    settings: GradNormSettings
    needs_shared_gradients = True

    def __init__(self, base_weights, terms, settings: GradNormSettings | None = None) -> None:
        super().__init__(base_weights, terms, settings)
        self.alpha, self.learning_rate = self.settings.alpha, self.settings.learning_rate
        k = len(self.active_terms)
        self.factors = tf.Variable(tf.ones([k]), trainable=False, name="factors")
        self.initial_losses = tf.Variable(tf.ones([k]), trainable=False, name="initial_losses")
        self.has_initial = tf.Variable(False, trainable=False, name="has_initial")

    def __call__(self, raw, gradient_norm):
        self.step_count.assign_add(1)
        weights = {t: tf.constant(self.base[t]) for t in self.terms}
        for i, t in enumerate(self.active_terms):
            weights[t] = self.base[t] * self.factors[i]
        return weights, {}

    def observe(self, tape, raw, shared_kernel):
        """Each active term's gradient norm on the shared layer from the step's (persistent) tape."""
        norms = {}
        for term in self.active_terms:
            # ||∇(b·L)|| = b·||∇L||; the product itself was never recorded on the tape.
            gradient = tape.gradient(raw[term], shared_kernel)
            norms[term] = self.base[term] * (tf.norm(gradient) if gradient is not None else tf.constant(0.0))
        return self.observe_shared_gradients({t: raw[t] for t in self.active_terms}, norms)

    def observe_shared_gradients(self, raw, gradient_norms):
        """gradient_norms[t] = ||∇_W (base_t·L_t)|| on the shared layer W; updates factors for the next step."""
        active = self.active_terms
        if not active:
            return {}
        losses = tf.stack([tf.cast(raw[t], tf.float32) for t in active])
        norms = tf.stack([tf.cast(gradient_norms[t], tf.float32) for t in active])
        usable = tf.reduce_all(tf.math.is_finite(losses)) & tf.reduce_all(tf.math.is_finite(norms))
        record_initial = usable & tf.logical_not(self.has_initial)
        self.initial_losses.assign(tf.where(record_initial, tf.maximum(losses, 1e-8), self.initial_losses))
        self.has_initial.assign(self.has_initial | record_initial)
        relative = losses / self.initial_losses
        inverse_rate = relative / tf.maximum(tf.reduce_mean(relative), 1e-8)
        weighted_norms = self.factors * norms
        target = tf.stop_gradient(tf.reduce_mean(weighted_norms) * inverse_rate ** self.alpha)
        # d/dw_i Σ_j |w_j g_j − target_j| with the target held constant (as in the paper).
        step = tf.sign(weighted_norms - target) * norms
        updated = tf.maximum(self.factors - self.learning_rate * step, 1e-3)
        updated = updated * len(active) / tf.reduce_sum(updated)
        self.factors.assign(tf.where(usable, updated, self.factors))
        metrics = {record.weighting_detail("shared_grad_norm", t): norms[i] for i, t in enumerate(active)}
        metrics[record.WEIGHTING_GRADNORM_LOSS] = tf.reduce_sum(tf.abs(weighted_norms - target))
        return metrics


STRATEGIES: dict[str, type[WeightingStrategy]] = {
    cls.name: cls for cls in (WeightingStrategy, LegacyTanhWeighting, StableWeighting, UncertaintyWeighting,
                              DynamicWeightAveraging, GradNormWeighting)}


assert tuple(sorted(STRATEGIES)) == WEIGHTING_NAMES, "weighting settings and strategies must name the same set"


def build_weighting(settings: WeightingSettings | str, base_weights: dict[str, float], terms: tuple[str, ...]):
    """The strategy its settings name (a bare name takes that strategy's documented defaults)."""
    if isinstance(settings, str):
        if settings not in STRATEGIES:
            raise ValueError(f"weighting={settings!r} is invalid: allowed one of {list(WEIGHTING_NAMES)}")
        settings = STRATEGIES[settings].settings_class()
    return STRATEGIES[settings.name](base_weights, terms, settings)
