import math

import numpy as np
import pytest

from myxtts.backend import tf
from myxtts.training.settings import (WEIGHTING_NAMES, DwaSettings, GradNormSettings, LegacyTanhSettings,
                                      StableSettings)
from myxtts.training.scenarios import decreasing_then_spike, plateau_spike_recovery
from myxtts.training.weighting import (DECISION_CODES, DynamicWeightAveraging, GradNormWeighting,
                                       LegacyTanhWeighting, STRATEGIES, StableWeighting, UncertaintyWeighting,
                                       WeightingStrategy, build_weighting)

TERMS = ("mel", "postnet", "stop", "attention", "kl")
BASE = {"mel": 2.5, "stop": 1.0, "kl": 1.8, "attention": 0.0}


def _raw(mel, stop=1.0, kl=0.1):
    return {"mel": tf.constant(mel, tf.float32), "postnet": tf.constant(mel, tf.float32),
            "stop": tf.constant(stop, tf.float32), "attention": tf.constant(0.0), "kl": tf.constant(kl, tf.float32)}


def _replay(strategy, losses, gradient_norms=None):
    weights, decisions = [], []
    for i, loss in enumerate(losses):
        norm = -1.0 if gradient_norms is None else gradient_norms[i]
        w, metrics = strategy(_raw(float(loss)), tf.constant(norm, tf.float32))
        weights.append(float(w["mel"]))
        decisions.append(int(metrics.get("weighting/decision", -1)))
    return np.array(weights), np.array(decisions)


def test_none_keeps_base_weights_and_postnet_shares_mel():
    weights, _ = WeightingStrategy(BASE, TERMS)(_raw(3.0), tf.constant(1.0))
    assert {t: float(w) for t, w in weights.items()} == pytest.approx(
        {"mel": 2.5, "postnet": 2.5, "stop": 1.0, "attention": 0.0, "kl": 1.8})


def test_legacy_tanh_follows_the_documented_formula_exactly():
    losses = np.concatenate([np.linspace(10, 0.5, 150), [100.0], np.full(20, 0.5)]).astype(np.float32)
    strategy = LegacyTanhWeighting(BASE, TERMS)
    weights, _ = _replay(strategy, losses)
    running = 0.0
    for step, loss in enumerate(losses, start=1):
        decay = min(step / 1000.0, 0.99)
        running = decay * running + (1 - decay) * float(loss)
        factor = min(max(0.5 + 0.5 * math.tanh(float(loss) / (running + 1e-8) - 1.0), 0.8), 1.2)
        assert weights[step - 1] == pytest.approx(min(max(2.5 * factor, 1.0), 5.0), rel=1e-5)
    # The tanh factor never exceeds 1: the old weight can only sit between 0.8 and 1.0 × base.
    assert weights.max() < 2.5 and weights.min() >= 2.0


@pytest.mark.parametrize("bounds", [(0.8, 1.2), (0.7, 1.3)])
def test_the_old_weights_analytic_bounds_match_the_formula(bounds):
    """The audit's analytic evidence: the weight leaves its floor first at `first_step_off_floor()` even for an
    enormous loss, and moves at most by `largest_step_changes()` from one step to the next."""
    settings = LegacyTanhSettings(tanh_factor_min=bounds[0], tanh_factor_max=bounds[1])
    first = settings.first_step_off_floor()
    rise, fall = settings.largest_step_changes()
    floor = 2.5 * bounds[0]
    for spike_at, moves in ((first - 1, False), (first, True)):
        losses = np.concatenate([np.ones(spike_at - 1), [1e6], np.ones(3)]).astype(np.float32)
        weights, _ = _replay(LegacyTanhWeighting(BASE, TERMS, settings), losses)
        assert np.all(weights[:spike_at - 1] == pytest.approx(floor))
        assert (weights[spike_at - 1] > floor * (1 + 1e-6)) == moves, (spike_at, weights[spike_at - 1])
        steps = weights[1:] / weights[:-1] - 1
        assert steps.max() <= rise + 1e-6 and -steps.min() <= fall + 1e-6
    # Late in the ramp a spike takes the factor from its floor to 1 in one step, and back the next.
    losses = np.concatenate([np.ones(989), [1e6], np.ones(3)]).astype(np.float32)
    weights, _ = _replay(LegacyTanhWeighting(BASE, TERMS, settings), losses)
    steps = weights[1:] / weights[:-1] - 1
    assert steps.max() == pytest.approx(rise, rel=1e-3) and -steps.min() == pytest.approx(fall, rel=1e-3)


