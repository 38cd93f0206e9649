# Every target bootstraps .venv on first use; it re-installs only when pyproject.toml changes.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
export TF_CPP_MIN_LOG_LEVEL ?= 3
export PYTHONHASHSEED ?= 0

CORPUS := data/espeak

.PHONY: test data

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

# The builder checks its own manifest: a complete corpus with the same flags is left untouched.
data: $(STAMP)
	$(PY) -m myxtts.data.corpus --out $(CORPUS) --utterances 96 --speakers 4 --seed 0

test: $(STAMP)
	$(PY) -m pytest -q
