import math

import numpy as np
import pytest

from myxtts.backend import tf
from myxtts.training.losses import (XTTSLoss, guided_attention_loss, kl_loss, masked_mel_loss, stop_loss)


def _batch(seed=0, frames=12, lengths=(12, 8)):
    rng = np.random.default_rng(seed)
    target = rng.normal(size=(2, frames, 80)).astype(np.float32)
    y_true = {"mel_target": tf.constant(target), "mel_lengths": tf.constant(lengths, tf.int32)}
    y_pred = {"mel_output": tf.constant(target + rng.normal(scale=0.5, size=target.shape).astype(np.float32))}
    return y_true, y_pred


def _full(seed=0):
    y_true, y_pred = _batch(seed)
    rng = np.random.default_rng(seed + 1)
    stop = np.zeros((2, 12), np.float32)
    stop[0, 11:] = 1
    stop[1, 7:] = 1
    y_true.update(stop_target=tf.constant(stop), text_lengths=tf.constant([6, 4]))
    y_pred.update(postnet_output=y_pred["mel_output"] * 0.9, stop_logits=tf.constant(rng.normal(size=(2, 12)), tf.float32),
                  alignment=tf.nn.softmax(tf.constant(rng.normal(size=(2, 12, 6)), tf.float32)),
                  latent_mean=tf.constant(rng.normal(size=(2, 4)), tf.float32),
                  latent_logvar=tf.constant(rng.normal(size=(2, 4)) * 0.1, tf.float32))
    return y_true, y_pred


def test_mel_loss_ignores_padding_and_matches_numpy():
    y_true, y_pred = _batch()
    value = float(masked_mel_loss(y_pred["mel_output"], y_true["mel_target"], y_true["mel_lengths"]))
    error = np.abs(y_pred["mel_output"].numpy() - y_true["mel_target"].numpy())
    assert value == pytest.approx(np.concatenate([error[0], error[1, :8]]).mean(), rel=1e-5)
    noisy = y_pred["mel_output"].numpy().copy()
    noisy[1, 8:] = 1e6
    assert float(masked_mel_loss(tf.constant(noisy), y_true["mel_target"], y_true["mel_lengths"])) == \
        pytest.approx(value, rel=1e-6)


def test_huber_is_quadratic_inside_delta_and_linear_outside():
    target = tf.zeros([1, 1, 2])
    prediction = tf.constant([[[0.5, 3.0]]])
    value = float(masked_mel_loss(prediction, target, tf.constant([1]), huber_delta=1.0))
    assert value == pytest.approx((0.5 * 0.25 + (3.0 - 0.5)) / 2)


def test_stop_kl_and_attention_terms():
    logits = tf.constant([[2.0, -1.0, 0.0]])
    targets = tf.constant([[0.0, 0.0, 1.0]])
    plain = float(stop_loss(logits, targets, tf.constant([3])))
    expected = np.mean([math.log1p(math.exp(2.0)), math.log1p(math.exp(-1.0)), math.log(2.0)])
    assert plain == pytest.approx(expected, rel=1e-5)
    assert float(stop_loss(logits, targets, tf.constant([3]), positive_weight=5.0)) > plain
    assert float(kl_loss(tf.zeros([2, 4]), tf.zeros([2, 4]))) == pytest.approx(0.0, abs=1e-7)
    assert float(kl_loss(tf.ones([2, 4]), tf.zeros([2, 4]))) == pytest.approx(0.5)
    diagonal = tf.eye(4)[None]
    anti = tf.reverse(tf.eye(4), [1])[None]
    assert float(guided_attention_loss(diagonal, tf.constant([4]), tf.constant([4]))) < \
        float(guided_attention_loss(anti, tf.constant([4]), tf.constant([4])))