def test_legacy_tanh_has_no_nan_handling():
    strategy = LegacyTanhWeighting(BASE, TERMS)
    weights, _ = _replay(strategy, [1.0, float("nan"), 1.0])
    assert math.isnan(float(strategy.running_mel_loss))
    assert math.isnan(weights[2]) or weights[2] in (1.0, 5.0)  # clip_by_value passes NaN through or clamps


def test_stable_scenario_1_warmup_small_steps_and_cooling():
    strategy = StableWeighting(BASE, TERMS)
    weights, decisions = _replay(strategy, decreasing_then_spike())
    assert np.all(weights[:100] == 2.5)
    assert set(decisions[:100]) == {DECISION_CODES["warmup"]}
    changes = np.flatnonzero(np.diff(np.concatenate([[2.5], weights])) != 0)
    assert len(changes) >= 3
    assert np.all(np.diff(changes) >= 50)
    previous = np.concatenate([[2.5], weights[:-1]])
    assert np.all(np.abs(weights / previous - 1.0) <= 0.05 + 1e-6)
    assert weights[350] == weights[349]  # the spike itself changes nothing
    assert decisions[350] == DECISION_CODES["unstable"]
    assert np.all((weights >= 1.0) & (weights <= 5.0))


def test_stable_scenario_2_spike_keeps_weight_and_adaptation_resumes():
    strategy = StableWeighting(BASE, TERMS)
    losses = plateau_spike_recovery(220)
    weights, decisions = _replay(strategy, losses)
    assert np.isfinite(weights * losses).all()
    assert weights[101] == weights[100]
    assert decisions[101] == DECISION_CODES["unstable"]
    assert set(decisions[101:111]) == {DECISION_CODES["unstable"]}  # the spike stays in the 10-step window
    later = decisions[120:]
    assert DECISION_CODES["unstable"] not in later
    assert np.any(np.isin(later, [DECISION_CODES["decrease"], DECISION_CODES["increase"]]))


def test_stable_decision_rules():
    settings = StableSettings(min_warmup_steps=0, cooling_period=0, min_stable_steps=0)
    # Loss above its running mean and gradients steady → +5 %.
    up = StableWeighting(BASE, TERMS, settings)
    _replay(up, [1.0] * 5, [1.0] * 5)
    w, d = _replay(up, [1.3], [1.0])
    assert d[0] == DECISION_CODES["increase"] and w[0] == pytest.approx(2.5 * 1.05, rel=1e-5)
    # Same loss but the gradient norm jumps above 1.5 × its recent mean → −5 %.
    down = StableWeighting(BASE, TERMS, settings)
    _replay(down, [1.0] * 5, [1.0] * 5)
    before = float(down.current_mel_weight)
    w, d = _replay(down, [1.3], [2.0])
    assert d[0] == DECISION_CODES["decrease"] and w[0] == pytest.approx(before * 0.95, rel=1e-5)
    # Gradient norm over the absolute threshold also counts as growing.
    high = StableWeighting(BASE, TERMS, StableSettings(min_warmup_steps=0, cooling_period=0, min_stable_steps=0,
                                                       gradient_norm_threshold=3.0))
    _replay(high, [1.0] * 5, [4.0] * 5)
    assert _replay(high, [1.3], [4.0])[1][0] == DECISION_CODES["decrease"]


def test_stable_nonfinite_input_is_replaced_and_rejection_keeps_weight():
    settings = StableSettings(min_warmup_steps=0, cooling_period=0, min_stable_steps=0)
    strategy = StableWeighting(BASE, TERMS, settings)
    _replay(strategy, [1.0] * 5)
    w, d = _replay(strategy, [float("nan"), float("inf")])
    assert np.all(w == 2.5) and set(d) == {DECISION_CODES["unstable"]}
    assert math.isfinite(float(strategy.running_mel_loss))
    # weight × loss above 1000 → rejected, weight kept.
    strict = StableWeighting(BASE, TERMS, StableSettings(min_warmup_steps=0, cooling_period=0, min_stable_steps=0,
                                                         variance_threshold=1e9, max_weighted_loss=1.0))
    _replay(strict, [1.0] * 3)
    w, d = _replay(strict, [1.3])
    assert d[0] == DECISION_CODES["rejected"] and w[0] == 2.5


