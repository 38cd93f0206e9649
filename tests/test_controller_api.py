"""The stable controller through the API the documents show: XTTSLoss's helpers, called as their code calls them."""
import math

import numpy as np
import pytest

from myxtts.backend import tf
from myxtts.training.losses import XTTSLoss
from myxtts.training.settings import StableSettings
from myxtts.training.weighting import DECISION_CODES

NAN, INF = float("nan"), float("inf")


def _loss(**settings):
    return XTTSLoss(mel_loss_weight=2.5, use_adaptive_weights=True,
                    weighting=StableSettings(**settings) if settings else None)


def _mel_step(loss, value):
    """One loss call whose mel L1 is exactly `value` (random targets, prediction offset by `value`)."""
    target = tf.random.stateless_normal([2, 6, 80], seed=[1, 2])
    y_true = {"mel_target": target, "mel_lengths": tf.constant([6, 6])}
    return loss.compute(y_true, {"mel_output": target + tf.cast(value, tf.float32)})


def test_safe_tensor_takes_the_documents_fallback_argument():
    loss = _loss()
    assert float(loss._safe_tensor(tf.constant(NAN), "current_mel_loss", 1.0)) == 1.0
    assert float(loss._safe_tensor(tf.constant(INF), "current_mel_loss", 2.5)) == 2.5
    assert float(loss._safe_tensor(tf.constant(-INF), "current_mel_loss", 0.0)) == 0.0
    assert float(loss._safe_tensor(tf.constant(3.0), "current_mel_loss", 1.0)) == 3.0
    compiled = tf.function(lambda x: loss._safe_tensor(x, "current_mel_loss", 1.0), jit_compile=True)
    assert float(compiled(tf.constant(NAN))) == 1.0 and float(compiled(tf.constant(0.5))) == 0.5


def test_decision_tree_and_conservative_adjustment_as_the_documents_call_them():
    loss = _loss()
    for ratio, growing, expected in ((1.3, False, (True, 1)), (1.3, True, (True, -1)), (0.8, False, (True, -1)),
                                     (1.04, False, (False, 0)), (1.04, True, (True, -1))):
        should_adjust, direction = loss._determine_weight_adjustment(tf.constant(ratio), tf.constant(0.1),
                                                                     tf.constant(growing))
        assert (bool(should_adjust), int(direction)) == expected, (ratio, growing)
    for weight in (1.0, 1.02, 2.5, 4.0, 4.9, 5.0):
        up = float(loss._apply_conservative_adjustment(tf.constant(weight), 1))
        down = float(loss._apply_conservative_adjustment(tf.constant(weight), -1))
        assert weight <= up <= 1.05 * weight + 1e-6 and 0.95 * weight - 1e-6 <= down <= weight
        assert 1.0 <= up <= 5.0 and 1.0 <= down <= 5.0
    assert float(loss._apply_conservative_adjustment(tf.constant(2.0), 0)) == 2.0
    compiled = tf.function(lambda r, g: loss._determine_weight_adjustment(r, None, g), jit_compile=True)
    assert int(compiled(tf.constant(1.3), tf.constant(False))[1]) == 1
    assert bool(loss._validate_new_weight(tf.constant(2.625), tf.constant(1.0)))
    assert not bool(loss._validate_new_weight(tf.constant(2.625), tf.constant(1000.0)))  # weighted loss > 1000


def test_gradient_history_and_documented_attributes():
    loss = _loss()
    for norm in (1.0, 1.0, 1.0):
        assert not bool(loss._update_gradient_history(tf.constant(norm)))
    assert bool(loss._update_gradient_history(tf.constant(2.0)))        # > 1.5 × the recent mean
    assert bool(loss._update_gradient_history(tf.constant(6.0)))        # > the absolute threshold 5
    assert not bool(loss._update_gradient_history(tf.constant(NAN)))    # not recorded, not growing
    assert float(loss.current_mel_weight) == 2.5 and bool(loss.weight_adjustment_enabled)


def test_a_nan_first_call_does_not_poison_the_running_mean():
    loss = _loss()
    _, first = _mel_step(loss, NAN)
    assert float(first["weighting/ratio"]) == 1.0
    _, second = _mel_step(loss, 1.7)
    assert math.isfinite(float(second["weighting/ratio"])) and float(second["weighting/ratio"]) == pytest.approx(1.0)
    _, _third = _mel_step(loss, INF)
    _, fourth = _mel_step(loss, 1.7)
    assert float(fourth["weighting/ratio"]) == pytest.approx(1.0, rel=1e-5)
    assert loss.get_adaptive_weight_metrics()["replaced_inputs"] == 2


def _adapted(loss):
    """Drive the controller until it has changed the weight once (no warmup, no cooling)."""
    for _ in range(3):
        _mel_step(loss, 1.0)
    _mel_step(loss, 1.3)
    assert float(loss.current_mel_weight) == pytest.approx(2.5 * 1.05)