def test_minimal_call_and_optional_terms():
    loss = XTTSLoss(mel_loss_weight=2.5, use_adaptive_weights=False)
    y_true, y_pred = _batch()
    total, metrics = loss.compute(y_true, y_pred)
    assert float(total) == pytest.approx(2.5 * float(metrics["raw/mel"]), rel=1e-6)
    assert float(metrics["raw/stop"]) == float(metrics["raw/kl"]) == 0.0
    y_true, y_pred = _full()
    loss = XTTSLoss(mel_loss_weight=2.0, stop_loss_weight=1.5, kl_loss_weight=0.5, attention_loss_weight=3.0,
                    use_adaptive_weights=False)
    total, metrics = loss.compute(y_true, y_pred)
    expected = sum(float(metrics[f"raw/{t}"]) * w for t, w in
                   (("mel", 2.0), ("postnet", 2.0), ("stop", 1.5), ("kl", 0.5), ("attention", 3.0)))
    assert float(total) == pytest.approx(expected, rel=1e-5)
    assert all(float(metrics[f"raw/{t}"]) > 0 for t in ("postnet", "stop", "attention", "kl"))


def test_total_clip_caps_the_loss_and_zeroes_its_gradient():
    loss = XTTSLoss(mel_loss_weight=35.0, use_adaptive_weights=False, total_loss_clip=10.0, spike_dampening=False)
    y_true, y_pred = _batch()
    prediction = tf.Variable(y_pred["mel_output"] + 3.0)
    with tf.GradientTape() as tape:
        total = loss(y_true, {"mel_output": prediction})
    assert float(total) == 10.0
    assert float(tf.reduce_sum(tf.abs(tape.gradient(total, prediction)))) == 0.0


def test_mel_label_smoothing_adds_noise_scaled_by_target_std():
    y_true, _ = _batch()
    exact = {"mel_output": y_true["mel_target"]}
    assert float(XTTSLoss(use_adaptive_weights=False)(y_true, exact)) == 0.0
    smoothed = XTTSLoss(mel_loss_weight=1.0, use_adaptive_weights=False, mel_label_smoothing=0.1)
    std = float(np.std(np.concatenate([y_true["mel_target"].numpy()[0], y_true["mel_target"].numpy()[1, :8]])))
    # E|noise| for N(0, (0.1·std)²) is 0.1·std·sqrt(2/π).
    assert float(smoothed(y_true, exact)) == pytest.approx(0.1 * std * math.sqrt(2 / math.pi), rel=0.1)


def test_spike_dampening_scales_by_threshold_over_ratio():
    loss = XTTSLoss(mel_loss_weight=1.0, use_adaptive_weights=False, max_loss_spike_threshold=2.0)
    y_true, y_pred = _batch()
    for _ in range(5):
        base, _ = loss.compute(y_true, y_pred)
    total, metrics = loss.compute(y_true, y_pred, raw_scale=tf.constant(50.0))
    assert float(metrics["guard/spike"]) == 1.0
    assert float(metrics["loss/undamped"]) == pytest.approx(50 * float(base), rel=1e-5)
    assert float(total) == pytest.approx(2.0 * float(base), rel=1e-4)
    off = XTTSLoss(mel_loss_weight=1.0, use_adaptive_weights=False, spike_dampening=False)
    for _ in range(5):
        off.compute(y_true, y_pred)
    assert float(off.compute(y_true, y_pred, raw_scale=tf.constant(50.0))[0]) == pytest.approx(50 * float(base),
                                                                                                rel=1e-5)


def test_documented_api_eager_and_under_xla():
    loss = XTTSLoss(mel_loss_weight=2.5, use_adaptive_weights=True, loss_smoothing_factor=0.1,
                    max_loss_spike_threshold=2.0, gradient_norm_threshold=5.0,
                    adaptive_weight_max_change_percent=0.05, adaptive_weight_cooling_period=50,
                    adaptive_weight_min_stable_steps=10, adaptive_weight_min_warmup_steps=100,
                    adaptive_weight_variance_threshold=0.5)
    assert isinstance(loss.step_count, tf.Variable)
    y_true, y_pred = _full()
    eager = float(loss(y_true, y_pred))
    compiled = tf.function(loss.loss_fn, jit_compile=True)
    for _ in range(3):
        value = float(compiled(y_true, y_pred))
    assert value == pytest.approx(eager, rel=1e-4)
    stability = loss.get_stability_metrics()
    assert set(stability) == {"running_mel_loss", "running_total_loss", "loss_variance", "loss_stability_score",
                              "step_count"}
    assert stability["step_count"] == 4
    adaptive = loss.get_adaptive_weight_metrics()
    assert set(adaptive) == {"current_mel_weight", "previous_mel_weight", "base_mel_weight",
                             "steps_since_weight_change", "consecutive_stable_steps", "weight_adjustment_enabled",
                             "avg_gradient_norm", "warmup_steps_remaining", "cooling_steps_remaining",
                             "stable_steps_needed", "last_decision", "rollbacks", "replaced_inputs"}
    assert adaptive["last_decision"] == "warmup" and adaptive["warmup_steps_remaining"] == 97
    for value in {**stability, **adaptive}.values():
        assert isinstance(value, (int, float, bool, str))
    weight = loss._adaptive_mel_weight(tf.constant(1.0), tf.constant(0.5))
    assert float(weight) == 2.5


