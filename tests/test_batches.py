import numpy as np
import pytest

from myxtts.data.dataset import BatchStream, DataSettings, prepare_data


@pytest.fixture(scope="module")
def prepared(small_corpus, tmp_path_factory):
    return prepare_data(DataSettings(small_corpus, tmp_path_factory.mktemp("cache"), validation_fraction=0.25))


def _take(iterator, n):
    return [next(iterator) for _ in range(n)]


def test_batches_are_padded_with_lengths_and_stop_targets(prepared):
    stream = BatchStream(prepared.train, batch_size=4, seed=0, reference_frames=32)
    batch = next(stream.iterate())
    lengths = batch["mel_lengths"]
    assert batch["mel"].shape[1] % BatchStream.FRAME_MULTIPLE == 0 and batch["mel"].shape[1] >= lengths.max()
    for row, length in enumerate(lengths):
        assert np.all(batch["mel"][row, length:] == 0)
        assert np.all(batch["stop_target"][row, :length - 1] == 0) and batch["stop_target"][row, length - 1] == 1
        text_length = batch["text_lengths"][row]
        assert batch["text"][row, text_length - 1] == 1 and np.all(batch["text"][row, text_length:] == 0)
        assert 1 <= batch["reference_lengths"][row] <= 32


def test_reference_mel_comes_from_another_utterance_of_the_same_speaker(prepared):
    stream = BatchStream(prepared.train, batch_size=4, seed=0, reference_frames=10_000)
    order = stream.epoch_batches(0)[0]
    batch = stream.make_batch(order, epoch=0, position=0)
    for row, index in enumerate(order):
        reference = batch["reference_mel"][row, :batch["reference_lengths"][row]]
        speaker = prepared.train[index].speaker
        matches = [i for i, e in enumerate(prepared.train) if e.mel.shape == reference.shape
                   and np.array_equal(e.mel, reference)]
        assert matches and all(prepared.train[i].speaker == speaker for i in matches) and index not in matches


def test_same_seed_same_batches_and_resume_from_any_step(prepared):
    stream = BatchStream(prepared.train, batch_size=4, seed=7, reference_frames=32)
    full = _take(stream.iterate(), 7)
    again = _take(BatchStream(prepared.train, batch_size=4, seed=7, reference_frames=32).iterate(), 7)
    resumed = _take(stream.iterate(start_step=4), 3)
    for a, b in zip(full, again):
        assert all(np.array_equal(a[k], b[k]) for k in a)
    for a, b in zip(full[4:], resumed):
        assert all(np.array_equal(a[k], b[k]) for k in a)
    other = next(BatchStream(prepared.train, batch_size=4, seed=8, reference_frames=32).iterate())
    assert not np.array_equal(other["mel_lengths"], full[0]["mel_lengths"]) or \
        not np.array_equal(other["text"], full[0]["text"])


def test_every_training_example_appears_once_per_epoch(prepared):
    stream = BatchStream(prepared.train, batch_size=4, seed=0, reference_frames=32)
    seen = sorted(i for batch in stream.epoch_batches(3) for i in batch)
    assert len(seen) == stream.batches_per_epoch * 4 and len(set(seen)) == len(seen)


def test_tf_data_stream_matches_the_generator(prepared):
    stream = BatchStream(prepared.validation, batch_size=3, seed=0, reference_frames=32, shuffle=False,
                         drop_remainder=False)
    batches = list(stream.dataset(epochs=1).as_numpy_iterator())
    assert sum(len(b["mel_lengths"]) for b in batches) == len(prepared.validation)
    assert np.array_equal(batches[0]["mel"], next(stream.iterate())["mel"])


def test_bad_batch_size_is_named():
    from myxtts.training.settings import TrainerSettings  # the one place trainer.batch_size is checked

    with pytest.raises(ValueError, match=r"trainer.batch_size=0 is invalid: allowed an integer >= 1"):
        TrainerSettings(batch_size=0)
