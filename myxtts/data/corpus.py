"""Builds the default corpus: generated English sentences spoken by libespeak-ng voices.

`python -m myxtts.data.corpus --out data/espeak --utterances 96 --speakers 4 --seed 0` writes an
LJSpeech-layout directory (metadata.csv, wavs/, speakers.csv). The same arguments always give a
byte-identical corpus, and a complete corpus with the same arguments is left alone.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import random
import shutil
import sys
import time
import wave
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from myxtts.checks import require
from myxtts.data.espeak import EspeakSynthesizer, Voice
from myxtts.data.sentences import generate_sentence
from myxtts.data.text import normalize_text

MANIFEST = ".complete"
MIN_SECONDS, MAX_SECONDS = 1.5, 8.0
# Distinct timbres: a voice variant per speaker, then pitch and rate drawn around it.
_VOICE_NAMES = ("en-us+m1", "en+f2", "en-gb-x-rp+m3", "en-us+f4", "en-029+m5", "en+f3", "en-us+m7", "en+f5")


@dataclass(frozen=True)
class CorpusSpec:
    utterances: int
    speakers: int
    seed: int

    def __post_init__(self) -> None:
        # The configuration's data.utterances/speakers/corpus_seed are these fields (--utterances ... here).
        require(self.utterances >= 1, "data.utterances", self.utterances, "an integer >= 1 (--utterances)")
        require(1 <= self.speakers <= len(_VOICE_NAMES), "data.speakers", self.speakers,
                f"an integer in [1, {len(_VOICE_NAMES)}] (--speakers)")
        require(self.seed >= 0, "data.corpus_seed", self.seed, "an integer >= 0 (--seed)")


def speaker_voices(spec: CorpusSpec) -> list[Voice]:
    rng = random.Random(f"voices-{spec.seed}")
    return [Voice(name=_VOICE_NAMES[i], pitch=rng.randint(25, 75), rate=rng.randint(145, 195),
                  pitch_range=rng.randint(30, 70)) for i in range(spec.speakers)]


def is_complete(out: Path, spec: CorpusSpec) -> bool:
    manifest = out / MANIFEST
    if not manifest.is_file():
        return False
    recorded = json.loads(manifest.read_text())
    return recorded.get("spec") == asdict(spec) and all(
        (out / "wavs" / f"{uid}.wav").is_file() for uid in recorded.get("ids", []))


def _write_wav(path: Path, samples: np.ndarray, sample_rate: int) -> None:
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(sample_rate)
        handle.writeframes(samples.astype("<i2").tobytes())


def _synthesize_all(spec: CorpusSpec) -> tuple[list[tuple[str, int, str, np.ndarray]], int]:
    synthesizer = EspeakSynthesizer()
    voices = speaker_voices(spec)
    rng = random.Random(spec.seed)
    utterances = []
    for index in range(spec.utterances):
        speaker = index % spec.speakers
        uid = f"ES{speaker:02d}-{index // spec.speakers + 1:04d}"
        for _attempt in range(50):
            text = generate_sentence(rng)
            samples = synthesizer.synthesize(text, voices[speaker], seed=spec.seed * 100_003 + index)
            if MIN_SECONDS <= len(samples) / synthesizer.sample_rate <= MAX_SECONDS:
                break
        else:
            raise RuntimeError(f"could not generate a {MIN_SECONDS}-{MAX_SECONDS} s utterance for {uid}")
        utterances.append((uid, speaker, text, samples))
    return utterances, synthesizer.sample_rate


def build_corpus(out: Path, spec: CorpusSpec) -> bool:
    """Write the corpus into `out`; returns False when an identical complete corpus is already there."""
    out = Path(out)
    if is_complete(out, spec):
        return False
    voices = speaker_voices(spec)
    staging = out.with_name(out.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    (staging / "wavs").mkdir(parents=True)
    # libespeak-ng carries state from one utterance to the next (its pitch flutter keeps running), so
    # only a fresh process gives the same audio for the same seed: synthesize in a spawned worker.
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as worker:
        utterances, sample_rate = worker.submit(_synthesize_all, spec).result()
    metadata, speakers, ids = [], [], []
    for uid, speaker, text, samples in utterances:
        _write_wav(staging / "wavs" / f"{uid}.wav", samples, sample_rate)
        metadata.append(f"{uid}|{text}|{normalize_text(text)}")
        speakers.append(f"{uid},speaker{speaker}")
        ids.append(uid)
    (staging / "metadata.csv").write_text("\n".join(metadata) + "\n", encoding="utf-8")
    (staging / "speakers.csv").write_text("id,speaker\n" + "\n".join(speakers) + "\n", encoding="utf-8")
    (staging / MANIFEST).write_text(json.dumps({"spec": asdict(spec), "ids": ids,
                                                "voices": [asdict(v) for v in voices]}, indent=1))
    shutil.rmtree(out, ignore_errors=True)
    staging.rename(out)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m myxtts.data.corpus", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="corpus directory to write")
    parser.add_argument("--utterances", type=int, default=96)
    parser.add_argument("--speakers", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        spec = CorpusSpec(args.utterances, args.speakers, args.seed)
    except ValueError as error:
        parser.error(str(error))
    started = time.perf_counter()
    if build_corpus(args.out, spec):
        print(f"wrote {spec.utterances} utterances from {spec.speakers} speakers to {args.out} "
              f"in {time.perf_counter() - started:.1f} s")
    else:
        print(f"{args.out} is complete for {asdict(spec)}; nothing to do")
    return 0


if __name__ == "__main__":
    sys.exit(main())