def test_stable_knobs_are_wired():
    slow = StableWeighting(BASE, TERMS, StableSettings(min_warmup_steps=150, cooling_period=80,
                                                       max_change_percent=0.02))
    weights, _ = _replay(slow, decreasing_then_spike())
    changes = np.flatnonzero(np.diff(np.concatenate([[2.5], weights])) != 0)
    assert changes.min() >= 150 and np.all(np.diff(changes) >= 80)
    assert np.allclose(np.abs(weights[changes] / weights[changes - 1] - 1), 0.02, atol=1e-5)


def test_uncertainty_weights_follow_learned_log_variances():
    strategy = UncertaintyWeighting(BASE, TERMS)
    assert {v.name.split(":")[0] for v in strategy.trainable_variables} == {
        "log_variance_mel", "log_variance_postnet", "log_variance_stop", "log_variance_kl"}
    strategy.log_variances["stop"].assign(1.0)
    weights, _ = strategy(_raw(1.0), tf.constant(1.0))
    assert float(weights["stop"]) == pytest.approx(0.5 * math.exp(-1.0))
    assert float(weights["mel"]) == pytest.approx(2.5 * 0.5)
    assert float(weights["attention"]) == 0.0
    assert float(strategy.regularizer()) == pytest.approx(0.5)


def test_dwa_uses_the_ratio_of_the_last_two_window_means():
    strategy = DynamicWeightAveraging(BASE, TERMS, DwaSettings(temperature=2.0, window=5))
    for _ in range(5):
        strategy({**_raw(2.0, stop=1.0, kl=1.0)}, tf.constant(1.0))
    for _ in range(5):
        weights, _ = strategy({**_raw(1.0, stop=1.0, kl=2.0)}, tf.constant(1.0))
    rates = np.array([0.5, 0.5, 1.0, 2.0])  # mel, postnet, stop, kl (attention has weight 0: not active)
    expected = 4 * np.exp(rates / 2) / np.exp(rates / 2).sum()
    got = [float(weights[t]) / BASE[t if t != "postnet" else "mel"] for t in ("mel", "postnet", "stop", "kl")]
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    assert float(tf.reduce_sum(strategy.factors)) == pytest.approx(4.0)


def test_gradnorm_moves_factors_toward_balanced_gradients_and_keeps_sum_k():
    strategy = GradNormWeighting(BASE, TERMS, GradNormSettings(alpha=1.5, learning_rate=0.1))
    raw = {t: tf.constant(1.0) for t in strategy.active_terms}
    norms = {"mel": 4.0, "postnet": 1.0, "stop": 1.0, "kl": 1.0}
    strategy.observe_shared_gradients(raw, {t: tf.constant(v) for t, v in norms.items()})
    factors = dict(zip(strategy.active_terms, strategy.factors.numpy()))
    assert factors["mel"] < 1.0 < factors["stop"]
    assert sum(factors.values()) == pytest.approx(4.0, rel=1e-5)
    before = strategy.factors.numpy().copy()
    strategy.observe_shared_gradients(raw, {**{t: tf.constant(1.0) for t in norms}, "kl": tf.constant(float("nan"))})
    np.testing.assert_array_equal(strategy.factors.numpy(), before)


def test_configuration_knows_every_strategy():
    assert tuple(sorted(STRATEGIES)) == WEIGHTING_NAMES


def test_unknown_strategy_lists_the_valid_ones():
    with pytest.raises(ValueError, match=r"weighting='adaptive' is invalid: allowed one of \['dwa', 'gradnorm', 'legacy_tanh'"):
        build_weighting("adaptive", BASE, TERMS)


def test_strategies_run_inside_xla():
    for name in ("legacy_tanh", "stable", "uncertainty", "dwa", "gradnorm"):
        strategy = build_weighting(name, BASE, TERMS)
        step = tf.function(lambda loss, s=strategy: s(_raw_tensor(loss), tf.constant(1.0))[0]["mel"],
                           jit_compile=True)
        values = [float(step(tf.constant(v))) for v in (3.0, 2.0, 1.0)]
        assert all(math.isfinite(v) for v in values), name


def _raw_tensor(loss):
    return {"mel": loss, "postnet": loss, "stop": loss * 0.5, "attention": loss * 0.0, "kl": loss * 0.1}
