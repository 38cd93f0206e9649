"""The data group's settings (conf/data): which corpus, how it is cut and which features it trains on.

Checked here once, before any run exists: a generated corpus's size, a user's LJSpeech-layout corpus (its
metadata.csv must name at least one wav that exists), the subset against the corpus it is drawn from.
No TensorFlow here.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from myxtts.checks import SettingError, finite, one_of, require
from myxtts.switches import FEATURE_SCALES

DATA_KINDS = ("espeak", "ljspeech")


@dataclass
class FeatureSettings:
    scale: str = "standardized"       # log: upstream's raw log-mels; minmax: per utterance to [0, 1]

    def __post_init__(self) -> None:
        one_of("data.features.scale", self.scale, FEATURE_SCALES)


@dataclass
class DataSettings:
    path: str = "data/espeak"
    cache_dir: str = ".cache/features"
    kind: str = "espeak"
    utterances: int = 96          # espeak only: the corpus built when path holds none
    speakers: int = 4
    corpus_seed: int = 0          # the corpus's voices and sentences, and the train/validation split
    validation_fraction: float = 0.1
    max_seconds: float = 10.0
    max_text_length: int = 200
    reference_frames: int = 96
    subset: Optional[int] = None  # a deterministic N-utterance subset (null: the whole corpus)
    features: FeatureSettings = field(default_factory=FeatureSettings)

    def __post_init__(self) -> None:
        one_of("data.kind", self.kind, DATA_KINDS)
        require(0 <= self.validation_fraction < 1, "data.validation_fraction", self.validation_fraction,
                "a number in [0, 1)")
        require(finite(self.max_seconds) and self.max_seconds > 0, "data.max_seconds", self.max_seconds,
                "a finite number > 0")
        require(self.max_text_length >= 2, "data.max_text_length", self.max_text_length, "an integer >= 2")
        require(self.reference_frames >= 1, "data.reference_frames", self.reference_frames, "an integer >= 1")
        path = Path(self.path)
        if self.kind == "espeak":
            from myxtts.data.corpus import CorpusSpec

            require(not path.exists() or path.is_dir(), "data.path", self.path, "a directory (built if missing)")
            CorpusSpec(self.utterances, self.speakers, self.corpus_seed)
            available = self.utterances
        else:
            if not str(self.path).strip():  # an empty path would read the working directory as a corpus
                raise SettingError(f"data.path is required for data={self.kind}: allowed an LJSpeech-layout "
                                   f"directory, e.g. data.path=/path/to/LJSpeech-1.1")
            available = len(self._usable_corpus(path))
        if self.subset is not None:
            require(1 <= self.subset <= available, "data.subset", self.subset,
                    f"an integer in [1, {available}] (the corpus's utterances) or null")

    def ensure_corpus(self) -> None:
        """Build the generated corpus when it is missing (a complete one with the same spec is left alone)."""
        if self.kind == "espeak":
            from myxtts.data.corpus import CorpusSpec, build_corpus

            build_corpus(Path(self.path), CorpusSpec(self.utterances, self.speakers, self.corpus_seed))

    def _usable_corpus(self, path: Path) -> list:
        """A user's corpus must name at least one utterance whose wav exists."""
        from myxtts.data.corpus_reader import SkipReport, read_metadata

        require(path.is_dir(), "data.path", self.path, "an existing LJSpeech-layout directory")
        require((path / "metadata.csv").is_file(), "data.path", self.path, "a directory containing metadata.csv")
        skipped = SkipReport()
        utterances = read_metadata(path, skipped)
        detail = f" ({skipped.summary()})" if skipped.total else ""
        if not utterances:
            raise SettingError(f"data.path={self.path!r} is invalid: its metadata.csv lists no usable utterance"
                               f"{detail}; allowed a corpus with lines id|text|normalized_text")
        if not any(u.wav_path.is_file() for u in utterances):
            raise SettingError(f"data.path={self.path!r} is invalid: none of the {len(utterances)} wavs metadata.csv "
                               f"names exists under {path / 'wavs'}; allowed wavs/<id>.wav for each line")
        return utterances
