import math

import numpy as np
import pytest

from myxtts.backend import tf
from myxtts.data.dataset import BatchStream, DataSettings, prepare_data
from myxtts.models.xtts import build_model
from myxtts.training.losses import XTTSLoss
from myxtts.training.optim import OptimizerSettings, WarmupSchedule
from myxtts.training.settings import FaultSettings, GuardSettings
from myxtts.training import trainer as trainer_module
from myxtts.training.trainer import Trainer, TrainerSettings, make_deterministic


@pytest.fixture(scope="module")
def data(small_corpus, tmp_path_factory):
    with pytest.warns(UserWarning, match="over data.max_seconds=4.0"):  # short utterances keep steps cheap
        return prepare_data(DataSettings(small_corpus, tmp_path_factory.mktemp("cache"), validation_fraction=0.25,
                                         max_seconds=4.0))


class Recorder:
    def __init__(self):
        self.steps, self.validations = {}, {}

    def on_step(self, step, metrics):
        self.steps[step] = metrics

    def on_validation(self, step, metrics):
        self.validations[step] = metrics

    def on_checkpoint(self, step):
        pass


def make_trainer(data, steps=6, weighting="stable", skip=True, clip=1.0, fault=None, checkpoint_dir=None,
                 accumulation=1, lr=1e-3, patience=10, validate_every=0, seed=0, checkpoint_every=100):
    make_deterministic(seed)
    model = build_model("tiny", data.tokenizer.vocab_size)
    loss = XTTSLoss(mel_loss_weight=2.5, kl_loss_weight=1.0, attention_loss_weight=1.0, weighting=weighting)
    recorder = Recorder()
    trainer = Trainer(model, loss, OptimizerSettings(lr=lr, clip_norm=clip, accumulation_steps=accumulation),
                      GuardSettings(nonfinite="skip" if skip else "propagate", divergence_patience=patience),
                      TrainerSettings(steps=steps, validate_every=validate_every, checkpoint_every=checkpoint_every),
                      BatchStream(data.train, 2, seed, 32), BatchStream(data.validation, 2, 0, 32, shuffle=False,
                                                                        drop_remainder=False),
                      checkpoint_dir=checkpoint_dir, callbacks=[recorder], fault=fault or FaultSettings())
    return trainer, recorder


def _state(trainer):
    return [v.numpy().copy() for v in trainer.model.variables] + \
        [v.numpy().copy() for v in trainer.optimizer.variables]


def test_nan_batch_with_skip_leaves_weights_and_slots_bit_identical(data):
    trainer, _ = make_trainer(data)
    batches = trainer.train_stream.iterate()
    to_tensors = lambda b: {k: tf.constant(v) for k, v in b.items()}  # noqa: E731
    trainer._train_step(to_tensors(next(batches)), tf.constant(1.0))
    before = _state(trainer)
    broken = next(batches)
    broken["mel"] = np.full_like(broken["mel"], np.nan)
    values = dict(zip(trainer.metric_names, trainer._train_step(to_tensors(broken), tf.constant(1.0)).numpy()))
    assert values["guard/skipped"] == 1.0 and values["guard/nonfinite"] == 1.0
    after = _state(trainer)
    # The only variables allowed to move are the dropout seed states (they advance every forward pass) and
    # the attentions' largest-logit records.
    moved = [v.path for v, a, b in zip(trainer.model.variables, before, after) if not np.array_equal(a, b)]
    assert all("seed_generator" in path or "max_logit" in path for path in moved)  # RNG and diagnostics state
    for a, b in zip(before[len(trainer.model.variables):], after[len(trainer.model.variables):]):
        np.testing.assert_array_equal(a, b)
    values = dict(zip(trainer.metric_names, trainer._train_step(to_tensors(next(batches)), tf.constant(1.0)).numpy()))
    assert np.isfinite(values["loss/total"]) and values["guard/skipped"] == 0.0


def test_nan_batch_without_skip_propagates_and_the_run_diverges(data):
    trainer, recorder = make_trainer(data, steps=12, skip=False, fault=FaultSettings("nan_batch", step=2), patience=3)
    result = trainer.fit()
    assert result.outcome == "diverged" and result.diverged_at_step == 4
    assert result.first_nonfinite_step == 2
    assert any(np.isnan(v.numpy()).any() for v in trainer.model.trainable_variables)
    assert sorted(recorder.steps) == [0, 1, 2, 3, 4]


