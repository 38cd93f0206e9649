# Every target bootstraps .venv on first use and re-installs only when pyproject.toml changes.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export TF_CPP_MIN_LOG_LEVEL ?= 3
export PYTHONHASHSEED ?= 0

CORPUS := data/espeak

.PHONY: test data

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

$(CORPUS)/.complete: $(STAMP)
	$(PY) -m myxtts.data.corpus --out $(CORPUS) --utterances 96 --speakers 4 --seed 0

data: $(CORPUS)/.complete

test: $(STAMP)
	$(PY) -m pytest -q
