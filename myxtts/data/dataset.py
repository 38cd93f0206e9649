"""From a corpus directory to padded training batches.

prepare_data() reads the corpus, skips and counts what is unusable, computes (or reuses) cached
features and fits the normalization on the training split. BatchStream turns examples into a
deterministic, resumable tf.data stream: batch k of a run is the same whatever step it starts from.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from myxtts.backend import tf

from myxtts.data.corpus_reader import (AudioError, CorpusError, SkipReport, load_audio, read_metadata,
                                       split_utterances)
from myxtts.data.features import FeatureCache, MelSpec, MelStats
from myxtts.data.settings import DataSettings
from myxtts.data.text import CharTokenizer


@dataclass(frozen=True)
class Example:
    id: str
    speaker: str
    tokens: np.ndarray  # int32 [text length], ends with the end-of-sequence id
    mel: np.ndarray     # float32 [frames, n_mels], normalized


@dataclass
class PreparedData:
    train: list[Example]
    validation: list[Example]
    stats: MelStats
    tokenizer: CharTokenizer
    skipped: SkipReport
    cache_directory: Path
    features_computed: int
    features_reused: int


def prepare_data(settings: DataSettings, mel: MelSpec | None = None) -> PreparedData:
    """Features of every usable utterance, split and normalized. `mel`: the features of
    data.features.scale unless given (a benchmark or test may ask for others)."""
    mel = mel or MelSpec.for_scale(settings.features.scale)
    path, scale, seed = Path(settings.path), settings.features.scale, settings.corpus_seed
    report = SkipReport()
    utterances = read_metadata(path, report)
    if settings.subset is not None:
        utterances = choose_subset(utterances, settings.subset, seed)
    cache = FeatureCache(Path(settings.cache_dir), mel)
    tokenizer = CharTokenizer()
    raw: list[tuple] = []
    max_samples = int(settings.max_seconds * mel.sample_rate)
    for utterance in utterances:
        try:
            audio, content = load_audio(utterance.wav_path, mel.sample_rate)
        except AudioError as error:
            report.add(str(error), utterance.id)
            continue
        if len(audio) > max_samples:
            report.add(f"utterances over data.max_seconds={settings.max_seconds}", utterance.id)
            continue
        if mel.frames(len(audio)) < 2:
            report.add("utterances too short for one mel frame", utterance.id)
            continue
        tokens = np.asarray(tokenizer.encode(utterance.text), np.int32)
        if len(tokens) > settings.max_text_length:
            report.add(f"texts over data.max_text_length={settings.max_text_length}", utterance.id)
            continue
        if len(tokens) < 2:
            report.add("empty text lines", utterance.id)
            continue
        raw.append((utterance, tokens, cache.get(content, audio)))
    tokenizer.warn_unknown()
    report.warn()
    if not raw:
        raise CorpusError(f"data.path: no usable utterance in {path} ({report.summary()})")
    train_utts, val_utts = split_utterances([r[0] for r in raw], settings.validation_fraction,
                                            seed)
    val_ids = {u.id for u in val_utts}
    stats = MelStats.from_mels([mel for utt, _, mel in raw if utt.id not in val_ids], scale)
    examples = {utt.id: Example(utt.id, utt.speaker, tokens, stats.normalize(mel)) for utt, tokens, mel in raw}
    # The normalization and symbol table belong to this exact set of features: store them beside it.
    set_key = hashlib.sha256(json.dumps(sorted(examples) + [seed, settings.validation_fraction,
                                                            scale]).encode()).hexdigest()[:16]
    set_directory = cache.directory / f"set-{set_key}"
    set_directory.mkdir(exist_ok=True)
    stats.save(set_directory / "stats.json")
    tokenizer.save(set_directory / "symbols.json")
    return PreparedData([examples[u.id] for u in train_utts], [examples[u.id] for u in val_utts], stats,
                        tokenizer, report, set_directory, cache.computed, cache.reused)


def choose_subset(utterances: list, size: int, seed: int) -> list:
    """N utterances chosen by id hash and seed alone: the same subset in every run, process and order."""
    ranked = sorted(utterances, key=lambda u: hashlib.sha256(f"subset:{seed}:{u.id}".encode()).hexdigest())
    chosen = {u.id for u in ranked[:size]}
    return [u for u in utterances if u.id in chosen]


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


class BatchStream:
    """Deterministic batches: order depends only on (seed, epoch); similar lengths share a batch."""

    FRAME_MULTIPLE = 16  # padded shapes snap to multiples so a compiled step sees few distinct shapes
    TOKEN_MULTIPLE = 8
    SORT_WINDOW = 4      # batches per sorted window: enough to group lengths, small enough to stay random

    def __init__(self, examples: list[Example], batch_size: int, seed: int, reference_frames: int,
                 shuffle: bool = True, drop_remainder: bool = True, fixed_shapes: bool = False) -> None:
        if not examples:
            raise ValueError("no examples to batch")
        self.examples = examples
        self.batch_size = min(batch_size, len(examples)) if drop_remainder else batch_size
        self.seed = seed
        self.reference_frames = reference_frames
        self.shuffle = shuffle
        self.drop_remainder = drop_remainder
        self.n_mels = examples[0].mel.shape[1]
        # Fixed shapes (every batch padded to the longest example) let an XLA-compiled step compile once.
        self.fixed_shapes = fixed_shapes
        self._max_text = _round_up(max(len(e.tokens) for e in examples), self.TOKEN_MULTIPLE)
        self._max_frames = _round_up(max(len(e.mel) for e in examples), self.FRAME_MULTIPLE)
        self._by_speaker: dict[str, list[int]] = {}
        for index, example in enumerate(examples):
            self._by_speaker.setdefault(example.speaker, []).append(index)

    @property
    def batches_per_epoch(self) -> int:
        n = len(self.examples)
        return n // self.batch_size if self.drop_remainder else -(-n // self.batch_size)

    def epoch_batches(self, epoch: int) -> list[list[int]]:
        order = np.arange(len(self.examples))
        if self.shuffle:
            order = np.random.default_rng([self.seed, epoch]).permutation(order)
        window = self.batch_size * self.SORT_WINDOW
        batches = []
        for start in range(0, len(order), window):
            chunk = sorted(order[start:start + window], key=lambda i: self.examples[i].mel.shape[0])
            batches += [chunk[i:i + self.batch_size] for i in range(0, len(chunk), self.batch_size)]
        if self.drop_remainder:
            batches = [b for b in batches if len(b) == self.batch_size]
            batches = batches[:self.batches_per_epoch]
        if self.shuffle:
            rng = np.random.default_rng([self.seed, epoch, 1])
            batches = [batches[i] for i in rng.permutation(len(batches))]
        return batches

    def _reference(self, index: int, rng: np.random.Generator) -> np.ndarray:
        speaker = self.examples[index].speaker
        others = [i for i in self._by_speaker[speaker] if i != index] or [index]
        mel = self.examples[others[rng.integers(len(others))]].mel
        if len(mel) <= self.reference_frames:
            return mel
        start = rng.integers(len(mel) - self.reference_frames + 1)
        return mel[start:start + self.reference_frames]

    def make_batch(self, indices: list[int], epoch: int, position: int) -> dict[str, np.ndarray]:
        rng = np.random.default_rng([self.seed, epoch, position, 2])
        examples = [self.examples[i] for i in indices]
        text_len = _round_up(max(len(e.tokens) for e in examples), self.TOKEN_MULTIPLE)
        mel_len = _round_up(max(len(e.mel) for e in examples), self.FRAME_MULTIPLE)
        references = [self._reference(i, rng) for i in indices]
        ref_len = _round_up(max(len(r) for r in references), self.FRAME_MULTIPLE)
        if self.fixed_shapes:
            text_len, mel_len = self._max_text, self._max_frames
            ref_len = _round_up(self.reference_frames, self.FRAME_MULTIPLE)
        size = len(examples)
        batch = {
            "text": np.zeros((size, text_len), np.int32),
            "text_lengths": np.array([len(e.tokens) for e in examples], np.int32),
            "mel": np.zeros((size, mel_len, self.n_mels), np.float32),
            "mel_lengths": np.array([len(e.mel) for e in examples], np.int32),
            # 1 from the last real frame on: the model learns where to stop, padding is masked anyway.
            "stop_target": np.ones((size, mel_len), np.float32),
            "reference_mel": np.zeros((size, ref_len, self.n_mels), np.float32),
            "reference_lengths": np.array([len(r) for r in references], np.int32),
        }
        for row, (example, reference) in enumerate(zip(examples, references)):
            batch["text"][row, :len(example.tokens)] = example.tokens
            batch["mel"][row, :len(example.mel)] = example.mel
            batch["stop_target"][row, :len(example.mel) - 1] = 0.0
            batch["reference_mel"][row, :len(reference)] = reference
        return batch

    def iterate(self, start_step: int = 0, epochs: int | None = None):
        """Batches from global step `start_step` on: the data position a checkpoint resumes from."""
        per_epoch = self.batches_per_epoch
        epoch, position = divmod(start_step, per_epoch)
        while epochs is None or epoch < epochs:
            batches = self.epoch_batches(epoch)
            for k in range(position, per_epoch):
                yield self.make_batch(batches[k], epoch, k)
            epoch, position = epoch + 1, 0

    def signature(self) -> dict[str, tf.TensorSpec]:
        n = self.n_mels
        return {"text": tf.TensorSpec([None, None], tf.int32), "text_lengths": tf.TensorSpec([None], tf.int32),
                "mel": tf.TensorSpec([None, None, n], tf.float32), "mel_lengths": tf.TensorSpec([None], tf.int32),
                "stop_target": tf.TensorSpec([None, None], tf.float32),
                "reference_mel": tf.TensorSpec([None, None, n], tf.float32),
                "reference_lengths": tf.TensorSpec([None], tf.int32)}

    def dataset(self, start_step: int = 0, epochs: int | None = None) -> tf.data.Dataset:
        return tf.data.Dataset.from_generator(lambda: self.iterate(start_step, epochs),
                                              output_signature=self.signature()).prefetch(2)
