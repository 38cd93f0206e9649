"""Loss-weighting strategies, selected by name (conf/weighting ↔ this module).

Every strategy turns this step's raw loss terms into effective weights, keeping all of its state in
tf.Variables so it runs inside a compiled (XLA) train step. The mel weight also applies to the postnet
mel term: the source documents have one `mel_loss_weight` for both.

- none          static base weights.
- legacy_tanh   the OLD adaptive mel weight (seed 000 "old system", verbatim).
- stable        the NEW stable adaptive mel weight (seeds 000–002: warmup, cooling, variance gate,
                gradient awareness, ±5 % steps, validation).
- uncertainty   Kendall et al. 2018: learned log-variances s, loss ½e^{-s}·L + ½s.
- dwa           Liu et al. 2019, dynamic weight averaging on windowed means, temperature T.
- gradnorm      Chen et al. 2018, gradient normalisation on the last layer every term depends on.
"""
from __future__ import annotations

from myxtts.backend import tf
from myxtts.training.history import RecentWindow
from myxtts.training.settings import StableSettings

MEL_TERMS = ("mel", "postnet")
DECISIONS = ("warmup", "cooling", "unstable", "hold", "increase", "decrease", "rejected", "disabled")
DECISION_CODES = {name: code for code, name in enumerate(DECISIONS)}


class WeightingStrategy(tf.Module):
    """Base: static weights. Subclasses adapt them; `terms` fixes the order of the terms they see."""

    name = "none"
    needs_shared_gradients = False

    def __init__(self, base_weights: dict[str, float], terms: tuple[str, ...]) -> None:
        super().__init__(name=self.name)
        for term, weight in base_weights.items():
            if not weight >= 0 or weight == float("inf"):
                raise ValueError(f"loss.{term}_loss_weight: must be finite and >= 0, got {weight}")
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

    def observe_shared_gradients(self, raw: dict, gradient_norms: dict) -> dict:
        return {}


class LegacyTanhWeighting(WeightingStrategy):
    """The OLD system exactly as in the source document: no NaN handling, changes every step."""

    name = "legacy_tanh"

    def __init__(self, base_weights, terms, factor_min: float = 0.8, factor_max: float = 1.2) -> None:
        super().__init__(base_weights, terms)
        if not 0 < factor_min <= 1 <= factor_max:
            raise ValueError(f"weighting.tanh_factor_min/max={factor_min}/{factor_max} is invalid: "
                             f"allowed 0 < min <= 1 <= max (documented [0.8, 1.2], earlier upstream [0.7, 1.3])")
        self.factor_min, self.factor_max = factor_min, factor_max
        self.running_mel_loss = tf.Variable(0.0, trainable=False, name="running_mel_loss")

    def adaptive_mel_weight(self, current_mel_loss):
        self.step_count.assign_add(1)
        decay = tf.minimum(tf.cast(self.step_count, tf.float32) / 1000.0, 0.99)
        self.running_mel_loss.assign(decay * self.running_mel_loss + (1.0 - decay) * current_mel_loss)
        ratio = current_mel_loss / (self.running_mel_loss + 1e-8)
        adaptation_factor = tf.clip_by_value(0.5 + 0.5 * tf.tanh(ratio - 1.0), self.factor_min, self.factor_max)
        return tf.clip_by_value(self.base["mel"] * adaptation_factor, 1.0, 5.0), ratio

    def __call__(self, raw, gradient_norm):
        mel_weight, ratio = self.adaptive_mel_weight(tf.cast(raw["mel"], tf.float32))
        weights = {t: mel_weight if t in MEL_TERMS else tf.constant(self.base[t]) for t in self.terms}
        return weights, {"weighting/ratio": ratio}


