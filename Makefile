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
# the SLURM launchers (submitit) are an optional extra: reproduce targets install it when LAUNCHER needs it
RUN_DEPS  := $(if $(filter slurm%,$(LAUNCHER)),install-all,install)
AUTO_ARGS ?=   # extra overrides for reproduce-auto, e.g. AUTO_ARGS=trainer.early_stop_every=25
# A sweep in parts (longer than a sitting, or across machines): DATASETS=moons,circles runs only those data sets
# of the sweep (ALPHAS=10 only those alphas, where the sweep has alphas); KEEP=docs/results/runs restores the
# runs kept there before the sweep (they are skipped) and keeps the newly finished ones after it
# (scripts/results.py: small files only, no checkpoints)
DATASETS  ?=
ALPHAS    ?=
KEEP      ?=
PARTS_ARGS = $(if $(DATASETS),dataset=$(DATASETS)) $(if $(ALPHAS),alpha=$(ALPHAS))
define RESTORE
$(if $(KEEP),@if [ -d $(KEEP)/$(1) ]; then $(BIN)/python scripts/results.py restore $(KEEP)/$(1) outputs/reproduce/$(1); fi)
endef
# run $(3), then (with KEEP) keep the finished runs of sweep $(1) even when it failed or was interrupted
define AND_KEEP
$(if $(KEEP),$(3); st=$$?; $(BIN)/python scripts/results.py keep outputs/reproduce/$(1) $(KEEP)/$(1) $(2); exit $$st,$(3))
endef