def test_controls_disable_enable_reset_rollback():
    loss = XTTSLoss(mel_loss_weight=2.5, adaptive_weight_min_warmup_steps=0, adaptive_weight_cooling_period=0,
                    adaptive_weight_min_stable_steps=0)
    y_true, y_pred = _batch()
    for _ in range(3):
        loss(y_true, y_pred)
    bigger = {"mel_output": y_pred["mel_output"] * 1.3}
    loss(y_true, bigger)
    changed = loss.get_adaptive_weight_metrics()
    assert changed["current_mel_weight"] != 2.5 and changed["previous_mel_weight"] == 2.5
    loss.rollback_weight()
    assert loss.get_adaptive_weight_metrics()["current_mel_weight"] == 2.5
    loss.disable_adaptive_weights()
    _total, metrics = loss.compute(y_true, bigger)
    assert float(metrics["weight/mel"]) == 2.5 and not loss.get_adaptive_weight_metrics()["weight_adjustment_enabled"]
    assert int(metrics["weighting/decision"]) == 7
    loss.enable_adaptive_weights()
    loss.reset_stability_state()
    assert loss.get_stability_metrics()["step_count"] == 0
    with pytest.raises(RuntimeError, match="only the stable strategy"):
        XTTSLoss(use_adaptive_weights=False).rollback_weight()


@pytest.mark.parametrize("kwargs, key", [({"loss_smoothing_factor": 0.0}, "loss_smoothing_factor"),
                                         ({"total_loss_clip": -1.0}, "total_loss_clip"),
                                         ({"mel_loss_weight": float("nan")}, "mel_loss_weight"),
                                         ({"weighting": "magic"}, "weighting=.magic.")])
def test_bad_values_name_the_key(kwargs, key):
    with pytest.raises(ValueError, match=key):
        XTTSLoss(**kwargs)


def test_the_documents_class_built_from_a_runs_settings_computes_what_the_trainer_optimises():
    """XTTSLoss.from_settings over a preset's settings gives the trainer's objective, term for term, and the
    documented API on top; the documented constructor with the same values gives the same numbers."""
    from myxtts.training.losses import build_objective
    from myxtts.training.settings import GuardSettings, LossSettings, StableSettings

    loss = LossSettings(mel_loss_weight=2.5, kl_loss_weight=1.8, huber=True, label_smoothing=False,
                        stop_positive_weight=5.0)
    weighting, guards = StableSettings(min_warmup_steps=2), GuardSettings(spike_threshold=2.0)
    documented = XTTSLoss.from_settings(loss, weighting, guards)
    trainer = build_objective(loss, weighting, guards)
    by_arguments = XTTSLoss(mel_loss_weight=2.5, kl_loss_weight=1.8, attention_loss_weight=1.0, use_huber_loss=True,
                            stop_positive_weight=5.0,
                            adaptive_weight_min_warmup_steps=2, max_loss_spike_threshold=2.0)
    for seed in range(4):
        y_true, y_pred = _full(seed)
        results = [objective.compute(y_true, y_pred) for objective in (documented, trainer, by_arguments)]
        for key in results[1][1]:
            values = [float(metrics[key]) for _, metrics in results]
            assert values[0] == pytest.approx(values[1], rel=1e-6) == pytest.approx(values[2], rel=1e-6), key
    assert float(documented.current_mel_weight) == pytest.approx(float(results[1][1]["weight/mel"]), rel=1e-6)
    assert documented.get_adaptive_weight_metrics()["base_mel_weight"] == 2.5
