# ape-engine: every target that needs the environment depends on .venv, so each is one command
# on a fresh machine. `install` is idempotent: it reinstalls only when pyproject.toml changes.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test lint demo bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

test: install
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check engine tests bench
	$(BIN)/ruff format --check engine tests bench
	$(BIN)/mypy

demo: install
	$(BIN)/ape-engine run --task larger_number --sim-latency 0.05 --scoring-size 200 --budget-seconds 75 --concurrency 32 --journal .ape/journals/demo.jsonl --no-cache

# The scheduler benchmark needs nothing else; bench/throughput.py needs the simulator (issue 3).
bench: install
	$(BIN)/python bench/efficiency.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info
