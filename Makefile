# Two commands on a fresh machine: `make demo` and `make test`. Everything else is set up here.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo demo-check test lint typecheck unit integration bench bench-controlplane clean venv

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	@touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/weft demo

demo-check: $(STAMP)
	$(BIN)/weft demo --check

lint: $(STAMP)
	$(BIN)/ruff check src tests samples bench
	$(BIN)/ruff format --check src tests samples bench

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest -q tests/unit

integration: $(STAMP)
	$(BIN)/pytest -q tests/integration

# The metrics test scrapes the control plane with a real Prometheus, from Debian.
test: lint typecheck $(STAMP)
	@command -v prometheus >/dev/null || \
		(apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus)
	$(BIN)/pytest -q

# The data-plane benchmark drives load with wrk against nginx, both from Debian.
bench: $(STAMP)
	@command -v wrk >/dev/null && (command -v nginx || test -x /usr/sbin/nginx) >/dev/null || \
		(apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends wrk nginx-light)
	$(BIN)/python -m bench.run

# The control-plane scale matrix (N services x M proxies) takes about 15 minutes.
bench-controlplane: $(STAMP)
	$(BIN)/python -m pip install -q -e '.[test,bench]'
	$(BIN)/python -m bench.controlplane
	$(BIN)/python -m bench.plot

clean:
	rm -rf $(VENV) build dist src/*.egg-info .mypy_cache .ruff_cache .pytest_cache
