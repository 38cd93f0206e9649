# Every target bootstraps .venv on first use; it re-installs only when pyproject.toml changes.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
export TF_CPP_MIN_LOG_LEVEL ?= 3
export PYTHONHASHSEED ?= 0

CORPUS := data/espeak
UI_PORT ?= 5000

.PHONY: test lint data sweep frontier report import replay ui bench server

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

# The builder checks its own manifest: a complete corpus with the same flags is left untouched.
data: $(STAMP)
	$(PY) -m myxtts.data.corpus --out $(CORPUS) --utterances 96 --speakers 4 --seed 0

# Parallel jobs on one machine: one job per core, one TensorFlow thread each (JOBS=1 runs them one by one).
JOBS ?= $(shell nproc 2>/dev/null || echo 1)
PARALLEL := $(if $(filter-out 0 1,$(JOBS)),hydra/launcher=joblib hydra.launcher.n_jobs=$(JOBS) trainer.threads=1)

# The main job: the documents' 4 configurations x 3 seeds x 60 epochs, then the edge probe (the control and the new
# system at three rates around the proxy's edge, into the same experiment), with reports/before_after/report.md, the
# answer first, at the end. (The step-time benchmark and the replay feed the claims report: make bench, make replay.)
sweep: data
	$(PY) -m runner -m sweep=before_after runner.report=false $(PARALLEL)
	$(PY) -m runner -m sweep=edge_probe $(PARALLEL)

# The failure frontier: every configuration at one absolute learning-rate grid, then 5 seeds at 2 rates inside
# each configuration's bracket (both stages resume after a kill); reports/frontier/report.md at the end.
frontier: data
	$(PY) -m runner -m sweep=frontier $(PARALLEL)
	$(PY) -m runner.refine -- $(PARALLEL)

# Re-render the report of the latest experiment (EXPERIMENT=lr_stress for another one) and attach it to the
# experiment's newest sweep parent run.
report: $(STAMP)
	$(PY) -m analysis $(if $(EXPERIMENT),--experiment $(EXPERIMENT))

# Re-create the finished runs of every committed report's evidence in the local store (a new machine): a sweep
# launched again skips them. Runs already finished in the store are left alone.
import: $(STAMP)
	$(PY) -m runner.evidence $(wildcard reports/*/evidence)

replay: $(STAMP)
	$(PY) -m analysis.replay

# The MLflow UI over the same store, on this machine only; prints the latest experiment's runs-table address.
ui: $(STAMP)
	$(PY) -m analysis.ui --port $(UI_PORT)

# A shared tracking server on this machine: PostgreSQL + mlflow server --serve-artifacts on 127.0.0.1:SERVER_PORT
# (send runs with tracking=server tracking.uri=http://127.0.0.1:$(SERVER_PORT)); Ctrl-C or SIGTERM stops both.
SERVER_PORT ?= 5001
server: $(STAMP)
	$(PY) -m runner.server --port $(SERVER_PORT)

bench: data
	$(PY) -m benchmarks.corpus_speed
	$(PY) -m benchmarks.step_time
	$(PY) -m benchmarks.step_time --xla --out reports/bench/step_time_xla.json
	$(PY) -m benchmarks.report_speed
	$(PY) -m benchmarks.keras_fit
	$(PY) -m benchmarks.gpu_step
	$(PY) -m benchmarks.job_overhead
	$(PY) -m benchmarks.sweep_throughput
	$(PY) -m benchmarks.size_layout

# Lint and types (pyproject.toml [tool.ruff], [tool.mypy]); .ci/run runs this before the tests.
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

test: $(STAMP)
	$(PY) -m pytest -q
