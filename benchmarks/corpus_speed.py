"""Corpus build speed: 100 utterances from 4 voices, written as an LJSpeech-layout corpus.

    python -m benchmarks.corpus_speed [--utterances 100] [--out reports/bench/corpus_speed.json]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from myxtts.data.corpus import CorpusSpec, build_corpus


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.corpus_speed", description=__doc__.splitlines()[0])
    parser.add_argument("--utterances", type=int, default=100)
    parser.add_argument("--out", type=Path, default=Path("reports/bench/corpus_speed.json"))
    args = parser.parse_args(argv)
    if args.utterances < 1:
        parser.error(f"--utterances: must be >= 1, got {args.utterances}")
    with tempfile.TemporaryDirectory() as scratch:
        started = time.perf_counter()
        build_corpus(Path(scratch) / "corpus", CorpusSpec(args.utterances, 4, 0))
        seconds = time.perf_counter() - started
    result = {"utterances": args.utterances, "seconds": round(seconds, 2), "target_seconds": 10}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(f"corpus of {args.utterances} utterances: {seconds:.1f} s (target: well under 10 s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
