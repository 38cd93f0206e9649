"""Log-mel features in TensorFlow, their on-disk cache, and the way back to audio (Griffin-Lim).

Choice of features (fixed by the study so every configuration sees the same inputs):
- 22050 Hz audio, STFT with a periodic Hann window of 1024 samples, hop 256, FFT size 1024, no centre
  padding (frames = 1 + (samples - 1024) // 256, so frame t covers samples [256 t, 256 t + 1024));
- magnitude (not power) spectrum projected on 80 triangular HTK-mel bands between 0 and 8000 Hz
  (tf.signal.linear_to_mel_weight_matrix, DC bin excluded);
- natural log with a floor of 1e-5 so silence stays finite (log 1e-5 ≈ -11.5);
- then each mel channel is standardised with the training set's mean and std. The model works in that
  standardised space; the statistics are stored with the cache so audio can be recovered.

data.features.scale switches to the upstream code base's features (one factor of the ablation):
- "log": audio peak-normalised to 1, Slaney-style area-normalised mel filters, natural log of the mel
  magnitude with the same floor, and no standardisation: values in about [-11.5, 2];
- "minmax": the same log-mels, each utterance min-max scaled to [0, 1] (upstream's later loader).
"""
from __future__ import annotations

import hashlib
import io
import json
import math
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from myxtts.backend import tf


FILTERS = ("htk", "slaney")