class StableWeighting(WeightingStrategy):
    """The NEW system: conservative, gated, validated changes of the mel weight.

    Each step: replace a non-finite loss by 0.0 (and count the step unstable); update the running mean
    (first step: the loss itself, then EMA with `ema_rate`); compare the gradient norm of the previous
    step with the mean of the last `history_size` ("growing" above `gradient_growth_factor` × that mean
    or above `gradient_norm_threshold`); gate on warmup, cooling, loss variance and consecutive stable
    steps; then ratio > increase_ratio and gradients not growing → +max_change, ratio < decrease_ratio
    or gradients growing → −max_change, else hold; validate the proposal (finite, within
    [min_weight, max_weight], weight × loss finite and <= max_weighted_loss) or reject it.
    """

    name = "stable"

    def __init__(self, base_weights, terms, settings: StableSettings | None = None) -> None:
        super().__init__(base_weights, terms)
        self.settings = settings = settings or StableSettings()
        base = self.base.get("mel", 0.0)
        self.base_mel_weight = tf.constant(base, tf.float32)
        self.current_mel_weight = tf.Variable(base, dtype=tf.float32, trainable=False, name="current_mel_weight")
        self.previous_mel_weight = tf.Variable(base, dtype=tf.float32, trainable=False, name="previous_mel_weight")
        self.running_mel_loss = tf.Variable(0.0, trainable=False, name="running_mel_loss")
        self.steps_since_weight_change = tf.Variable(0, trainable=False, name="steps_since_weight_change")
        self.consecutive_stable_steps = tf.Variable(0, trainable=False, name="consecutive_stable_steps")
        self.adjustment_enabled = tf.Variable(True, trainable=False, name="adjustment_enabled")
        self.last_decision = tf.Variable(DECISION_CODES["warmup"], trainable=False, name="last_decision")
        self.loss_window = RecentWindow(settings.history_size, name="loss_window")
        self.gradient_window = RecentWindow(settings.history_size, name="gradient_window")

    def adaptive_mel_weight(self, current_mel_loss, gradient_norm=None):
        s = self.settings
        self.step_count.assign_add(1)
        loss = tf.cast(current_mel_loss, tf.float32)
        finite_input = tf.math.is_finite(loss)
        loss = tf.where(finite_input, loss, 0.0)
        first = tf.equal(self.step_count, 1)
        self.running_mel_loss.assign(tf.where(
            first, loss, (1.0 - s.ema_rate) * self.running_mel_loss + s.ema_rate * loss))
        ratio = loss / tf.maximum(self.running_mel_loss, 1e-8)

        if gradient_norm is None:
            gradient_norm = tf.constant(-1.0)
        gradient_norm = tf.cast(gradient_norm, tf.float32)
        has_gradient = tf.logical_and(tf.math.is_finite(gradient_norm), gradient_norm >= 0.0)
        growing = tf.logical_and(has_gradient, tf.logical_or(
            tf.logical_and(self.gradient_window.count > 0,
                           gradient_norm > s.gradient_growth_factor * self.gradient_window.mean()),
            gradient_norm > s.gradient_norm_threshold))
        self.gradient_window.push(gradient_norm, when=has_gradient)

        self.loss_window.push(loss, when=finite_input)
        variance = self.loss_window.variance()
        stable_now = tf.logical_and(finite_input, variance < s.variance_threshold)
        self.consecutive_stable_steps.assign(tf.where(stable_now, self.consecutive_stable_steps + 1, 0))
        self.steps_since_weight_change.assign_add(1)

        weight = self.current_mel_weight
        up = tf.logical_and(ratio > s.increase_ratio, tf.logical_not(growing))
        down = tf.logical_and(tf.logical_not(up), tf.logical_or(ratio < s.decrease_ratio, growing))
        proposal = tf.clip_by_value(
            weight * tf.where(up, 1.0 + s.max_change_percent, tf.where(down, 1.0 - s.max_change_percent, 1.0)),
            s.min_weight, s.max_weight)
        valid = (tf.math.is_finite(proposal) & (proposal >= s.min_weight) & (proposal <= s.max_weight)
                 & tf.math.is_finite(proposal * loss) & (proposal * loss <= s.max_weighted_loss))
        moves = tf.logical_and(tf.logical_or(up, down), tf.not_equal(proposal, weight))

        gates = [  # first failing gate names the decision
            (tf.logical_not(self.adjustment_enabled), "disabled"),
            (self.step_count <= s.min_warmup_steps, "warmup"),
            (self.steps_since_weight_change < s.cooling_period, "cooling"),
            (tf.logical_or(tf.logical_not(stable_now), self.consecutive_stable_steps < s.min_stable_steps),
             "unstable"),
            (tf.logical_not(moves), "hold"),
            (tf.logical_not(valid), "rejected"),
        ]
        decision = tf.where(up, DECISION_CODES["increase"], DECISION_CODES["decrease"])
        for condition, name in reversed(gates):
            decision = tf.where(condition, DECISION_CODES[name], decision)
        apply = tf.logical_or(tf.equal(decision, DECISION_CODES["increase"]),
                              tf.equal(decision, DECISION_CODES["decrease"]))
        self.previous_mel_weight.assign(tf.where(apply, weight, self.previous_mel_weight))
        self.current_mel_weight.assign(tf.where(apply, proposal, weight))
        self.steps_since_weight_change.assign(tf.where(apply, 0, self.steps_since_weight_change))
        self.last_decision.assign(decision)
        effective = tf.where(self.adjustment_enabled, self.current_mel_weight, self.base_mel_weight)
        metrics = {"weighting/decision": decision, "weighting/ratio": ratio, "weighting/loss_variance": variance,
                   "weighting/consecutive_stable_steps": self.consecutive_stable_steps,
                   "weighting/steps_since_weight_change": self.steps_since_weight_change,
                   "weighting/gradient_growing": tf.cast(growing, tf.float32)}
        return tf.clip_by_value(effective, s.min_weight, s.max_weight), metrics

    def __call__(self, raw, gradient_norm):
        mel_weight, metrics = self.adaptive_mel_weight(raw["mel"], gradient_norm)
        weights = {t: mel_weight if t in MEL_TERMS else tf.constant(self.base[t]) for t in self.terms}
        return weights, metrics

    def rollback_weight(self) -> None:
        """Return to the weight before the last change and restart the cooling period."""
        self.current_mel_weight.assign(self.previous_mel_weight)
        self.steps_since_weight_change.assign(0)

    def reset_monitoring(self) -> None:
        self.running_mel_loss.assign(0.0)
        self.step_count.assign(0)
        self.steps_since_weight_change.assign(0)
        self.consecutive_stable_steps.assign(0)
        self.loss_window.reset()
        self.gradient_window.reset()