# The K = 5 arm of reproduce-auto is the same runs as reproduce's JKO-Flow (same config and seed): finished
# ones are copied over, so the study trains only its new arms (not with AUTO_ARGS, which changes every arm).
define REUSE_PAPER_K5
@for s in $(subst $(comma), ,$(SEED_LIST)); do for d in outputs/reproduce/paper/*jko=constant/seed=$$s; do \
	  [ -f "$$d/metrics.json" ] || continue; t="outputs/reproduce/auto/$${d#outputs/reproduce/paper/}"; \
	  [ -e "$$t" ] || { mkdir -p "$$(dirname "$$t")" && cp -a "$$d" "$$t" && echo "reusing $$d"; }; done; done
endef
comma := ,

# sweep=methods's JKO-Flow and OT-Flow runs are sweep=paper's at alpha 10 (same config): finished ones are copied
define REUSE_PAPER_ALPHA10
@for s in $(subst $(comma), ,$(SEED_LIST)); do for j in constant:jko otflow:otflow; do \
	  for d in outputs/reproduce/paper/alpha=10,dataset=*,jko=$${j%%:*}/seed=$$s; do \
	  [ -f "$$d/metrics.json" ] || continue; ds=$${d#outputs/reproduce/paper/alpha=10,dataset=}; ds=$${ds%%,*}; \
	  t="outputs/reproduce/methods/dataset=$$ds,method=$${j##*:}/seed=$$s"; \
	  [ -e "$$t" ] || { mkdir -p "$$(dirname "$$t")" && cp -a "$$d" "$$t" && echo "reusing $$d"; }; done; done; done
endef
# Flow matching's wall-clock budget (trainer.max_seconds, Adam-step seconds): JKO-Flow's median train_wall_s on
# this machine with two jobs of one thread each (the parallel launcher), by `python scripts/budget.py DIR
# --alpha 10`: the toys on docs/results/runs/paper (seeds 0-2: 160.0 s, per data set 152-175 s); gmm on the
# JKO-Flow runs of reproduce-methods-gmm's first sweep, `python scripts/budget.py docs/results/runs/methods`
# (d = 8: 23.7 s over 3 seeds; d = 32: 245 s over the first 2 seeds, 241 s over all 3, kept at the 245 s
# its time arm ran with).
# The report prints every method's own train seconds beside it. Measure again on another machine.
CFM_SECONDS_TOY   ?= 160
CFM_SECONDS_GMM8  ?= 24
CFM_SECONDS_GMM32 ?= 245
TIME_ARM = method=cfm trainer.epochs_per_step=1000000 trainer.max_seconds
ICFM_ARM = method=cfm cfm.coupling=independent cfm.batch_size=null   # I-CFM on the whole batch: no pairing cost
METHODS_RUN = $(BIN)/jko-flow train -m hydra/launcher=$(LAUNCHER) seed=$(SEED_LIST) trainer.progress=false
METHODS_TOYS = $(METHODS_RUN) sweep=methods $(if $(DATASETS),dataset=$(DATASETS))
METHODS_GMM = $(METHODS_RUN) sweep=methods_gmm

.DEFAULT_GOAL := help
.PHONY: help install install-dev install-all test test-all lint demo bench check-gpu dist reproduce reproduce-quick reproduce-auto reproduce-auto-quick reproduce-reference reproduce-methods reproduce-methods-toys reproduce-methods-gmm beyond2d clean

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

# the optional extras too (launchers for SLURM / slurm_local, TensorBoard, MLflow); torch stays as installed
$(VENV)/.installed-all: $(VENV)/.installed-dev
	$(BIN)/pip install -q -e '.[dev,cluster,tracking]'
	touch $@

install: $(VENV)/.installed  ## create .venv and install jko-flow with CPU PyTorch

install-dev: $(VENV)/.installed-dev  ## install plus the test and lint tools

install-all: $(VENV)/.installed-all  ## install-dev plus the extras: cluster launchers, TensorBoard, MLflow

test: install-dev  ## run the default test suite (fails if no test ran)
	@$(BIN)/python -m pytest -q $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "error: pytest collected no tests"; exit 1; fi; exit $$rc

test-all: install-all  ## the default suite plus the slow tests (with the optional extras installed)
	@$(BIN)/python -m pytest -q -m "slow or not slow" $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "error: pytest collected no tests"; exit 1; fi; exit $$rc

lint: install-dev  ## ruff
	$(BIN)/ruff check jko_cli tests scripts

demo: install  ## train the demo: JKO-Flow on moons, alpha = 5
	$(BIN)/jko-flow train dataset=moons alpha=5

reproduce: $(RUN_DEPS)  ## the paper's 2-D experiment (80 runs per seed; SEEDS=3 for error bars) + report; resumable
	$(call RESTORE,paper)
	$(call AND_KEEP,paper,,$(BIN)/jko-flow train -m sweep=paper hydra/launcher=$(LAUNCHER) seed=$(SEED_LIST) trainer.progress=false $(PARTS_ARGS))
	$(BIN)/jko-flow report outputs/reproduce/paper

reproduce-quick: $(RUN_DEPS)  ## the same pipeline, small (12 short runs) + report, a few minutes
	$(BIN)/jko-flow train -m sweep=quick hydra/launcher=$(LAUNCHER) seed=$(SEED_LIST) trainer.progress=false
	$(BIN)/jko-flow report outputs/reproduce/quick

reproduce-auto: $(RUN_DEPS)  ## choosing K: 8 sets x 5 alphas x {K=5, K auto, geometric + auto} (120 runs per seed) + report
	$(call RESTORE,auto)
	$(if $(strip $(AUTO_ARGS)),,$(REUSE_PAPER_K5))
	$(call AND_KEEP,auto,--points,$(BIN)/jko-flow train -m sweep=auto hydra/launcher=$(LAUNCHER) seed=$(SEED_LIST) trainer.progress=false $(AUTO_ARGS) $(PARTS_ARGS))
	$(BIN)/jko-flow report outputs/reproduce/auto

reproduce-auto-quick: $(RUN_DEPS)  ## the same pipeline, small (12 short runs) + report, a few minutes
	$(BIN)/jko-flow train -m sweep=auto_quick hydra/launcher=$(LAUNCHER) seed=$(SEED_LIST) trainer.progress=false $(AUTO_ARGS)
	$(BIN)/jko-flow report outputs/reproduce/auto_quick

reproduce-reference: $(RUN_DEPS)  ## JKO-Flow, alpha 10, 500 epochs/step on swissroll, 8gaussians, checkerboard x 3 seeds + report
	$(call RESTORE,reference)
	$(call AND_KEEP,reference,,$(BIN)/jko-flow train -m sweep=reference hydra/launcher=$(LAUNCHER) trainer.progress=false $(PARTS_ARGS))
	$(BIN)/jko-flow report outputs/reproduce/reference

reproduce-methods: $(RUN_DEPS)  ## JKO-Flow, OT-Flow and flow matching at equal Adam steps and equal time (SEEDS=3) + report
	$(MAKE) reproduce-methods-toys && $(MAKE) reproduce-methods-gmm   # one after the other: the seconds are measured
	$(BIN)/jko-flow report outputs/reproduce/methods

reproduce-methods-toys: $(RUN_DEPS)  ## the eight toys of reproduce-methods (DATASETS=… for a part; reuses reproduce's alpha-10 runs)
	$(call RESTORE,methods)
	$(REUSE_PAPER_ALPHA10)
	$(call AND_KEEP,methods,--points,$(METHODS_TOYS) && $(METHODS_TOYS) $(ICFM_ARM) && \
	  $(METHODS_TOYS) $(TIME_ARM)=$(CFM_SECONDS_TOY))

reproduce-methods-gmm: $(RUN_DEPS)  ## gmm d = 8, 32 of reproduce-methods
	$(call RESTORE,methods)
	$(call AND_KEEP,methods,--points,$(METHODS_GMM) && $(METHODS_GMM) method=cfm cfm.coupling=independent && \
	  $(METHODS_GMM) dataset.dim=8 $(TIME_ARM)=$(CFM_SECONDS_GMM8) && \
	  $(METHODS_GMM) dataset.dim=32 $(TIME_ARM)=$(CFM_SECONDS_GMM32))

beyond2d: $(RUN_DEPS)  ## JKO-Flow vs OT-Flow (equal Adam steps) on gmm d=8, 32 and digits at alpha 1, 10, 100 + report
	$(BIN)/jko-flow train -m sweep=beyond2d hydra/launcher=$(LAUNCHER) dataset=gmm dataset.dim=8,32 trainer.epochs_per_step=20 trainer.progress=false
	$(BIN)/jko-flow train -m sweep=beyond2d hydra/launcher=$(LAUNCHER) dataset=digits trainer.epochs_per_step=100 trainer.progress=false
	$(BIN)/jko-flow report outputs/reproduce/beyond2d

bench: install  ## benchmark eager vs the fast paths → bench.json + table (DEVICE=cuda on a GPU)
	$(BIN)/python -m jko_cli.bench --device $(DEVICE) $(BENCH_ARGS)

check-gpu: install-dev  ## on a GPU machine (TORCH_SPEC=torch): the CUDA tests and make bench DEVICE=cuda, < 10 min
	BIN=$(BIN) bash scripts/check_gpu.sh

dist: install-dev  ## build the wheel into dist/ (configs and kernel sources inside; pip install dist/*.whl)
	$(BIN)/pip wheel -q --no-deps --no-build-isolation . -w dist

clean:  ## remove caches and build files (keeps outputs/ and .venv)
	rm -rf .pytest_cache .ruff_cache build dist *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
