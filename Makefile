# Every target creates .venv on first use and reuses it after (see `install`).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.edgekit-installed
# Coral's public models (a folder holding coral/): tests need them; the demo uses them when present. EDGEKIT_SHARED
# from the environment wins, then `make demo SHARED=/path`, then ../shared.
SHARED ?= $(or $(EDGEKIT_SHARED),../shared)
export EDGEKIT_SHARED := $(abspath $(SHARED))
export TF_CPP_MIN_LOG_LEVEL := 2

.PHONY: install browser kotlin test test-long test-fast demo bench fuzz lint format clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[train,dev]"
	touch $(STAMP)

# Lint first: it is what keeps the runtime lane free of build-lane imports (see pyproject's ruff section).
test: install browser kotlin lint
	$(PY) -m pytest -q -m "not long"

# The tests over a minute whose subject a faster test in `make test` also covers (the bench measures the rest).
test-long: install
	$(PY) -m pytest -q -m long

# The runtime lane only (LiteRT, ONNX Runtime, inspect, bench, pre-flights, bundles of Coral's models): no test that
# trains, builds a Keras model or runs a TensorFlow conversion (those carry the `slow` marker). Under 3 minutes on 2 cores.
test-fast: install
	$(PY) -m pytest -q -m "not slow"

# The validate report's HTML is checked in headless Chromium (Debian's package), installed where apt-get can.
browser:
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || \
	{ [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  { apt-get install -y -qq --no-install-recommends chromium >/dev/null 2>&1 || \
	    { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq --no-install-recommends chromium >/dev/null 2>&1; }; }; } || \
	echo "chromium is not installable here: the HTML report test will be skipped"

# Generated Android code is compiled in the tests with Debian's kotlinc (against a stub of the Android / LiteRT API).
kotlin:
	@command -v kotlinc >/dev/null || \
	{ [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  { apt-get install -y -qq --no-install-recommends kotlin default-jdk-headless >/dev/null 2>&1 || \
	    { apt-get update -qq >/dev/null 2>&1 && \
	      apt-get install -y -qq --no-install-recommends kotlin default-jdk-headless >/dev/null 2>&1; }; }; } || \
	echo "kotlin is not installable here: the Kotlin compile tests will be skipped"

demo: install
	$(PY) examples/demo.py

bench: install
	$(PY) bench/run.py --out bench/results.json

# Fuzz the readers, bundles and inputs through the CLI: N mutated cases (seeded by SEED), figures into
# bench/results.json → fuzz; a crash or a failing case is kept under tests/fuzz/regressions/ (replayed by make test).
N ?= 20000
SEED ?= 0
fuzz: install
	$(PY) -m tests.fuzz --cases $(N) --seed $(SEED) --out bench/results.json --keep

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
