import numpy as np
import pytest
from scipy.signal import get_window

from myxtts.data.corpus_reader import load_audio
from myxtts.data.dataset import DataSettings, prepare_data
from myxtts.data.features import MelSpec, log_mel, mel_to_audio


def _hz_to_mel(hz):
    return 1127.0 * np.log1p(np.asarray(hz, np.float64) / 700.0)


def reference_log_mel(audio, spec: MelSpec):
    """NumPy/SciPy computation of the documented features, written independently of TensorFlow."""
    window = get_window("hann", spec.win_length, fftbins=True)
    n_frames = 1 + (len(audio) - spec.win_length) // spec.hop_length
    frames = np.stack([audio[i * spec.hop_length:i * spec.hop_length + spec.win_length] for i in range(n_frames)])
    magnitude = np.abs(np.fft.rfft(frames * window, n=spec.n_fft))
    bins = np.linspace(0, spec.sample_rate / 2, spec.n_fft // 2 + 1)[1:]  # the DC bin carries no mel weight
    edges = np.linspace(_hz_to_mel(spec.fmin), _hz_to_mel(spec.fmax), spec.n_mels + 2)
    lower, centre, upper = edges[:-2], edges[1:-1], edges[2:]
    mel_bins = _hz_to_mel(bins)[:, None]
    weights = np.maximum(0, np.minimum((mel_bins - lower) / (centre - lower), (upper - mel_bins) / (upper - centre)))
    weights = np.vstack([np.zeros((1, spec.n_mels)), weights])
    return np.log(np.maximum(magnitude @ weights, spec.log_floor))


def test_log_mel_matches_numpy_reference(small_corpus):
    audio, _ = load_audio(next((small_corpus / "wavs").iterdir()), 22050)
    spec = MelSpec()
    ours = log_mel(audio, spec).numpy()
    reference = reference_log_mel(audio.astype(np.float64), spec)
    assert ours.shape == reference.shape == (spec.frames(len(audio)), 80)
    loud = reference > np.log(1e-3)  # compare where float32 round-off is small relative to the value
    assert np.abs(ours - reference)[loud].max() < 2e-3
    assert np.abs(np.exp(ours) - np.exp(reference)).max() < 1e-3


def test_cache_is_reused_and_normalization_is_fit_on_train(tmp_path, small_corpus):
    settings = DataSettings(small_corpus, tmp_path / "cache", validation_fraction=0.25)
    first = prepare_data(settings)
    assert (first.features_computed, first.features_reused) == (16, 0)
    second = prepare_data(settings)
    assert (second.features_computed, second.features_reused) == (0, 16)
    train = np.concatenate([e.mel for e in second.train])
    assert np.allclose(train.mean(axis=0), 0, atol=1e-3) and np.allclose(train.std(axis=0), 1, atol=1e-2)
    assert (second.cache_directory / "stats.json").is_file() and (second.cache_directory / "symbols.json").is_file()
    other = prepare_data(DataSettings(small_corpus, tmp_path / "cache"), MelSpec(n_mels=40))
    assert other.features_computed == 16 and other.train[0].mel.shape[1] == 40


def test_griffin_lim_returns_audio_of_the_right_length(small_corpus):
    audio, _ = load_audio(next((small_corpus / "wavs").iterdir()), 22050)
    spec = MelSpec()
    mel = log_mel(audio, spec)
    rebuilt = mel_to_audio(mel, spec, iterations=8).numpy()
    assert np.isfinite(rebuilt).all()
    assert abs(len(rebuilt) - len(audio)) < spec.win_length
    assert reference_log_mel(rebuilt.astype(np.float64), spec).shape[0] >= mel.shape[0] - 4


@pytest.mark.parametrize("field, value", [("win_length", 2048), ("fmax", 12000.0), ("log_floor", 0.0)])
def test_bad_feature_parameters_name_the_key(field, value):
    with pytest.raises(ValueError, match=field.split("_")[0]):
        MelSpec(**{field: value})


def test_a_corrupt_cache_entry_is_recomputed_with_a_warning_and_never_trained_on(tmp_path, small_corpus):
    settings = DataSettings(small_corpus, tmp_path / "cache", validation_fraction=0.25)
    clean = prepare_data(settings)
    directory = next((tmp_path / "cache").glob("mels-*"))
    entries = sorted(directory.glob("*.npy"))
    assert len(entries) == 16 and all(e.with_suffix(".sha256").is_file() for e in entries)
    # Overwrite the data bytes of one entry, its .npy header kept: it still loads, with wrong values.
    content = bytearray(entries[0].read_bytes())
    content[-400:] = np.full(100, np.nan, np.float32).tobytes()
    entries[0].write_bytes(bytes(content))
    with pytest.warns(UserWarning, match=f"feature cache entry .*{entries[0].name} is corrupt .*recomputed"):
        again = prepare_data(settings)
    assert (again.features_computed, again.features_reused) == (1, 15)
    for before, after in zip(clean.train + clean.validation, again.train + again.validation):
        np.testing.assert_array_equal(before.mel, after.mel)
    assert np.isfinite(np.load(entries[0])).all()
    assert prepare_data(settings).features_reused == 16   # repaired for good