def slaney_mel_matrix(n_mels: int, n_fft: int, sample_rate: int, fmin: float, fmax: float) -> np.ndarray:
    """[n_fft/2+1, n_mels] triangular filters on the Slaney mel scale (linear below 1 kHz, logarithmic
    above), each divided by its width in Hz so every filter has the same area."""
    linear_step, knee = 200.0 / 3.0, 1000.0
    knee_mel, log_step = knee / linear_step, math.log(6.4) / 27.0

    def to_mel(hz):
        hz = np.asarray(hz, np.float64)
        return np.where(hz < knee, hz / linear_step, knee_mel + np.log(np.maximum(hz, 1e-10) / knee) / log_step)

    def to_hz(mel):
        mel = np.asarray(mel, np.float64)
        return np.where(mel < knee_mel, mel * linear_step, knee * np.exp(log_step * (mel - knee_mel)))

    edges = to_hz(np.linspace(to_mel(fmin), to_mel(fmax), n_mels + 2))
    bins = np.linspace(0.0, sample_rate / 2.0, n_fft // 2 + 1)
    rising = (bins[:, None] - edges[None, :-2]) / (edges[1:-1] - edges[:-2])[None, :]
    falling = (edges[None, 2:] - bins[:, None]) / (edges[2:] - edges[1:-1])[None, :]
    weights = np.maximum(0.0, np.minimum(rising, falling))
    return (weights * (2.0 / (edges[2:] - edges[:-2]))[None, :]).astype(np.float32)


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
    filters: str = "htk"
    peak_normalize: bool = False

    @classmethod
    def for_scale(cls, scale: str) -> "MelSpec":
        """The features a data.features.scale trains on: upstream's for log/minmax, the study's otherwise."""
        return cls() if scale == "standardized" else cls(filters="slaney", peak_normalize=True)

    def __post_init__(self) -> None:
        if self.filters not in FILTERS:
            raise ValueError(f"data.features.filters: must be one of {list(FILTERS)}, got {self.filters!r}")
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
        if self.filters == "slaney":
            return tf.constant(slaney_mel_matrix(self.n_mels, self.n_fft, self.sample_rate, self.fmin, self.fmax))
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
    audio = tf.convert_to_tensor(audio, tf.float32)
    if spec.peak_normalize:
        audio = audio / tf.maximum(tf.reduce_max(tf.abs(audio)), 1e-8)
    magnitude = tf.abs(_stft(audio, spec))
    mel = tf.matmul(magnitude, spec.mel_matrix())
    return tf.math.log(tf.maximum(mel, spec.log_floor))


@dataclass(frozen=True)
class MelStats:
    """How the training set's log-mels are scaled for the model, and back (for audio).

    standardized: per channel (x - mean) / std; log: unchanged (mean 0, std 1); minmax: each utterance
    to [0, 1] — not invertible per utterance, so the way back uses the training set's overall range."""

    mean: np.ndarray
    std: np.ndarray
    scale: str = "standardized"

    @classmethod
    def from_mels(cls, mels: list[np.ndarray], scale: str = "standardized") -> "MelStats":
        stacked = np.concatenate(mels, axis=0).astype(np.float64)
        n_mels = stacked.shape[1]
        if scale == "log":
            return cls(np.zeros(n_mels, np.float32), np.ones(n_mels, np.float32), scale)
        if scale == "minmax":
            low, high = float(stacked.min()), float(stacked.max())
            return cls(np.full(n_mels, low, np.float32), np.full(n_mels, max(high - low, 1e-3), np.float32), scale)
        return cls(stacked.mean(axis=0).astype(np.float32),
                   np.maximum(stacked.std(axis=0), 1e-3).astype(np.float32), scale)

    def normalize(self, mel: np.ndarray) -> np.ndarray:
        if self.scale == "minmax":
            low, high = float(mel.min()), float(mel.max())
            return ((mel - low) / max(high - low, 1e-8)).astype(np.float32)
        return ((mel - self.mean) / self.std).astype(np.float32)

    def denormalize(self, mel):
        return mel * self.std + self.mean

    def save(self, path: Path) -> None:
        Path(path).write_text(json.dumps({"mean": self.mean.tolist(), "std": self.std.tolist(), "scale": self.scale}))

    @classmethod
    def load(cls, path: Path) -> "MelStats":
        data = json.loads(Path(path).read_text())
        return cls(np.asarray(data["mean"], np.float32), np.asarray(data["std"], np.float32),
                   data.get("scale", "standardized"))


class FeatureCache:
    """Log-mels on disk keyed by (audio content hash, feature parameters): a second run reads, never recomputes.

    Each entry keeps the SHA-256 of its bytes beside it (`<key>.sha256`). An entry is used only when its
    bytes match that checksum and its values are finite [frames, n_mels]; anything else (a torn write, a
    flipped byte, a hand-edited file) is recomputed, with a warning naming the file when it was corrupt.
    """

    def __init__(self, root: Path, spec: MelSpec) -> None:
        self.directory = Path(root) / f"mels-{spec.key}"
        self.directory.mkdir(parents=True, exist_ok=True)
        self.spec = spec
        self.computed = 0
        self.reused = 0
        self.repaired: list[str] = []

    def _path(self, audio_bytes: bytes) -> Path:
        return self.directory / f"{hashlib.sha256(audio_bytes).hexdigest()}.npy"

    def _read(self, path: Path) -> np.ndarray | None:
        """The entry's features if it is whole; None when it is missing or has no checksum yet."""
        checksum = path.with_suffix(".sha256")
        if not path.is_file() or not checksum.is_file():
            return None
        content = path.read_bytes()
        problem = None
        if hashlib.sha256(content).hexdigest() != checksum.read_text().strip():
            problem = "its bytes do not match its checksum"
        else:
            try:
                mel = np.load(io.BytesIO(content))
            except (ValueError, OSError):
                mel, problem = None, "it is not a readable array"
            if mel is not None and (mel.ndim != 2 or mel.shape[1] != self.spec.n_mels):
                problem = f"its shape {mel.shape} is not [frames, {self.spec.n_mels}]"
            elif mel is not None and not np.all(np.isfinite(mel)):
                problem = "it holds non-finite values"
            if problem is None:
                return mel
        warnings.warn(f"feature cache entry {path} is corrupt ({problem}): recomputed from its audio", stacklevel=3)
        self.repaired.append(path.name)
        return None

    def get(self, audio_bytes: bytes, audio: np.ndarray) -> np.ndarray:
        path = self._path(audio_bytes)
        mel = self._read(path)
        if mel is not None:
            self.reused += 1
            return mel
        mel = log_mel(audio, self.spec).numpy()
        buffer = io.BytesIO()
        np.save(buffer, mel)
        content = buffer.getvalue()
        for target, data in ((path, content), (path.with_suffix(".sha256"), hashlib.sha256(content).hexdigest().encode())):
            temporary = target.with_suffix(f".{id(self)}.tmp")
            temporary.write_bytes(data)
            temporary.replace(target)
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
