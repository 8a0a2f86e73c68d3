# streamlock: `make demo` and `make test` work on a fresh Debian machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench bench-scale soak lint format system-deps venv clean mutate trust

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP)

# The real registry (CNCF distribution), skopeo, wrk, the browser for the web view's tests
# (chromium, chromium-driver), Graphviz (the promotion diagram), kubectl (kubernetes-client:
# rendered manifests and deploy/ read back by kubectl's own decoder) and /usr/bin/time (the
# benchmarks' peak memory of a pass) come from Debian's packages.
system-deps:
	@missing=""; \
	command -v docker-registry >/dev/null || missing="$$missing docker-registry"; \
	command -v skopeo >/dev/null || missing="$$missing skopeo"; \
	command -v wrk >/dev/null || missing="$$missing wrk"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v chromedriver >/dev/null || missing="$$missing chromium-driver"; \
	command -v dot >/dev/null || missing="$$missing graphviz"; \
	command -v kubectl >/dev/null || missing="$$missing kubernetes-client"; \
	test -x /usr/bin/time || missing="$$missing time"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" != 0 ]; then echo "✗ missing:$$missing; install them with: sudo apt-get install -y$$missing" >&2; exit 1; fi; \
	  echo "installing:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

demo: $(STAMP) system-deps
	PYTHONPATH=. $(BIN)/python -m tests.fixtures.demo

test: $(STAMP) system-deps
	$(BIN)/python -m pytest -q

bench: $(STAMP) system-deps
	PYTHONPATH=. $(BIN)/python -m benchmarks

# The scale simulation: 100,000 tags, a year of history (about 15 minutes on 2 cores);
# ARGS=--small for a quick check, see `python -m benchmarks.scale --help`.
bench-scale: $(STAMP) system-deps
	PYTHONPATH=. $(BIN)/python -m benchmarks.scale $(ARGS)

# Mutation testing, one module at a time within a time limit each (tests/trust/mutate.py);
# `make mutate MODULE=trailers` runs one, TIME=300 caps each module (seconds), SURVIVORS=1 runs
# only the mutants no test caught before. Surviving mutants' diffs land in
# .mutate/<module>.survivors.diff.
mutate: $(STAMP) system-deps
	PYTHONPATH=. $(BIN)/python -m tests.trust.mutate $(if $(MODULE),--module $(MODULE)) $(if $(TIME),--time $(TIME)) $(if $(SURVIVORS),--survivors)

# Real faults and hostile inputs against the real CLI; a table whose counts must all be 0.
trust: $(STAMP) system-deps
	PYTHONPATH=. $(BIN)/python -m tests.trust $(if $(K),-k $(K))

# Ten minutes of `streamlock run` under load and chaos, loopback only (SOAK_SECONDS to shorten).
soak: $(STAMP) system-deps
	PYTHONPATH=. $(BIN)/python -m benchmarks.soak

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis .demo .bench
