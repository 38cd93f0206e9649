"""Each upstream-faithful switch really reproduces the upstream behaviour, and its default does not."""
import math
import subprocess
import sys

import keras
import numpy as np
import pytest

from myxtts.backend import tf
from myxtts.data.corpus_reader import SkipReport, read_metadata
from myxtts.data.dataset import BatchStream, DataSettings, choose_subset, prepare_data
from myxtts.data.settings import FeatureSettings
from myxtts.data.features import MelSpec, log_mel
from myxtts.models.settings import ModelSettings
from myxtts.models.xtts import build_model, length_mask
from myxtts.training.losses import XTTSLoss
from myxtts.training.losses import stop_z_loss
from myxtts.training.optim import OptimizerSettings, build_optimizer, build_schedule
from myxtts.training.settings import FaultSettings, GuardSettings
from myxtts.training.trainer import Trainer, TrainerSettings, make_deterministic
from runner.schema import PROJECT_ROOT


# --- feature scale ----------------------------------------------------------------------------------------
def _reference_slaney_filters(n_mels, n_fft, rate, fmin, fmax):
    """Written from the Slaney Auditory Toolbox definition, band by band, independently of the project."""
    def hz_to_mel(f):
        return f * 3.0 / 200.0 if f < 1000.0 else 15.0 + 27.0 * math.log(f / 1000.0) / math.log(6.4)

    def mel_to_hz(m):
        return m * 200.0 / 3.0 if m < 15.0 else 1000.0 * 6.4 ** ((m - 15.0) / 27.0)

    low, high = hz_to_mel(fmin), hz_to_mel(fmax)
    centres = [mel_to_hz(low + (high - low) * i / (n_mels + 1)) for i in range(n_mels + 2)]
    filters = np.zeros((n_fft // 2 + 1, n_mels))
    for band in range(n_mels):
        left, centre, right = centres[band:band + 3]
        for k in range(n_fft // 2 + 1):
            f = k * rate / n_fft
            if left < f < right:
                height = (f - left) / (centre - left) if f <= centre else (right - f) / (right - centre)
                filters[k, band] = height * 2.0 / (right - left)
    return filters


def _reference_log_mel(audio, spec):
    audio = np.asarray(audio, np.float64)
    audio = audio / np.max(np.abs(audio))
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(spec.win_length) / spec.win_length)  # periodic Hann
    frames = 1 + (len(audio) - spec.win_length) // spec.hop_length
    stft = np.stack([np.fft.rfft(audio[t * spec.hop_length:t * spec.hop_length + spec.win_length] * window,
                                 spec.n_fft) for t in range(frames)])
    mel = np.abs(stft) @ _reference_slaney_filters(spec.n_mels, spec.n_fft, spec.sample_rate, spec.fmin, spec.fmax)
    return np.log(np.maximum(mel, spec.log_floor))


def test_log_scale_matches_an_independent_numpy_reference():
    rng = np.random.default_rng(0)
    t = np.arange(22050 // 2) / 22050
    audio = 0.3 * np.sin(2 * np.pi * 220 * t) + 0.1 * np.sin(2 * np.pi * 3100 * t) + 0.01 * rng.normal(size=t.size)
    spec = MelSpec.for_scale("log")
    ours = log_mel(audio.astype(np.float32), spec).numpy()
    reference = _reference_log_mel(audio, spec)
    assert ours.shape == reference.shape
    loud = reference > -6  # where float32 rounding is far below the value (silent bands sit at the floor)
    np.testing.assert_allclose(ours[loud], reference[loud], atol=2e-3)
    np.testing.assert_allclose(ours, reference, atol=0.05)
    assert ours.min() > -11.6 and ours.max() < 3.0  # upstream's range, not standardized
    assert MelSpec.for_scale("log").key != MelSpec.for_scale("standardized").key  # separate caches


@pytest.fixture(scope="module")
def scaled_data(small_corpus, tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    made = {}
    for scale in ("standardized", "log", "minmax"):
        with pytest.warns(UserWarning, match="over data.max_seconds"):
            made[scale] = prepare_data(DataSettings(small_corpus, cache, validation_fraction=0.25, max_seconds=4.0,
                                                    features=FeatureSettings(scale)))
    return made


def _initial_total(data, mel_weight):
    make_deterministic(0)
    model = build_model("tiny", data.tokenizer.vocab_size)
    batch = {k: tf.constant(v) for k, v in next(BatchStream(data.train, 4, 0, 32).iterate()).items()}
    loss = XTTSLoss(mel_loss_weight=mel_weight, kl_loss_weight=1.0, stop_positive_weight=5.0, weighting="none")
    targets = {"mel_target": batch["mel"], "mel_lengths": batch["mel_lengths"], "stop_target": batch["stop_target"],
               "text_lengths": batch["text_lengths"]}
    total, metrics = loss.compute(targets, model(batch, training=True))
    return float(total), float(metrics["raw/mel"]), float(metrics["weighted/mel"])


def test_log_features_give_the_documented_three_digit_loss_and_standardized_do_not(scaled_data):
    log_total, log_mel_l1, log_mel_term = _initial_total(scaled_data["log"], 45.0)
    standardized_total, standardized_mel, standardized_term = _initial_total(scaled_data["standardized"], 45.0)
    # Upstream's own log at weight 45: loss=219.5 with mel=4.87, i.e. the mel term alone.
    assert 4.0 < log_mel_l1 < 6.0 and log_mel_term >= 100 and log_total >= 100
    assert standardized_mel < 1.5 and standardized_term < 100
    # Measured, not assumed: our total also weights the postnet's L1 by the mel weight, so at weight 45 even
    # standardized features start just over 100 (about 110 on this corpus); log features start near 450.
    assert log_total > 3 * standardized_total
    minmax = np.concatenate([e.mel for e in scaled_data["minmax"].train])
    assert minmax.min() >= 0.0 and minmax.max() <= 1.0


# --- precision and clip order -------------------------------------------------------------------------------
def _one_step(data, precision, clip_order, nonfinite="propagate", nan_batch=False, spike=None, overflow="skip"):
    keras.mixed_precision.set_global_policy(precision)
    try:
        make_deterministic(0)
        model = build_model("tiny", data.tokenizer.vocab_size)
        loss = XTTSLoss(mel_loss_weight=2.5, kl_loss_weight=1.0)
        recorded = {}
        trainer = Trainer(model, loss, OptimizerSettings(lr=1e-3, clip_norm=0.8, clip_order=clip_order),
                          GuardSettings(nonfinite=nonfinite),
                          TrainerSettings(steps=1, precision=precision, overflow=overflow),
                          BatchStream(data.train, 4, 0, 32),
                          callbacks=[type("R", (), {"on_step": lambda s, k, m: recorded.update(m),
                                                    "on_validation": lambda *a: None,
                                                    "on_checkpoint": lambda *a: None})()],
                          fault=FaultSettings("nan_batch", 0) if nan_batch else
                          FaultSettings("spike", 0, spike) if spike else FaultSettings())
        trainer.fit()
        return recorded, trainer
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_scaled_clipping_under_float16_shrinks_the_applied_gradient_by_the_loss_scale(scaled_data):
    data = scaled_data["standardized"]
    reference, _ = _one_step(data, "float32", "unscaled")
    unscaled, _ = _one_step(data, "mixed_float16", "unscaled")
    scaled, _ = _one_step(data, "mixed_float16", "scaled")
    # The applied gradient: clipped to 0.8 before unscaling means 0.8 / 2^15 after it.
    assert unscaled["grad/norm_clipped"] == pytest.approx(0.8, rel=1e-3)
    assert scaled["grad/norm_clipped"] == pytest.approx(0.8 / 2 ** 15, rel=1e-3)
    assert unscaled["grad/norm_clipped"] / scaled["grad/norm_clipped"] >= 1000
    # Adam normalizes the step size, so the weights move less only where the gradient falls under its epsilon:
    # the update shrinks, by far less than the gradient does (this is the measured size of the plateau).
    assert unscaled["update/norm"] / scaled["update/norm"] > 10  # measured: about 110× at lr 1e-3, not 2^15
    # Correct loss scaling changes nothing but rounding: the same step as float32.
    assert unscaled["grad/norm"] == pytest.approx(reference["grad/norm"], rel=0.05)
    assert unscaled["update/norm"] == pytest.approx(reference["update/norm"], rel=0.05)
    assert unscaled["loss_scale"] == 2 ** 15 and "loss_scale" not in reference


def test_float16_overflow_halves_the_loss_scale_and_skips_the_step(scaled_data):
    metrics, trainer = _one_step(scaled_data["standardized"], "mixed_float16", "unscaled", nan_batch=True)
    assert metrics["guard/nonfinite"] == 1.0 and metrics["update/norm"] == 0.0
    assert float(trainer.loss_scale.numpy()) == 2 ** 14


def test_upstream_zero_handling_applies_a_nan_step_with_zeroed_gradients(scaled_data):
    metrics, trainer = _one_step(scaled_data["standardized"], "float32", "unscaled", nonfinite="zero", nan_batch=True)
    assert math.isnan(metrics["loss/total"]) and metrics["guard/skipped"] == 0.0
    assert int(trainer.optimizer.iterations.numpy()) == 1  # applied, not skipped
    assert all(np.isfinite(v.numpy()).all() for v in trainer.model.trainable_variables)


# --- attention masks -----------------------------------------------------------------------------------------
def _batch(frames=8, text=6, short_text=3):
    rng = np.random.default_rng(0)
    return {"text": tf.constant(rng.integers(1, 20, (2, text)), tf.int32),
            "text_lengths": tf.constant([text, short_text]),
            "mel": tf.constant(rng.normal(size=(2, frames, 80)), tf.float32),
            "reference_mel": tf.constant(rng.normal(size=(2, frames, 80)), tf.float32),
            "reference_lengths": tf.constant([frames, frames])}


@pytest.mark.parametrize("mode", ["correct", "inverted"])
def test_inverted_masks_read_the_future_and_padding(mode):
    make_deterministic(0)
    model = build_model("tiny", 40, attention_mask=mode)
    batch = _batch()
    changed = dict(batch, mel=tf.tensor_scatter_nd_add(batch["mel"], [[0, 5]], tf.ones([1, 80])))
    before = model(batch, training=False)["mel_output"].numpy()
    after = model(changed, training=False)["mel_output"].numpy()
    # The decoder predicts frame t+1 from frames <= t: changing input frame 5 may change outputs 5.. only.
    future_leak = np.abs(after[0, :5] - before[0, :5]).max()
    block = model.text_blocks[0]
    x = model.embedding(batch["text"])
    valid = length_mask(batch["text_lengths"], 6)
    _, weights = block.self_attention(x, x, tf.tile(valid[:, None, :], [1, 6, 1]))
    on_padding = float(tf.reduce_sum(weights[1, :, :, 3:]).numpy())  # the short text's padded positions
    if mode == "correct":
        assert future_leak == 0.0 and on_padding == 0.0
    else:
        assert future_leak > 1e-4 and on_padding > 1.0


# --- schedules ------------------------------------------------------------------------------------------------
def test_noam_and_cosine_restarts_at_known_steps():
    noam = build_schedule(OptimizerSettings(lr=1e-3, schedule="noam", warmup_steps=1500), 10_000)
    assert float(noam(749)) == pytest.approx(0.5e-3) and float(noam(1499)) == pytest.approx(1e-3)
    assert float(noam(5999)) == pytest.approx(0.5e-3, rel=1e-4)
    restarts = build_schedule(OptimizerSettings(lr=1e-3, schedule="cosine_restarts"), 10_000)
    floor = 1e-7
    assert float(restarts(0)) == pytest.approx(1e-3)
    assert float(restarts(4000)) == pytest.approx(floor + (1e-3 - floor) * 0.5, rel=1e-4)
    assert float(restarts(7999)) == pytest.approx(floor, abs=1e-8)
    assert float(restarts(8000)) == pytest.approx(1e-3)                         # first restart, no warmup
    assert float(restarts(8000 + 3200)) == pytest.approx(floor + (1e-3 - floor) * 0.5, rel=1e-4)  # period 6400


# --- the subset ------------------------------------------------------------------------------------------------
def test_subset_is_deterministic_across_runs_orders_and_processes(small_corpus):
    utterances = read_metadata(small_corpus, SkipReport())
    chosen = [u.id for u in choose_subset(utterances, 5, 0)]
    assert len(chosen) == 5 and chosen == [u.id for u in choose_subset(utterances, 5, 0)]
    assert sorted(chosen) == sorted(u.id for u in choose_subset(list(reversed(utterances)), 5, 0))
    assert set(chosen) != {u.id for u in choose_subset(utterances, 5, 1)}
    code = ("from myxtts.data.corpus_reader import SkipReport, read_metadata; from myxtts.data.dataset import "
            f"choose_subset; print(','.join(u.id for u in choose_subset(read_metadata({str(small_corpus)!r}, "
            "SkipReport()), 5, 0)))")
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=PROJECT_ROOT,
                           env={"PYTHONHASHSEED": "123", "TF_CPP_MIN_LOG_LEVEL": "3", "PATH": ""}, check=True)
    assert other.stdout.strip() == ",".join(chosen)


def test_upstream_zero_handling_hides_a_float16_overflow_from_the_scaler_but_not_from_the_record(scaled_data):
    """A ×1e4 loss spike overflows the float16 gradients while the loss stays finite."""
    zeroed, zero_trainer = _one_step(scaled_data["standardized"], "mixed_float16", "unscaled", nonfinite="zero",
                                     spike=1e4)
    skipped, skip_trainer = _one_step(scaled_data["standardized"], "mixed_float16", "unscaled", spike=1e4)
    assert math.isfinite(zeroed["loss/total"])
    assert zeroed["guard/nonfinite"] == 1.0 == skipped["guard/nonfinite"]   # recorded either way
    assert float(zero_trainer.loss_scale.numpy()) == 2 ** 15 and zeroed["update/norm"] > 0   # upstream: applied
    assert float(skip_trainer.loss_scale.numpy()) == 2 ** 14 and skipped["update/norm"] == 0.0


def test_an_applied_float16_overflow_reaches_the_weights_where_the_scaler_would_have_skipped_it(scaled_data):
    applied, applied_trainer = _one_step(scaled_data["standardized"], "mixed_float16", "unscaled", spike=1e4,
                                         overflow="apply")
    skipped, _ = _one_step(scaled_data["standardized"], "mixed_float16", "unscaled", spike=1e4)
    assert applied["guard/nonfinite"] == 1.0 and applied["guard/skipped"] == 0.0 and skipped["guard/skipped"] == 1.0
    assert not all(np.isfinite(v.numpy()).all() for v in applied_trainer.model.trainable_variables)
    assert float(applied_trainer.loss_scale.numpy()) == 2 ** 14       # the scaler still saw the overflow


@pytest.mark.parametrize("softmax_dtype", ["float32", "compute"])
def test_inverted_mask_overflows_only_when_the_softmax_runs_in_float16(softmax_dtype):
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        make_deterministic(0)
        model = build_model(ModelSettings(attention_mask="inverted", softmax_dtype=softmax_dtype), 40)
        output = model(_batch(), training=False)["mel_output"].numpy()
    finally:
        keras.mixed_precision.set_global_policy("float32")
    # 1e-9 * 1e-9 added twice: +1e18 is finite in float32 but inf in float16 (max 65504).
    assert np.isfinite(output).all() == (softmax_dtype == "float32")


def test_qk_layernorm_bounds_the_initial_attention_logits_by_the_head_size():
    make_deterministic(0)
    model = build_model(ModelSettings(qk_norm=True), 40)
    attention = model.decoder_blocks[0].self_attention
    assert {"q_norm", "k_norm"} <= {w.path.split("/")[-2] for w in attention.weights}
    batch = _batch()
    batch["mel"] = batch["mel"] * 1e3   # large inputs: without the norms the logits would grow with them
    assert np.isfinite(model(batch, training=False)["mel_output"].numpy()).all()
    # With unit-gain norms |q.k| / sqrt(d) <= ||q|| ||k|| / sqrt(d) = sqrt(d) (plus the norms' epsilon).
    assert float(attention.max_logit.numpy()) <= np.sqrt(attention.head_dim) + 1e-3


def test_stop_z_loss_is_the_squared_log_partition_over_real_frames():
    logits = tf.constant([[0.0, 0.0, 50.0]])
    assert float(stop_z_loss(logits, tf.constant([2]))) == pytest.approx(np.log(2.0) ** 2)


def test_sgd_with_momentum_and_a_warmup_fraction():
    settings = OptimizerSettings(lr=0.3, name="sgd", momentum=0.5, warmup_fraction=0.1)
    optimizer = build_optimizer(settings, 300)
    assert isinstance(optimizer, keras.optimizers.SGD) and optimizer.momentum == 0.5
    schedule = build_schedule(settings, 300)
    assert float(schedule(0)) == pytest.approx(0.3 / 30) and float(schedule(29)) == pytest.approx(0.3)
    with pytest.raises(ValueError, match=r"optim\.warmup_fraction=0\.1 is invalid: allowed 0 when optim\.warmup_steps"):
        OptimizerSettings(warmup_steps=5, warmup_fraction=0.1)
