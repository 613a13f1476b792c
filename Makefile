# The interface the README, CI and outside checks use.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
PIP     := $(BIN)/python -m pip install --quiet -c requirements/constraints.txt
STAMP   := $(VENV)/.setup-stamp
DEMO    ?= /tmp/recsys_hmtl_demo

.PHONY: setup demo test bench clean

setup: $(STAMP)

# Order matters: CPU torch, then the CPU fbgemm, then torchrec without its CUDA-only metadata deps,
# then torchrec's own needs and the package (pyproject.toml). Re-runs only when the pins change.
$(STAMP): requirements/constraints.txt pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(PIP) torch fbgemm-gpu-cpu
	$(PIP) --no-deps torchrec
	$(PIP) -e '.[test,ere]'
	touch $(STAMP)

demo: setup
	$(BIN)/python pipelines/demo.py --out $(DEMO)

# The monitoring tests run the real Prometheus and Pushgateway (Debian packages; the script installs
# them as root with apt-get and otherwise says why the tests will skip).
test: setup
	sh tests/setup_servers.sh
	$(BIN)/python -m pytest -q tests

bench: setup
	$(PIP) -e '.[bench]'
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
