# goapp — one command to run, one to test. Both set everything up from nothing and are
# safe to re-run.
#
#   make serve   install, build, get an AI opponent, run the server on SQLite in ./data
#   make test    install, build, lint, type-check, start what the tests need, run every test
#   make test-unit  the tests that need nothing (pytest -m unit): under a minute, no services
#   make bench   benchmarks (pytest-benchmark); figures go in benches/README.md
#   make loadtest  the one-instance load regression (1,000 clients, 200 moves/s, p99 < 20 ms)
#   make bench-check BASE=<git ref> [LOAD=1]   head against BASE, interleaved in one run;
#                  fails when a benchmark is >= 10% slower beyond noise (benches/check.py)
#   make bench-save NAME=<name> [LOAD=1]   keep a named baseline in .benchmarks/ (with the
#                  machine and commit); `goapp bench report` draws the history

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Debian packages the test suite drives for real: the rules oracle, the databases,
# OpenCL on the CPU for KataGo, and for the appliance Nginx, OpenSSL, shellcheck and
# libseccomp's Python binding (emulates the unit's SystemCallFilter), Chromium for the
# browser tests (driven by Playwright's Python package; never `playwright install`), the
# checkers of appliance/compose.yaml (docker-compose) and cloud-init.yaml (cloud-init), and
# for the install journey a Debian container with systemd as PID 1 (systemd-nspawn from
# systemd-container, its root file system made by mmdebstrap; tests/nspawn.py).
TEST_DEBS := gnugo postgresql redis-server ocl-icd-libopencl1 pocl-opencl-icd nginx openssl shellcheck \
             python3-seccomp chromium cloud-init docker-compose systemd-container mmdebstrap
# KataGo: the OpenCL build from the katrain wheel on PyPI, and the small test model.
KATAGO_DIR   ?= .katago
KATAGO_MODEL ?= ../shared/katago/g170-b6c96-s175395328-d26788732.bin.gz
PYTEST_ARGS ?=

.PHONY: serve ai test test-unit build install system-deps katago lint typecheck pytest bench loadtest binary clean \
        bench-check bench-save

serve: build ai
	$(BIN)/goapp serve $(SERVE_ARGS)

# An AI opponent for `make serve`, once (a second run only checks): GNU Go and OpenCL from
# apt when root or passwordless sudo can install them, and KataGo with its default model in
# ./data/katago from the package index (not tuned here: the server tunes it on its first start
# and the browser says the AI is warming up meanwhile). `make serve SERVE_AI=gnugo` skips
# KataGo, SERVE_AI=none skips both. Whatever cannot be had is said in one line.
SERVE_AI ?= katago
SERVE_DATA ?= data
ai: $(STAMP)
	@[ "$(SERVE_AI)" != none ] || exit 0; \
	if ! command -v gnugo >/dev/null && [ ! -x /usr/games/gnugo ]; then \
	  SUDO=""; [ "$$(id -u)" -eq 0 ] || SUDO="sudo -n"; \
	  if $$SUDO true 2>/dev/null; then \
	    echo "installing GNU Go and OpenCL (apt) for the AI opponent"; \
	    $$SUDO apt-get update -qq >/dev/null 2>&1; \
	    DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends \
	      gnugo ocl-icd-libopencl1 pocl-opencl-icd >/dev/null 2>&1 \
	      || echo "note: apt-get could not install gnugo ocl-icd-libopencl1 pocl-opencl-icd"; \
	  else \
	    echo "note: no root: for an AI opponent run sudo apt-get install gnugo ocl-icd-libopencl1 pocl-opencl-icd"; \
	  fi; \
	fi; \
	[ "$(SERVE_AI)" = katago ] || exit 0; \
	[ -x $(SERVE_DATA)/katago/squashfs-root/usr/bin/katago ] || [ -x $(KATAGO_DIR)/squashfs-root/usr/bin/katago ] && exit 0; \
	$(BIN)/goapp engine setup --dest $(SERVE_DATA)/katago --no-tune >/dev/null \
	  || echo "note: no KataGo (see above); the server uses GNU Go if it is installed. Later: $(BIN)/goapp engine setup --dest $(SERVE_DATA)/katago"