def test_guarded_run_survives_nan_batch_and_spike(data, tmp_path):
    trainer, recorder = make_trainer(data, steps=8, fault=FaultSettings("nan_batch", step=3))
    result = trainer.fit()
    assert result.outcome == "stable" and result.skipped_steps == 1 and result.first_nonfinite_step == 3
    assert all(np.isfinite(v.numpy()).all() for v in trainer.model.trainable_variables)
    assert recorder.steps[7]["guard/skipped_total"] == 1.0
    assert recorder.validations and np.isfinite(result.best_validation)
    metrics = recorder.steps[0]
    for key in ("raw/mel", "weighted/mel", "weight/mel", "raw/stop", "weight/kl", "grad/norm", "grad/norm_clipped",
                "lr", "guard/spike", "weighting/decision"):
        assert key in metrics
    assert metrics["grad/norm_clipped"] <= 1.0 + 1e-5 and metrics["grad/norm"] > 0
    # The stable strategy sees the trainer's real global norm (before clipping) of the previous step.
    assert float(trainer.loss.last_gradient_norm.numpy()) == pytest.approx(recorder.steps[7]["grad/norm"], rel=1e-6)
    last = recorder.steps[7]
    assert last["grad/norm_clipped"] == pytest.approx(min(last["grad/norm"], 1.0), rel=1e-5)


def test_resume_equals_uninterrupted_and_same_seed_same_metrics(data, tmp_path):
    full, full_steps = make_trainer(data, steps=6, checkpoint_dir=tmp_path / "full")
    full.fit()
    again, again_steps = make_trainer(data, steps=6)
    again.fit()
    assert full_steps.steps[5]["loss/total"] == again_steps.steps[5]["loss/total"]
    assert all(full_steps.steps[s] == again_steps.steps[s] for s in range(6))
    interrupted, _ = make_trainer(data, steps=3, checkpoint_dir=tmp_path / "resumed")
    interrupted.fit()
    resumed, resumed_steps = make_trainer(data, steps=6, checkpoint_dir=tmp_path / "resumed", seed=0)
    result = resumed.fit()
    assert result.resumed_from_step == 3 and sorted(resumed_steps.steps) == [3, 4, 5]
    for step in (3, 4, 5):
        for key, value in full_steps.steps[step].items():
            assert resumed_steps.steps[step][key] == pytest.approx(value, rel=1e-5, abs=1e-6), (step, key)


@pytest.mark.parametrize("weighting", ["gradnorm", "uncertainty", "dwa", "legacy_tanh"])
def test_every_strategy_trains_and_reports_effective_weights(data, weighting):
    trainer, recorder = make_trainer(data, steps=3, weighting=weighting)
    result = trainer.fit()
    assert result.outcome == "stable"
    last = recorder.steps[2]
    assert all(np.isfinite(last[f"weight/{t}"]) for t in ("mel", "stop", "kl", "attention"))
    if weighting == "gradnorm":
        assert last["weighting/shared_grad_norm_mel"] > 0
    if weighting == "uncertainty":
        assert last["weight/stop"] != 1.0  # ½e^{-s}: learned, not the base weight


def test_gradient_accumulation_updates_every_n_steps(data):
    trainer, _recorder = make_trainer(data, steps=4, accumulation=2)
    trainer.fit()
    assert int(trainer.optimizer.iterations.numpy()) == 2


def test_schedules():
    warm = WarmupSchedule(1e-3, "noam", warmup_steps=10, total_steps=100)
    assert float(warm(0)) == pytest.approx(1e-4) and float(warm(9)) == pytest.approx(1e-3)
    assert float(warm(39)) == pytest.approx(1e-3 * 0.5)
    cosine = WarmupSchedule(1e-3, "cosine", warmup_steps=10, total_steps=110)
    assert float(cosine(59)) == pytest.approx(0.5e-3, rel=1e-3) and float(cosine(109)) == pytest.approx(0.0, abs=1e-9)
    assert float(WarmupSchedule(1e-3, "constant", 0, 10)(5)) == pytest.approx(1e-3)


