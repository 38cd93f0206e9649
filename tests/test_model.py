import keras
import numpy as np
import pytest

from myxtts.backend import tf
from myxtts.data.dataset import BatchStream, DataSettings, prepare_data
from myxtts.data.features import MelSpec, mel_to_audio
from myxtts.data.text import CharTokenizer
from myxtts.models.settings import PARAMETERS, UPSTREAM_PARAMETERS, UPSTREAM_SHAPES
from myxtts.models.xtts import SIZES, XTTSModel, build_model


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(0)
    return build_model("tiny", vocab_size=40)


def _inputs(batch=2, text=12, frames=20, seed=0):
    rng = np.random.default_rng(seed)
    return {"text": tf.constant(rng.integers(2, 40, (batch, text)), tf.int32),
            "text_lengths": tf.constant([text, text - 5][:batch], tf.int32),
            "mel": tf.constant(rng.normal(size=(batch, frames, 80)), tf.float32),
            "reference_mel": tf.constant(rng.normal(size=(batch, 16, 80)), tf.float32),
            "reference_lengths": tf.constant([16, 9][:batch], tf.int32)}


def test_outputs_and_shapes(model):
    out = model(_inputs())
    assert out["mel_output"].shape == out["postnet_output"].shape == (2, 20, 80)
    assert out["stop_logits"].shape == (2, 20)
    assert out["alignment"].shape == (2, 20, 12)
    assert out["latent_mean"].shape == out["latent_logvar"].shape == (2, SIZES["tiny"].latent_dim)
    assert 0.5e6 < model.count_params() < 1.5e6


@pytest.mark.parametrize("t", [0, 7, 15])
def test_decoder_is_causal(model, t):
    """Changing the target frame t+1 (decoder input at t+2) or any later one leaves outputs <= t untouched."""
    inputs = _inputs()
    changed = dict(inputs)
    mel = inputs["mel"].numpy().copy()
    mel[:, t + 1:] += 5.0
    changed["mel"] = tf.constant(mel)
    a, b = model(inputs), model(changed)
    for key in ("mel_output", "postnet_output", "stop_logits", "alignment"):
        np.testing.assert_allclose(a[key][:, :t + 2].numpy(), b[key][:, :t + 2].numpy(), atol=1e-5,
                                   err_msg=key)
        assert not np.allclose(a[key][:, t + 2:].numpy(), b[key][:, t + 2:].numpy())


def test_padded_text_gets_zero_attention_and_does_not_leak(model):
    inputs = _inputs()
    alignment = model(inputs)["alignment"].numpy()
    assert np.all(alignment[1, :, 7:] == 0.0)
    np.testing.assert_allclose(alignment.sum(axis=-1), 1.0, atol=1e-5)
    junk = dict(inputs)
    text = inputs["text"].numpy().copy()
    text[1, 7:] = 3
    junk["text"] = tf.constant(text)
    np.testing.assert_allclose(model(inputs)["mel_output"][1].numpy(), model(junk)["mel_output"][1].numpy(),
                               atol=1e-5)


def test_padded_reference_frames_do_not_change_the_latent(model):
    inputs = _inputs()
    junk = dict(inputs)
    reference = inputs["reference_mel"].numpy().copy()
    reference[1, 9:] = 100.0  # everything past reference length 9
    junk["reference_mel"] = tf.constant(reference)
    np.testing.assert_allclose(model(inputs)["latent_mean"][1].numpy(), model(junk)["latent_mean"][1].numpy(),
                               atol=1e-5)


def test_latent_is_sampled_in_training_and_mean_at_inference(model):
    inputs = _inputs()
    eval_a, eval_b = model(inputs)["mel_output"], model(inputs)["mel_output"]
    np.testing.assert_array_equal(eval_a.numpy(), eval_b.numpy())
    assert not np.allclose(model(inputs, training=True)["mel_output"].numpy(), eval_a.numpy())


def test_generate_stops_and_vocodes(model):
    inputs = _inputs(batch=1)
    mel, lengths = model.generate(inputs["text"], inputs["text_lengths"], inputs["reference_mel"],
                                  inputs["reference_lengths"], max_frames=24)
    assert mel.shape == (1, 24, 80) and 1 <= int(lengths[0]) <= 24
    assert np.all(mel.numpy()[0, int(lengths[0]):] == 0)
    audio = mel_to_audio(mel[0, :int(lengths[0])] * 0.1 - 5.0, MelSpec(), iterations=2)
    assert np.isfinite(audio.numpy()).all()


