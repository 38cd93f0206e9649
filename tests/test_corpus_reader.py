import shutil
import wave

import numpy as np
import pytest

from myxtts.data.corpus_reader import CorpusError, SkipReport, load_audio, read_metadata, split_utterances
from myxtts.data.dataset import DataSettings, prepare_data


def _write_wav(path, samples, rate, channels=1):
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(channels)
        handle.setsampwidth(2)
        handle.setframerate(rate)
        handle.writeframes(np.asarray(samples, "<i2").tobytes())


@pytest.fixture
def broken_corpus(tmp_path, small_corpus):
    root = tmp_path / "broken"
    shutil.copytree(small_corpus, root)
    lines = (root / "metadata.csv").read_text(encoding="utf-8").splitlines()
    ids = [line.split("|")[0] for line in lines]
    (root / "wavs" / f"{ids[0]}.wav").unlink()                                # missing
    (root / "wavs" / f"{ids[1]}.wav").write_bytes(b"")                        # empty
    (root / "wavs" / f"{ids[2]}.wav").write_bytes(b"RIFF\x00\x01garbage" * 7)  # corrupt
    (root / "wavs" / f"{ids[3]}.wav").write_text("this is not audio at all")  # non-audio
    _write_wav(root / "wavs" / f"{ids[4]}.wav", np.zeros(22050 * 12), 22050)   # over max length
    extra = [b"LONE-0001||", "BAD-0001|caf\u00e9|caf\u00e9".encode("latin-1")]  # empty text, non-UTF-8
    (root / "metadata.csv").write_bytes("\n".join(lines).encode() + b"\n" + b"\n".join(extra) + b"\n")
    return root, ids


def test_broken_files_are_skipped_counted_and_named(tmp_path, broken_corpus):
    root, ids = broken_corpus
    with pytest.warns(UserWarning, match=r"skipped 7 utterances") as caught:
        data = prepare_data(DataSettings(root, tmp_path / "cache", max_seconds=10.0, validation_fraction=0.2))
    message = str(caught[0].message)
    for name in [*ids[:5], "LONE-0001", "line 18"]:
        assert name in message
    reasons = data.skipped.reasons
    assert reasons["missing wav files"] == [ids[0]]
    assert reasons["empty wav files"] == [ids[1]]
    assert sorted(reasons["corrupt or non-audio wav files"]) == sorted(ids[2:4])
    assert reasons["utterances over data.max_seconds=10.0"] == [ids[4]]
    assert len(data.train) + len(data.validation) == 11


def test_missing_directory_and_metadata_name_the_path(tmp_path):
    with pytest.raises(CorpusError, match=str(tmp_path / "nowhere")):
        read_metadata(tmp_path / "nowhere", SkipReport())
    (tmp_path / "empty").mkdir()
    with pytest.raises(CorpusError, match=r"metadata\.csv is missing"):
        read_metadata(tmp_path / "empty", SkipReport())


def test_nothing_usable_is_a_clear_error(tmp_path):
    root = tmp_path / "dead"
    (root / "wavs").mkdir(parents=True)
    (root / "metadata.csv").write_text("A-1|hello|hello\nA-2|world|world\n")
    with pytest.raises(CorpusError, match="no usable utterance"), pytest.warns(UserWarning):
        prepare_data(DataSettings(root, tmp_path / "cache"))


def test_other_rates_are_resampled_and_stereo_mixed_down(tmp_path):
    t = np.arange(44100) / 44100
    tone = (0.5 * np.sin(2 * np.pi * 440 * t) * 32767).astype(np.int16)
    _write_wav(tmp_path / "stereo.wav", np.stack([tone, tone], axis=1).reshape(-1), 44100, channels=2)
    samples, _ = load_audio(tmp_path / "stereo.wav", 22050)
    assert samples.ndim == 1 and abs(len(samples) - 22050) <= 1
    spectrum = np.abs(np.fft.rfft(samples))
    assert abs(np.argmax(spectrum) * 22050 / len(samples) - 440) < 2
    assert 0.45 < np.abs(samples).max() < 0.55


def test_speaker_column_and_speakers_csv(tmp_path):
    root = tmp_path / "multi"
    (root / "wavs").mkdir(parents=True)
    (root / "metadata.csv").write_text("A-1|one|one|alice\nA-2|two|two\nA-3|three|three\n")
    (root / "speakers.csv").write_text("id,speaker\nA-2,bob\n")
    speakers = {u.id: u.speaker for u in read_metadata(root, SkipReport())}
    assert speakers == {"A-1": "alice", "A-2": "bob", "A-3": "speaker0"}


def test_split_is_deterministic_by_seed(small_corpus):
    utterances = read_metadata(small_corpus, SkipReport())
    def validation_ids(items, seed):
        return {u.id for u in split_utterances(items, 0.25, seed)[1]}

    assert len(validation_ids(utterances, 3)) == 4
    assert validation_ids(utterances, 3) == validation_ids(list(reversed(utterances)), 3)
    assert validation_ids(utterances, 3) != validation_ids(utterances, 4)
    with pytest.raises(ValueError, match=r"data.validation_fraction=1.0 is invalid: allowed a number in \[0, 1\)"):
        DataSettings(small_corpus, validation_fraction=1.0)  # the one place the fraction is checked


def test_ids_that_leave_the_corpus_and_absurd_audio_are_skipped_and_counted(tmp_path, small_corpus):
    from scipy.io import wavfile

    root = tmp_path / "hostile"
    shutil.copytree(small_corpus, root)
    outside = tmp_path / "secret.wav"
    _write_wav(outside, np.zeros(22050), 22050)
    lines = (root / "metadata.csv").read_text(encoding="utf-8").splitlines()
    first = lines[0].split("|")[0]
    rate, samples = wavfile.read(root / "wavs" / f"{first}.wav")
    wavfile.write(root / "wavs" / f"{first}.wav", rate, samples.astype(np.float32) * 1e30)   # absurd gain
    hostile = ["../../secret|text|text", f"{outside.with_suffix('')}|text|text", "sub/../../secret|text|text"]
    (root / "metadata.csv").write_text("\n".join(lines + hostile) + "\n", encoding="utf-8")
    report = SkipReport()
    kept = read_metadata(root, report)
    assert sorted(report.reasons["ids outside data.path/wavs"]) == sorted(line.split("|")[0] for line in hostile)
    assert all(u.wav_path.parent == root / "wavs" for u in kept)
    with pytest.warns(UserWarning, match=r"samples far outside \[-1, 1\]"):
        data = prepare_data(DataSettings(root, tmp_path / "cache", max_seconds=10.0, validation_fraction=0.2))
    assert data.skipped.reasons["wav files with samples far outside [-1, 1] (peak > 2)"] == [first]
    assert first not in {u.id for u in data.train + data.validation}
