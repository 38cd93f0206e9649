"""Log-mel features in TensorFlow, their on-disk cache, and the way back to audio (Griffin-Lim).

Choice of features (fixed by the study so every configuration sees the same inputs):
- 22050 Hz audio, STFT with a periodic Hann window of 1024 samples, hop 256, FFT size 1024, no centre
  padding (frames = 1 + (samples - 1024) // 256, so frame t covers samples [256 t, 256 t + 1024));
- magnitude (not power) spectrum projected on 80 triangular HTK-mel bands between 0 and 8000 Hz
  (tf.signal.linear_to_mel_weight_matrix, DC bin excluded);
- natural log with a floor of 1e-5 so silence stays finite (log 1e-5 ≈ -11.5);
- then each mel channel is standardised with the training set's mean and std. The model works in that
  standardised space; the statistics are stored with the cache so audio can be recovered.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from myxtts.backend import tf


@dataclass(frozen=True)
class MelSpec:
    sample_rate: int = 22050
    n_fft: int = 1024
    hop_length: int = 256
    win_length: int = 1024
    n_mels: int = 80
    fmin: float = 0.0
    fmax: float = 8000.0
    log_floor: float = 1e-5

    def __post_init__(self) -> None:
        if self.win_length > self.n_fft:
            raise ValueError(f"data.features.win_length: must be <= n_fft ({self.n_fft}), got {self.win_length}")
        if not 0 <= self.fmin < self.fmax <= self.sample_rate / 2:
            raise ValueError(f"data.features.fmin/fmax: need 0 <= fmin < fmax <= {self.sample_rate / 2}, "
                             f"got {self.fmin}/{self.fmax}")
        if self.log_floor <= 0:
            raise ValueError(f"data.features.log_floor: must be > 0, got {self.log_floor}")

    @property
    def key(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:16]

    def mel_matrix(self) -> tf.Tensor:
        return tf.signal.linear_to_mel_weight_matrix(
            num_mel_bins=self.n_mels, num_spectrogram_bins=self.n_fft // 2 + 1,
            sample_rate=self.sample_rate, lower_edge_hertz=self.fmin, upper_edge_hertz=self.fmax)

    def frames(self, n_samples: int) -> int:
        return max(0, 1 + (n_samples - self.win_length) // self.hop_length)


def _stft(audio: tf.Tensor, spec: MelSpec) -> tf.Tensor:
    return tf.signal.stft(audio, frame_length=spec.win_length, frame_step=spec.hop_length,
                          fft_length=spec.n_fft, window_fn=tf.signal.hann_window, pad_end=False)


def log_mel(audio, spec: MelSpec) -> tf.Tensor:
    """[samples] float audio → [frames, n_mels] natural-log mel magnitudes."""
    magnitude = tf.abs(_stft(tf.convert_to_tensor(audio, tf.float32), spec))
    mel = tf.matmul(magnitude, spec.mel_matrix())
    return tf.math.log(tf.maximum(mel, spec.log_floor))


@dataclass(frozen=True)
class MelStats:
    """Per-channel mean and std of the training set's log-mels."""

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def from_mels(cls, mels: list[np.ndarray]) -> "MelStats":
        stacked = np.concatenate(mels, axis=0).astype(np.float64)
        return cls(stacked.mean(axis=0).astype(np.float32),
                   np.maximum(stacked.std(axis=0), 1e-3).astype(np.float32))

    def normalize(self, mel: np.ndarray) -> np.ndarray:
        return ((mel - self.mean) / self.std).astype(np.float32)

    def denormalize(self, mel):
        return mel * self.std + self.mean

    def save(self, path: Path) -> None:
        Path(path).write_text(json.dumps({"mean": self.mean.tolist(), "std": self.std.tolist()}))

    @classmethod
    def load(cls, path: Path) -> "MelStats":
        data = json.loads(Path(path).read_text())
        return cls(np.asarray(data["mean"], np.float32), np.asarray(data["std"], np.float32))


class FeatureCache:
    """Log-mels on disk keyed by (audio content hash, feature parameters): a second run reads, never recomputes."""

    def __init__(self, root: Path, spec: MelSpec) -> None:
        self.directory = Path(root) / f"mels-{spec.key}"
        self.directory.mkdir(parents=True, exist_ok=True)
        self.spec = spec
        self.computed = 0
        self.reused = 0

    def _path(self, audio_bytes: bytes) -> Path:
        return self.directory / f"{hashlib.sha256(audio_bytes).hexdigest()}.npy"

    def get(self, audio_bytes: bytes, audio: np.ndarray) -> np.ndarray:
        path = self._path(audio_bytes)
        if path.is_file():
            try:
                mel = np.load(path)
                self.reused += 1
                return mel
            except (ValueError, OSError):
                pass  # a torn write from an interrupted run: recompute below
        mel = log_mel(audio, self.spec).numpy()
        temporary = path.with_suffix(f".{id(self)}.tmp.npy")
        np.save(temporary, mel)
        temporary.replace(path)
        self.computed += 1
        return mel


def mel_to_audio(log_mel_frames, spec: MelSpec, iterations: int = 32) -> tf.Tensor:
    """Griffin-Lim: [frames, n_mels] natural-log mel magnitudes → [samples] float audio."""
    mel = tf.exp(tf.convert_to_tensor(log_mel_frames, tf.float32))
    # Least-squares inverse of the mel projection, kept non-negative.
    magnitude = tf.nn.relu(tf.matmul(mel, tf.linalg.pinv(spec.mel_matrix())))
    magnitude = tf.cast(magnitude, tf.complex64)
    window = tf.signal.inverse_stft_window_fn(spec.hop_length, forward_window_fn=tf.signal.hann_window)

    def inverse(stft):
        return tf.signal.inverse_stft(stft, frame_length=spec.win_length, frame_step=spec.hop_length,
                                      fft_length=spec.n_fft, window_fn=window)

    # Deterministic start (zero phase) so the same mel always gives the same waveform.
    audio = inverse(magnitude)
    for _ in range(iterations):
        rebuilt = _stft(audio, spec)
        phase = rebuilt / tf.cast(tf.maximum(tf.abs(rebuilt), 1e-8), tf.complex64)
        audio = inverse(magnitude * phase)
    return audio