def test_unknown_size_is_named():
    with pytest.raises(ValueError, match=r"model\.size"):
        build_model("huge", vocab_size=40)


@pytest.mark.slow
def test_tiny_model_overfits_four_utterances(small_corpus, tmp_path):
    """Plain masked L1 + stop BCE, ~200 steps: the teacher-forced mel L1 must at least halve."""
    keras.utils.set_random_seed(0)
    data = prepare_data(DataSettings(small_corpus, tmp_path / "cache", validation_fraction=0.0))
    stream = BatchStream(data.train[:4], batch_size=4, seed=0, reference_frames=64, shuffle=False)
    batch = {k: tf.constant(v) for k, v in next(stream.iterate()).items()}
    model = XTTSModel(SIZES["tiny"], data.tokenizer.vocab_size)
    optimizer = keras.optimizers.Adam(1e-3)
    mask = tf.sequence_mask(batch["mel_lengths"], tf.shape(batch["mel"])[1], tf.float32)

    def mel_l1(output):
        per_frame = tf.reduce_mean(tf.abs(output - batch["mel"]), axis=-1)
        return tf.reduce_sum(per_frame * mask) / tf.reduce_sum(mask)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            out = model(batch, training=True)
            stop = tf.nn.sigmoid_cross_entropy_with_logits(batch["stop_target"], out["stop_logits"])
            loss = mel_l1(out["mel_output"]) + mel_l1(out["postnet_output"]) + \
                tf.reduce_sum(stop * mask) / tf.reduce_sum(mask)
        optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))
        return loss

    before = float(mel_l1(model(batch)["postnet_output"]))
    for _ in range(200):
        step()
    after = float(mel_l1(model(batch)["postnet_output"]))
    assert after <= 0.5 * before, (before, after)


def test_the_named_layer_list_is_the_first_part_of_every_weight_path(model):
    from myxtts.models.settings import SIZES, named_layers

    built = {v.path.removeprefix("xtts_model/").split("/")[0] for v in model.trainable_variables}
    assert built == set(named_layers(SIZES["tiny"]))


def test_a_fault_layer_the_model_lacks_is_refused_before_any_run():
    from myxtts.checks import SettingError
    from myxtts.training.settings import FaultSettings, TrainingSettings

    TrainingSettings(fault=FaultSettings("inf_weights", layer="decoder_block_1/ff_in"))
    with pytest.raises(SettingError, match=r"^fault.layer='nope' is invalid: allowed a weight path of the model"):
        TrainingSettings(fault=FaultSettings("inf_weights", layer="nope"))
    with pytest.raises(SettingError, match="decoder_block_2"):   # the tiny model has 2 decoder blocks
        TrainingSettings(fault=FaultSettings("inf_weights", layer="decoder_block_2/ff_in"))


@pytest.mark.parametrize("size", sorted(PARAMETERS))
def test_the_size_table_counts_what_the_builder_builds(size):
    assert build_model(size, vocab_size=CharTokenizer().vocab_size).count_params() == PARAMETERS[size]


@pytest.mark.parametrize("shape", sorted(UPSTREAM_SHAPES))
def test_the_upstream_shapes_predicted_by_the_size_axis_are_counted_by_the_same_builder(shape):
    model = build_model(UPSTREAM_SHAPES[shape], vocab_size=CharTokenizer().vocab_size)
    assert model.count_params() == UPSTREAM_PARAMETERS[shape]


def test_the_medium_size_builds_and_trains_a_step(small_corpus, tmp_path):
    """The size between small and base: one compiled AdamW step on two short utterances changes its weights
    and gives a finite loss."""
    data = prepare_data(DataSettings(small_corpus, tmp_path / "cache", validation_fraction=0.0))
    batch = next(BatchStream(data.train[:2], batch_size=2, seed=0, reference_frames=32, shuffle=False).iterate())
    batch = {k: tf.constant(v) for k, v in batch.items()}
    model = build_model("medium", data.tokenizer.vocab_size)
    assert 25e6 < model.count_params() < 35e6
    optimizer = keras.optimizers.AdamW(1e-4)
    before = [tf.identity(v) for v in model.trainable_variables]
    with tf.GradientTape() as tape:
        out = model(batch, training=True)
        loss = tf.reduce_mean(tf.abs(out["postnet_output"] - batch["mel"]))
    optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))
    assert np.isfinite(float(loss))
    assert any(not np.array_equal(b.numpy(), v.numpy()) for b, v in zip(before, model.trainable_variables))
