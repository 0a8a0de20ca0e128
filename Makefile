# embedlab: the two commands are `make demo` and `make test`.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.embedlab-setup
# The pinned CPU stack (see README for the GPU install).
TORCH := torch==2.13.0
FBGEMM := fbgemm-gpu-cpu==1.8.0
TORCHREC := torchrec==1.8.0

.PHONY: setup-data setup demo test bench lint clean

setup: $(STAMP)

# Fashion-MNIST for `embedlab pu` (Debian package; files under /usr/share/datasets/fashion-mnist).
setup-data:
	test -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz || \
	  (apt-get install -y dataset-fashion-mnist || sudo apt-get install -y dataset-fashion-mnist)

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check $(TORCH) $(FBGEMM)
	$(BIN)/pip install -q --disable-pip-version-check --no-deps $(TORCHREC)
	$(BIN)/pip install -q --disable-pip-version-check -e '.[dev,docs]'
	$(BIN)/python -c "import torch, fbgemm_gpu, torchrec, embedlab; print('embedlab ready: torch', torch.__version__, 'torchrec', torchrec.__version__ if hasattr(torchrec, '__version__') else '1.8.0')"
	touch $(STAMP)

demo: setup
	$(BIN)/embedlab reproduce --quick --out reports/latest

test: setup
	$(BIN)/python -m pytest -q

bench: setup
	$(BIN)/python benchmarks/throughput.py
	$(BIN)/python benchmarks/movielens.py
	$(BIN)/python benchmarks/quality.py

lint: setup
	$(BIN)/ruff check src tests benchmarks

clean:
	rm -rf $(VENV) reports/latest .pytest_cache
