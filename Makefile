# jko-flow — documented interface (`make help`). Everything runs in a local virtual environment.
PY        ?= python3
VENV      ?= .venv
BIN       := $(VENV)/bin
# The CPU build of PyTorch (on GPU machines: make install TORCH_SPEC=torch)
TORCH_SPEC ?= torch==2.13.0
PYTEST_ARGS ?=
SEEDS     ?= 1
SEED_LIST := $(shell seq -s, 0 $$(($(SEEDS) - 1)))
LAUNCHER  ?= parallel
DEVICE    ?= cpu
BENCH_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help install install-dev test test-all lint demo bench reproduce reproduce-quick clean

help:  ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q "$(TORCH_SPEC)"
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

install: $(VENV)/.installed  ## create .venv and install jko-flow with CPU PyTorch

install-dev: $(VENV)/.installed-dev  ## install plus the test and lint tools

test: install-dev  ## run the default test suite (fails if no test ran)
	@$(BIN)/python -m pytest -q $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "error: pytest collected no tests"; exit 1; fi; exit $$rc

test-all: install-dev  ## the default suite plus the slow tests
	@$(BIN)/python -m pytest -q -m "slow or not slow" $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "error: pytest collected no tests"; exit 1; fi; exit $$rc

lint: install-dev  ## ruff
	$(BIN)/ruff check jko_cli tests

demo: install  ## train the demo: JKO-Flow on moons, alpha = 5
	$(BIN)/jko-flow train dataset=moons alpha=5

reproduce: install  ## the paper's 2-D experiment (80 runs per seed; SEEDS=3 for error bars) + report; resumable
	$(BIN)/jko-flow train -m sweep=paper hydra/launcher=$(LAUNCHER) seed=$(SEED_LIST) trainer.progress=false
	$(BIN)/jko-flow report outputs/reproduce/paper

reproduce-quick: install  ## the same pipeline, small (12 short runs) + report, a few minutes
	$(BIN)/jko-flow train -m sweep=quick hydra/launcher=$(LAUNCHER) seed=$(SEED_LIST) trainer.progress=false
	$(BIN)/jko-flow report outputs/reproduce/quick

bench: install  ## benchmark eager vs the fast paths → bench.json + table (DEVICE=cuda on a GPU)
	$(BIN)/python -m jko_cli.bench --device $(DEVICE) $(BENCH_ARGS)

clean:  ## remove caches and build files (keeps outputs/ and .venv)
	rm -rf .pytest_cache .ruff_cache build *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
