"""Per-layer signals against a direct eager computation, and the NaN-origin replay on deliberate faults."""
import dataclasses
import json
import math

import numpy as np
import pytest

from myxtts.backend import tf
from myxtts.data.dataset import BatchStream, DataSettings, prepare_data
from myxtts.models.xtts import SIZES, build_model
from myxtts.training.diagnostics import DiagnosticsSettings, layer_group
from myxtts.training.losses import XTTSLoss
from myxtts.training.optim import OptimizerSettings
from myxtts.training.settings import FaultSettings, GuardSettings
from myxtts.training.trainer import Trainer, TrainerSettings, _targets, make_deterministic


@pytest.fixture(scope="module")
def data(small_corpus, tmp_path_factory):
    with pytest.warns(UserWarning, match="over data.max_seconds=4.0"):
        return prepare_data(DataSettings(small_corpus, tmp_path_factory.mktemp("cache"), validation_fraction=0.25,
                                         max_seconds=4.0))


def _trainer(data, steps=6, fault=None, checkpoint_dir=None, every=1, size="tiny", lr=1e-3, clip=1.0):
    make_deterministic(0)
    model = build_model(size, data.tokenizer.vocab_size)
    loss = XTTSLoss(mel_loss_weight=2.5, kl_loss_weight=1.0, attention_loss_weight=1.0, weighting="none",
                    spike_dampening=False)
    return Trainer(model, loss, OptimizerSettings(lr=lr, clip_norm=clip),
                   GuardSettings(nonfinite="propagate", divergence_patience=3),
                   TrainerSettings(steps=steps, checkpoint_every=2), BatchStream(data.train, 2, 0, 32), None,
                   checkpoint_dir=checkpoint_dir, fault=fault or FaultSettings(),
                   diagnostics=DiagnosticsSettings(every=every))


def test_signals_match_a_direct_eager_computation(data):
    size = dataclasses.replace(SIZES["tiny"], dropout=0.0, prenet_dropout=0.0)   # no dropout: one exact forward
    trainer = _trainer(data, size=size)
    model, loss = trainer.model, trainer.loss
    batch = {k: tf.constant(v) for k, v in next(trainer.train_stream.iterate()).items()}
    state = [v.numpy().copy() for v in model.variables + list(loss.variables)]
    vector = trainer._train_step(batch, tf.constant(1.0)).numpy().tolist()   # traces: names the vector
    values = dict(zip(trainer.metric_names, vector))
    after = [v.numpy().copy() for v in model.trainable_variables]
    for variable, value in zip(model.variables + list(loss.variables), state):
        variable.assign(value)
    before = [v.numpy() for v in model.trainable_variables]

    with tf.GradientTape() as tape:
        outputs = model(batch, training=True)
        total, _ = loss.compute(_targets(batch), outputs, raw_scale=tf.constant(1.0))
    gradients = tape.gradient(total, model.trainable_variables)
    paths = [v.path for v in model.trainable_variables]
    for group in {layer_group(p) for p in paths}:
        members = [i for i, p in enumerate(paths) if layer_group(p) == group]
        grad = math.sqrt(sum(float(tf.reduce_sum(tf.square(gradients[i]))) for i in members))
        moved = math.sqrt(sum(float(np.sum((after[i] - before[i]) ** 2)) for i in members))
        size_ = math.sqrt(sum(float(np.sum(before[i] ** 2)) for i in members))
        assert values[f"diag/grad/{group}"] == pytest.approx(grad, rel=1e-4), group
        assert values[f"diag/update_ratio/{group}"] == pytest.approx(moved / size_, rel=1e-3), group
    assert values["diag/activation/mel_head"] == pytest.approx(float(tf.reduce_max(tf.abs(outputs["mel_output"]))),
                                                               rel=1e-5)
    assert values["diag/activation/stop_head"] == pytest.approx(float(tf.reduce_max(tf.abs(outputs["stop_logits"]))),
                                                                rel=1e-5)
    # The first encoder block's self-attention logits, computed by hand from the embedding.
    block, layer = model.text_blocks[0], model.text_blocks[0].self_attention
    length = tf.shape(batch["text"])[1]
    from myxtts.models.xtts import length_mask, positional_encoding

    x = model.embedding(batch["text"]) * math.sqrt(size.text_dim) + positional_encoding(length, size.text_dim)
    h = block.self_norm(x)
    q, k = layer._split(layer.query(h)), layer._split(layer.key(h))
    logits = tf.matmul(q, k, transpose_b=True) / math.sqrt(layer.head_dim)
    allowed = tf.tile(length_mask(batch["text_lengths"], length)[:, None, :], [1, length, 1])[:, None]
    expected = float(tf.reduce_max(tf.where(allowed, logits, -np.inf)))
    assert values["diag/attention/text_block_0/self"] == pytest.approx(expected, rel=1e-5)
    assert {f"diag/attention/{b}" for b in ("text_block_0/self", "text_block_1/self", "decoder_block_0/self",
                                            "decoder_block_0/cross", "decoder_block_1/self",
                                            "decoder_block_1/cross")} <= set(values)