def test_disable_reports_the_base_weight_and_reset_restores_it():
    loss = _loss(min_warmup_steps=0, cooling_period=0, min_stable_steps=0)
    _adapted(loss)
    loss.disable_adaptive_weights()
    assert float(loss.current_mel_weight) == 2.5
    assert loss.get_adaptive_weight_metrics()["current_mel_weight"] == 2.5
    _, metrics = _mel_step(loss, 1.3)
    assert float(metrics["weight/mel"]) == 2.5 and int(metrics["weighting/decision"]) == DECISION_CODES["disabled"]
    loss.enable_adaptive_weights()
    assert float(loss.current_mel_weight) == pytest.approx(2.5 * 1.05)   # the adapted weight was kept
    loss.reset_stability_state()
    metrics = loss.get_adaptive_weight_metrics()
    assert metrics["current_mel_weight"] == 2.5 and metrics["previous_mel_weight"] == 2.5
    assert metrics["warmup_steps_remaining"] == 1 and metrics["last_decision"] == "warmup"


def test_automatic_return_to_a_safe_state_is_counted_and_logged():
    loss = _loss(min_warmup_steps=0, cooling_period=0, min_stable_steps=0, variance_threshold=1e9,
                 max_weighted_loss=100.0)
    _adapted(loss)
    # The adapted weight makes the weighted loss unacceptable (2.625 × 50 > 100): back to 2.5.
    _, metrics = _mel_step(loss, 50.0)
    assert int(metrics["weighting/decision"]) == DECISION_CODES["rollback"]
    assert int(metrics["weighting/rollbacks"]) == 1 and float(metrics["weight/mel"]) == 2.5
    adaptive = loss.get_adaptive_weight_metrics()
    assert adaptive["rollbacks"] == 1 and adaptive["last_decision"] == "rollback"
    # At the base weight already, nothing is left to return to: not counted again.
    _, metrics = _mel_step(loss, 50.0)
    assert int(metrics["weighting/rollbacks"]) == 1


def test_counters_mean_one_thing_on_the_loss_and_the_strategy():
    loss = _loss()
    for _ in range(5):
        _mel_step(loss, 1.0)
    assert int(loss.consecutive_stable_steps) == int(loss.strategy.consecutive_stable_steps) == 5
    assert loss.get_adaptive_weight_metrics()["consecutive_stable_steps"] == 5


@pytest.mark.parametrize("compiled", [False, True])
def test_documented_scenarios_with_random_targets_respect_every_promise(compiled):
    """Warmup 100, cooling 50, ±5 % steps, [1, 5]: driven through the loss object as a user would."""
    loss = XTTSLoss(mel_loss_weight=2.5, use_adaptive_weights=True)
    step = tf.function(lambda v: _mel_step(loss, v)[1], jit_compile=True) if compiled else \
        (lambda v: _mel_step(loss, v)[1])
    rng = np.random.default_rng(0)
    # Calm, then a drifting loss, a NaN, a spike and a slow decline: every branch of the documents' story.
    values = np.concatenate([1.0 + 0.01 * rng.normal(size=150), np.linspace(1.0, 1.6, 150), [NAN],
                             1.6 + 0.01 * rng.normal(size=100), [40.0], np.linspace(1.6, 0.8, 200)])
    weights, decisions = [], []
    for value in values:
        metrics = step(tf.constant(value, tf.float32))
        weights.append(float(metrics["weight/mel"]))
        decisions.append(int(metrics["weighting/decision"]))
    weights = np.array(weights)
    changes = np.flatnonzero(weights[1:] != weights[:-1]) + 1
    assert len(changes) >= 2, "the scenario must exercise adjustments"
    assert changes.min() > 100                                         # only after warmup
    assert np.all(np.diff(changes) >= 50)                              # at least the cooling period apart
    ratios = weights[changes] / weights[changes - 1]
    assert np.all(np.abs(ratios - 1) <= 0.05 + 1e-6)                  # ≤ 5 % per change
    assert weights.min() >= 1.0 and weights.max() <= 5.0
    assert all(math.isfinite(w) for w in weights)


@pytest.mark.parametrize("weighting", ["stable", "old"])
def test_last_weight_change_step_reads_the_step_of_the_last_change_and_assigning_it_ends_the_cooling(weighting):
    """The documents' own test of the stable weights sets `last_weight_change_step` to step_count − 60 to end
    the cooling period; it reads back as the step of the last change, for every strategy."""
    loss = _loss(min_warmup_steps=0, cooling_period=0, min_stable_steps=0) if weighting == "stable" else \
        XTTSLoss(mel_loss_weight=2.5, use_adaptive_weights=False)
    for _ in range(30):
        _mel_step(loss, 1.0)
    view = loss.last_weight_change_step
    since = int(loss.steps_since_weight_change)
    counter = loss.strategy.step_count if weighting == "stable" else loss.step_count
    assert int(view) == int(counter) - since and int(view.numpy()) == int(view)
    view.assign(loss.step_count - 60 if weighting == "old" else counter - 60)
    assert int(loss.steps_since_weight_change) == 60 and int(loss.last_weight_change_step) == int(counter) - 60
    if weighting == "stable":   # a fresh controller: cooling 50 holds, then the assigned step releases it
        moved = []
        for release in (False, True):
            cooled = _loss(min_warmup_steps=0, cooling_period=50, min_stable_steps=0, variance_threshold=1e9)
            for _ in range(5):
                _mel_step(cooled, 1.0)
            if release:
                cooled.last_weight_change_step.assign(cooled.strategy.step_count - 60)
            before = float(cooled.current_mel_weight)
            _mel_step(cooled, 3.0)
            moved.append(float(cooled.current_mel_weight) != before)
        assert moved == [False, True]