test: build system-deps katago lint typecheck pytest

# The fast part: every test that needs no service, engine, browser or goapp process (the
# `unit` marker, set by tests/conftest.py from what each test uses; README "Tests").
test-unit: build
	$(BIN)/pytest tests -m unit $(PYTEST_ARGS)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): pyproject.toml setup.py | $(BIN)/python
	$(BIN)/pip install --quiet "setuptools>=74" "Cython>=3.0" wheel
	$(BIN)/pip install --quiet --no-build-isolation -e ".[dev]"
	touch $@

install: $(STAMP)

# Rebuilds goapp/_core.*.so only when goapp/_core.pyx changed.
build: $(STAMP)
	$(BIN)/python setup.py --quiet build_ext --inplace

# Installs missing Debian packages (as root, or through sudo).
system-deps:
	@missing=""; \
	for pkg in $(TEST_DEBS); do \
	  dpkg-query -W -f='$${Status}' $$pkg 2>/dev/null | grep -q "ok installed" || missing="$$missing $$pkg"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=""; [ "$$(id -u)" -eq 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	fi

# Installs KataGo into $(KATAGO_DIR) with the test model and tunes it (minutes, once; the
# tuning lives in $(KATAGO_DIR)/home); skips what is already there.
katago: $(STAMP) system-deps
	$(BIN)/goapp engine setup --dest $(KATAGO_DIR) --model $(KATAGO_MODEL)

lint: $(STAMP)
	$(BIN)/ruff check goapp tests benches
	$(BIN)/ruff format --check goapp tests benches

typecheck: $(STAMP)
	$(BIN)/mypy

# The benchmarks also run once each (timing disabled) so that they cannot rot.
pytest: build
	$(BIN)/pytest tests benches --benchmark-disable $(PYTEST_ARGS)

bench: build system-deps
	$(BIN)/pytest benches --benchmark-only -p no:randomly $(PYTEST_ARGS)
	$(BIN)/python benches/load.py $(LOAD_ARGS)

# The load regression: a real server and `goapp loadtest`'s scenario, pinned to separate
# cores, fails when move->broadcast p99 passes LOAD_MAX_P99 ms or an event is lost
# (benches/load.py, benches/README.md "Load"). Not part of `make test`: it needs quiet cores.
LOAD_MAX_P99 ?= 20
LOAD_ARGS ?=
loadtest: build
	$(BIN)/python benches/load.py --max-p99 $(LOAD_MAX_P99) $(LOAD_ARGS)

# Benchmark regressions (benches/README.md, "bench-check"): BASE is built in a temporary git
# worktree and both trees' suites run alternately, round after round, on this machine.
# LOAD=1 adds benches/load.py at a fixed modest load, judged against the Node.js ws
# yardstick (about 10 more minutes; needs node and npm). SUMMARY=FILE appends the Markdown
# table (CI: $GITHUB_STEP_SUMMARY); BENCH_ARGS passes options (--rounds, -k, --threshold).
BASE ?=
NAME ?=
LOAD ?=
SUMMARY ?=
BENCH_ARGS ?=
bench-check: build
	@test -n "$(BASE)" || { echo "usage: make bench-check BASE=<git ref> [LOAD=1]"; exit 2; }
	$(BIN)/python benches/check.py check --base "$(BASE)" $(if $(LOAD),--load) \
	  $(if $(SUMMARY),--summary "$(SUMMARY)") $(BENCH_ARGS)

bench-save: build
	@test -n "$(NAME)" || { echo "usage: make bench-save NAME=<name> [LOAD=1]"; exit 2; }
	$(BIN)/python benches/check.py save --name "$(NAME)" $(if $(LOAD),--load) $(BENCH_ARGS)

clean:
	rm -rf build dist *.egg-info goapp/_core.c goapp/_core*.so .pytest_cache .mypy_cache .ruff_cache

# The one-file binary dist/goapp (PyInstaller, installed into the venv when missing); see
# appliance/build.sh and docs/deployment.md.
binary: build
	PYTHON=$(BIN)/python appliance/build.sh