def test_signals_are_handed_out_every_n_steps_and_off_at_zero(data):
    class Recorder:
        def __init__(self):
            self.steps = {}

        def on_step(self, step, metrics):
            self.steps[step] = metrics

        def on_validation(self, step, metrics):
            pass

        def on_checkpoint(self, step):
            pass

    trainer = _trainer(data, steps=5, every=2)
    recorder = Recorder()
    trainer.callbacks.append(recorder)
    trainer.fit()
    with_signals = sorted(s for s, m in recorder.steps.items() if "diag/grad/heads" in m)
    assert with_signals == [0, 2, 4]
    off = _trainer(data, steps=1, every=0)
    off.fit()
    assert not any(name.startswith("diag/") for name in off.metric_names)


def test_origin_replay_names_the_layer_whose_weights_were_broken(data, tmp_path):
    trainer = _trainer(data, steps=6, checkpoint_dir=tmp_path,
                       fault=FaultSettings("inf_weights", step=3, layer="decoder_block_1/ff_out"))
    result = trainer.fit()
    assert result.first_bad_step == 3
    origin = trainer.find_nan_origin()
    assert (origin["step"], origin["checkpoint_step"], origin["replayed_steps"]) == (3, 2, 1)
    assert origin["layer"] == "decoder_block_1/ff_out" and origin["op"].startswith("weights")
    json.dumps(origin)  # the artifact's content


def test_origin_replay_finds_the_first_layer_a_nan_batch_reaches(data, tmp_path):
    """NaN mels enter the decoder through its prenet (the reference encoder sees other frames)."""
    trainer = _trainer(data, steps=5, checkpoint_dir=tmp_path, fault=FaultSettings("nan_batch", step=2))
    result = trainer.fit()
    assert result.first_bad_step == 2
    origin = trainer.find_nan_origin()
    assert origin["step"] == 2 and origin["layer"] == "prenet_0" and origin["op"] == "Dense + ReLU"
    finite = [r["layer"] for r in origin["layers"] if r["finite"]]
    assert "text_block_0/self_attention" in finite        # the text encoder ran before and stayed finite


def test_a_huge_learning_rate_without_clipping_is_traced_to_a_layer(data, tmp_path):
    """An unstable configuration, not an injected fault: whatever layer the replay names must exist in the
    model, and the replayed step is the run's first non-finite one."""
    trainer = _trainer(data, steps=30, checkpoint_dir=tmp_path, lr=1e4, clip=None)
    result = trainer.fit()
    if result.first_bad_step is None:
        pytest.fail("lr 1e4 without clipping stayed finite for 30 steps")
    origin = trainer.find_nan_origin()
    assert origin["step"] == result.first_bad_step
    layers = {v.path.removeprefix("xtts_model/").rsplit("/", 1)[0] for v in trainer.model.trainable_variables}
    watched = {r["layer"] for r in origin["layers"]}
    assert origin["layer"] in layers | watched | {"loss"}, origin


def test_a_stable_run_has_no_origin(data, tmp_path):
    trainer = _trainer(data, steps=3, checkpoint_dir=tmp_path)
    result = trainer.fit()
    assert result.first_bad_step is None and trainer.find_nan_origin() is None


def test_bad_diagnostics_interval_is_one_line():
    with pytest.raises(ValueError, match=r"diagnostics.every=-1 is invalid: allowed an integer >= 0"):
        DiagnosticsSettings(every=-1)
