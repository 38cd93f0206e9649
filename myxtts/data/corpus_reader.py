"""Reads an LJSpeech-layout corpus (the user's own or the generated one) and its audio.

Layout: `metadata.csv` with `id|text|normalized_text[|speaker]` lines, `wavs/<id>.wav`, and optionally
`speakers.csv` (`id,speaker`). Anything unusable is skipped and counted rather than stopping a sweep.
"""
from __future__ import annotations

import csv
import hashlib
import io
import os
import random
import warnings
from collections import defaultdict
from dataclasses import dataclass, field
from math import gcd
from pathlib import Path

import numpy as np
from scipy.io import wavfile
from scipy.signal import resample_poly

SINGLE_SPEAKER = "speaker0"
# Float audio is expected in [-1, 1]; a file whose peak is beyond this is not speech at any sane gain
# (a float wav scaled by 1e30 would give log-mels of 59..74 where speech gives -11.5..4.7).
MAX_PEAK = 2.0


class CorpusError(ValueError):
    """The corpus as a whole cannot be used (missing directory or metadata, nothing usable left)."""


class AudioError(ValueError):
    """One audio file cannot be used; the utterance is skipped."""


@dataclass(frozen=True)
class Utterance:
    id: str
    text: str
    speaker: str
    wav_path: Path


@dataclass
class SkipReport:
    """Utterances left out, by reason, so the user sees what was lost and why."""

    reasons: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))

    def add(self, reason: str, name: str) -> None:
        self.reasons[reason].append(name)

    @property
    def total(self) -> int:
        return sum(len(names) for names in self.reasons.values())

    def summary(self, first: int = 5) -> str:
        parts = []
        for reason, names in sorted(self.reasons.items()):
            shown = ", ".join(names[:first]) + (", ..." if len(names) > first else "")
            parts.append(f"{len(names)} {reason} ({shown})")
        return f"skipped {self.total} utterances: " + "; ".join(parts)

    def warn(self) -> None:
        if self.total:
            warnings.warn(self.summary(), stacklevel=2)


def _read_speakers(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    rows = csv.reader(io.StringIO(path.read_text(encoding="utf-8", errors="replace")))
    return {row[0].strip(): row[1].strip() for row in rows if len(row) >= 2 and row[0].strip() != "id"}


def read_metadata(root: Path, report: SkipReport) -> list[Utterance]:
    """Parse metadata.csv line by line: a bad line is skipped, never the whole file."""
    root = Path(root)
    if not root.is_dir():
        raise CorpusError(f"data.path: corpus directory {root} does not exist")
    metadata = root / "metadata.csv"
    if not metadata.is_file():
        raise CorpusError(f"data.path: {metadata} is missing (expected LJSpeech layout: metadata.csv + wavs/)")
    speakers = _read_speakers(root / "speakers.csv")
    wavs = os.path.normpath(root / "wavs")
    utterances = []
    for number, raw in enumerate(metadata.read_bytes().splitlines(), start=1):
        try:
            line = raw.decode("utf-8").strip()
        except UnicodeDecodeError:
            report.add("non-UTF-8 metadata lines", f"line {number}")
            continue
        if not line:
            continue
        columns = line.split("|")
        uid = columns[0].strip()
        # LJSpeech's third column is the spoken form; fall back to the raw text when it is empty.
        text = (columns[2] if len(columns) > 2 and columns[2].strip() else columns[1] if len(columns) > 1 else "")
        if not uid or not text.strip():
            report.add("empty text lines", uid or f"line {number}")
            continue
        wav = root / "wavs" / f"{uid}.wav"
        # "../x", an absolute path or a sub-folder is not this corpus's audio (judged on the path as written,
        # so a wav that is a symlink into another folder still counts as the corpus's own)
        if os.path.dirname(os.path.normpath(wav)) != wavs:
            report.add("ids outside data.path/wavs", uid)
            continue
        speaker = columns[3].strip() if len(columns) > 3 and columns[3].strip() else speakers.get(uid, SINGLE_SPEAKER)
        utterances.append(Utterance(uid, text.strip(), speaker, wav))
    return utterances


def load_audio(path: Path, sample_rate: int) -> tuple[np.ndarray, bytes]:
    """Mono float32 samples in [-1, 1] at `sample_rate`, plus the file's bytes (for cache keys)."""
    try:
        content = Path(path).read_bytes()
    except FileNotFoundError:
        raise AudioError("missing wav files") from None
    if not content:
        raise AudioError("empty wav files")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", wavfile.WavFileWarning)
            rate, samples = wavfile.read(io.BytesIO(content))
    except (ValueError, EOFError, OSError):
        raise AudioError("corrupt or non-audio wav files") from None
    if samples.size == 0:
        raise AudioError("empty wav files")
    if samples.dtype.kind == "i":
        samples = samples.astype(np.float32) / float(np.iinfo(samples.dtype).max + 1)
    elif samples.dtype == np.uint8:
        samples = (samples.astype(np.float32) - 128.0) / 128.0
    samples = samples.astype(np.float32)
    if samples.ndim == 2:
        samples = samples.mean(axis=1)
    if rate != sample_rate:
        divisor = gcd(int(rate), int(sample_rate))
        samples = resample_poly(samples, sample_rate // divisor, rate // divisor).astype(np.float32)
    if not np.all(np.isfinite(samples)):
        raise AudioError("corrupt or non-audio wav files")
    if float(np.max(np.abs(samples))) > MAX_PEAK:
        raise AudioError(f"wav files with samples far outside [-1, 1] (peak > {MAX_PEAK:g})")
    return samples, content


def split_utterances(utterances: list[Utterance], validation_fraction: float, seed: int
                     ) -> tuple[list[Utterance], list[Utterance]]:
    """Deterministic split by seed: an utterance's side depends only on its id, the seed and the fraction."""

    def rank(utterance: Utterance) -> str:
        return hashlib.sha256(f"{seed}:{utterance.id}".encode()).hexdigest()

    ordered = sorted(utterances, key=rank)
    n_validation = int(round(len(ordered) * validation_fraction))
    if validation_fraction > 0 and len(ordered) > 1:
        n_validation = max(1, min(n_validation, len(ordered) - 1))
    validation = set(u.id for u in ordered[:n_validation])
    return ([u for u in utterances if u.id not in validation], [u for u in utterances if u.id in validation])


def pick_references(utterances: list[Utterance], seed: int) -> list[int]:
    """For each utterance, the index of another utterance by the same speaker (itself if it is alone)."""
    by_speaker: dict[str, list[int]] = defaultdict(list)
    for index, utterance in enumerate(utterances):
        by_speaker[utterance.speaker].append(index)
    rng = random.Random(seed)
    references = []
    for index, utterance in enumerate(utterances):
        others = [i for i in by_speaker[utterance.speaker] if i != index]
        references.append(rng.choice(others) if others else index)
    return references