@pytest.mark.parametrize("kwargs, key", [({"lr": 0.0}, "optim.lr"), ({"clip_norm": 0.0}, "optim.clip_norm"),
                                         ({"schedule": "step"}, "optim.schedule")])
def test_bad_optimizer_settings_name_the_key(kwargs, key):
    with pytest.raises(ValueError, match=key):
        OptimizerSettings(**kwargs)


def test_every_step_is_in_the_store_before_a_checkpoint_of_it_is_written(data, tmp_path):
    """A run resumed from a checkpoint continues after it: had the metrics of the steps before it still
    been in the buffer, a kill between the two would leave them out of the record for good."""
    from runner.tracking import MetricBuffer, ensure_store

    client = ensure_store(f"sqlite:///{tmp_path / 'm.db'}")
    run_id = client.create_run(client.create_experiment("x")).info.run_id
    trainer, _ = make_trainer(data, steps=6, checkpoint_dir=tmp_path / "ckpt", checkpoint_every=4)
    seen = {}

    class Store:  # after the buffer: what the store holds when each checkpoint is written
        def on_step(self, step, metrics):
            pass

        def on_validation(self, step, metrics):
            pass

        def on_checkpoint(self, step):
            seen[step] = sorted(m.step for m in client.get_metric_history(run_id, "loss/total"))

    trainer.callbacks = (MetricBuffer(client, run_id, flush_every=7), Store())
    trainer.fit()
    assert seen == {4: [0, 1, 2, 3], 6: [0, 1, 2, 3, 4, 5]}


def test_a_truncated_checkpoint_falls_back_to_the_one_before_it_then_to_step_0(data, tmp_path):
    first, _ = make_trainer(data, steps=4, checkpoint_dir=tmp_path, checkpoint_every=2)
    first.fit()
    assert [p.rsplit("-", 1)[1] for p in first.manager.checkpoints] == ["2", "4"]
    newest = next(tmp_path.glob("ckpt-4.data-*"))
    newest.write_bytes(newest.read_bytes()[:100])                      # a kill -9 during the write
    resumed, recorder = make_trainer(data, steps=6, checkpoint_dir=tmp_path)
    with pytest.warns(UserWarning, match="checkpoint .*ckpt-4 is unreadable"):
        result = resumed.fit()
    assert result.resumed_from_step == 2 and sorted(recorder.steps) == [2, 3, 4, 5]
    for path in tmp_path.glob("ckpt-*.data-*"):
        path.write_bytes(b"")
    again, recorder = make_trainer(data, steps=3, checkpoint_dir=tmp_path)
    with pytest.warns(UserWarning, match="is unreadable"):
        result = again.fit()
    assert result.resumed_from_step == 0 and sorted(recorder.steps) == [0, 1, 2]


def test_the_step_pieces_clip_count_and_refuse_as_configured(data):
    """The training step's named pieces, each on its own: clipping gives the true and the clipped norm,
    a non-finite step is refused under skip and allowed otherwise, accumulation holds gradients until ready."""
    trainer, _ = make_trainer(data, clip=1.0)
    gradients = [tf.fill(tf.shape(v), 3.0) for v in trainer.variables]
    true_norm = float(tf.linalg.global_norm(gradients))
    clipped, norm, clipped_norm = trainer._clip(gradients, tf.constant(1.0))
    assert float(norm) == pytest.approx(true_norm) and float(clipped_norm) == pytest.approx(1.0, rel=1e-5)
    assert float(tf.linalg.global_norm(clipped)) == pytest.approx(1.0, rel=1e-5)
    finite, broken = tf.constant(True), tf.constant(False)
    assert bool(trainer._allowed(finite, finite, tf.constant(True)))
    assert not bool(trainer._allowed(broken, broken, tf.constant(True)))
    propagating, _ = make_trainer(data, skip=False)
    assert bool(propagating._allowed(broken, broken, tf.constant(True)))
    assert bool(trainer_module._all_finite([tf.ones(2)]))
    assert not bool(trainer_module._all_finite([tf.ones(2), tf.constant([1.0, math.nan])]))
    accumulating, _ = make_trainer(data, accumulation=2)
    held, ready = accumulating._accumulate(gradients)
    assert not bool(ready)  # step 0 of 2: the mean so far is kept, the raw gradient is passed on unapplied
    assert float(tf.linalg.global_norm(held)) == pytest.approx(true_norm)
