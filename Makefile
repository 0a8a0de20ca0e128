# embedlab: the two commands are `make demo` and `make test`.
#
# Python: the first of python3.11, python3.12, python3 that runs and is >= 3.11 (pyproject's
# requires-python; the code uses 3.11's standard library). Override with `make setup PY=/path/to/python`.
# python3.11 comes first because this machine keeps a CPU wheel of torch 2.13.0 for it.
#
# Fresh machines: pip's default index gives Linux x86_64 the CUDA build of torch (several GB).
# For a CPU-only install take torch from PyTorch's CPU index:
#   make setup TORCH_INDEX=https://download.pytorch.org/whl/cpu
# (GPU install: see README.)
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c
PY ?= $(shell for p in python3.11 python3.12 python3; do \
          $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1 && { command -v $$p; break; }; \
        done)
TORCH_INDEX ?=
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.embedlab-setup
PIP := $(BIN)/pip install -q --disable-pip-version-check
# The pinned CPU stack (see README for the GPU install).
TORCH := torch==2.13.0
FBGEMM := fbgemm-gpu-cpu==1.8.0
TORCHREC := torchrec==1.8.0
# torchrec's metadata requires the CUDA distribution `fbgemm-gpu`; on CPU its twin
# `fbgemm-gpu-cpu` (same version, same `fbgemm_gpu` module) is installed instead and torchrec
# with --no-deps, so every later `pip install` ends with pip's check printing
#   ERROR: pip's dependency resolver does not currently take into account all the packages ...
#   torchrec 1.8.0 requires fbgemm-gpu, which is not installed.
# Those lines (and only those) are dropped; pip's exit status is kept (pipefail).
RESOLVER_NOTE := grep -v -e "^ERROR: pip's dependency resolver does not currently take into account" \
                         -e "^torchrec 1.8.0 requires fbgemm-gpu, which is not installed" || true
# `make bench` writes here unless told otherwise (BENCH_OUT=benchmarks/results replaces the
# committed results).
BENCH_OUT ?= benchmarks/.work/results

.PHONY: setup setup-data setup-browser demo smoke test bench lint clean

setup: $(STAMP)

# Fashion-MNIST for `embedlab pu` (Debian package; files under /usr/share/datasets/fashion-mnist).
setup-data:
	test -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz || \
	  (apt-get install -y dataset-fashion-mnist || sudo apt-get install -y dataset-fashion-mnist)

# Headless Chromium for the report's browser check (Debian's package: /usr/bin/chromium).
setup-browser:
	command -v chromium >/dev/null || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; }
	@# stderr hidden: Debian's launcher (/etc/chromium.d/dev-shm) trips over this machine's two
	@# /dev/shm mounts with "[: ...: unexpected operator"; the check passes --disable-dev-shm-usage itself
	chromium --version 2>/dev/null

$(STAMP): pyproject.toml Makefile
	@test -n "$(PY)" || { echo "no Python >= 3.11 found (tried python3.11, python3.12, python3); run make PY=/path/to/python3.11" >&2; exit 1; }
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(PIP) $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) $(TORCH)
	$(PIP) $(FBGEMM) 2>&1 | { $(RESOLVER_NOTE); }
	$(PIP) --no-deps $(TORCHREC) 2>&1 | { $(RESOLVER_NOTE); }
	$(PIP) -e '.[dev,docs]' 2>&1 | { $(RESOLVER_NOTE); }
	$(BIN)/python -c "import torch, fbgemm_gpu, torchrec, embedlab; print('embedlab ready: torch', torch.__version__, 'torchrec', torchrec.__version__ if hasattr(torchrec, '__version__') else '1.8.0')"
	touch $(STAMP)

demo: setup
	$(BIN)/embedlab reproduce --quick --out reports/latest

# The smallest setting of every experiment (what CI runs), into a scratch folder.
smoke: setup
	$(BIN)/embedlab reproduce --smoke --out reports/smoke

test: setup
	$(BIN)/python -m pytest -q

bench: setup
	mkdir -p $(BENCH_OUT)
	$(BIN)/python benchmarks/throughput.py --out $(BENCH_OUT)/throughput.json
	$(BIN)/python benchmarks/movielens.py --out $(BENCH_OUT)/movielens.json
	$(BIN)/python benchmarks/quality.py --out $(BENCH_OUT)/quality.json
	@echo "results in $(BENCH_OUT)/ (BENCH_OUT=benchmarks/results to replace the committed ones)"

lint: setup
	$(BIN)/ruff check src tests benchmarks

clean:
	rm -rf $(VENV) reports/latest reports/smoke .pytest_cache