class UncertaintyWeighting(WeightingStrategy):
    """Kendall et al. 2018: each active term gets ½e^{-s}·(base·L) + ½s with s learned by the optimizer."""

    name = "uncertainty"

    def __init__(self, base_weights, terms) -> None:
        super().__init__(base_weights, terms)
        self.log_variances = {t: tf.Variable(0.0, trainable=True, name=f"log_variance_{t}")
                              for t in self.active_terms}

    def __call__(self, raw, gradient_norm):
        self.step_count.assign_add(1)
        weights = {t: (self.base[t] * 0.5 * tf.exp(-self.log_variances[t]) if t in self.log_variances
                       else tf.constant(self.base[t])) for t in self.terms}
        metrics = {f"weighting/log_variance_{t}": tf.identity(v) for t, v in self.log_variances.items()}
        return weights, metrics

    def regularizer(self):
        return tf.add_n([0.5 * s for s in self.log_variances.values()]) if self.log_variances else tf.constant(0.0)


class DynamicWeightAveraging(WeightingStrategy):
    """Liu et al. 2019: w_i = K·softmax_i(r_i / T), r_i = mean L_i of the last window / of the one before."""

    name = "dwa"

    def __init__(self, base_weights, terms, temperature: float = 2.0, window: int = 20) -> None:
        super().__init__(base_weights, terms)
        if temperature <= 0:
            raise ValueError(f"weighting.temperature: must be > 0, got {temperature}")
        if window < 1:
            raise ValueError(f"weighting.window: must be >= 1, got {window}")
        self.temperature, self.window = temperature, window
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
    needs_shared_gradients = True

    def __init__(self, base_weights, terms, alpha: float = 1.5, learning_rate: float = 0.025) -> None:
        super().__init__(base_weights, terms)
        if alpha < 0:
            raise ValueError(f"weighting.alpha: must be >= 0, got {alpha}")
        if learning_rate <= 0:
            raise ValueError(f"weighting.learning_rate: must be > 0, got {learning_rate}")
        self.alpha, self.learning_rate = alpha, learning_rate
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
        metrics = {f"weighting/shared_grad_norm_{t}": norms[i] for i, t in enumerate(active)}
        metrics["weighting/gradnorm_loss"] = tf.reduce_sum(tf.abs(weighted_norms - target))
        return metrics


STRATEGIES = {cls.name: cls for cls in (WeightingStrategy, LegacyTanhWeighting, StableWeighting,
                                         UncertaintyWeighting, DynamicWeightAveraging, GradNormWeighting)}


def build_weighting(name: str, base_weights: dict[str, float], terms: tuple[str, ...], **options):
    if name not in STRATEGIES:
        raise ValueError(f"weighting.name: must be one of {sorted(STRATEGIES)}, got {name!r}")
    return STRATEGIES[name](base_weights, terms, **options)
