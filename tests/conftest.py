import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import myxtts.backend  # noqa: F401  (quiet TensorFlow import before any test module pulls it in)
import pytest

from myxtts.data.corpus import CorpusSpec, build_corpus


@pytest.fixture(scope="session")
def small_corpus(tmp_path_factory):
    """16 utterances from 2 generated speakers; built once per test session."""
    out = tmp_path_factory.mktemp("corpus") / "espeak"
    build_corpus(out, CorpusSpec(utterances=16, speakers=2, seed=0))
    return out
