import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import myxtts.backend  # noqa: F401  (quiet TensorFlow import before any test module pulls it in)
import pytest

from myxtts.data.corpus import CorpusSpec, build_corpus
from myxtts.training.run import use_threads

if os.environ.get("PYTEST_XDIST_WORKER"):
    # pytest-xdist runs one worker per core: one TensorFlow thread each for what the workers train themselves
    # (the jobs they launch get trainer.threads=1 from tests/launch.py), so neither oversubscribes the cores.
    use_threads(1, print)


@pytest.fixture(scope="session")
def small_corpus(tmp_path_factory):
    """16 utterances from 2 generated speakers; built once per test session."""
    out = tmp_path_factory.mktemp("corpus") / "espeak"
    build_corpus(out, CorpusSpec(utterances=16, speakers=2, seed=0))
    return out
