# Post-training LLMs, hands-on: build and test.
#
# The two commands (README.md):
#   make book   execute every chapter notebook once (cpu profile) and build the site
#               -> _build/html/index.html
#   make test   unit tests, md/ipynb pair-sync check, every chapter notebook executed once,
#               then the site built with warnings as errors (what CI runs: .ci/run)
#
# Helpers:
#   make env      create .venv (python3.11) and install torch==2.13.0, requirements.txt, -e .
#   make unit     unit tests only          make pairs    pair-sync check only
#   make stage    copy the book sources to _stage (fresh, output-free notebooks)
#   make execute  stage + run every chapter notebook there once (nbmake --overwrite)
#   make site     build _stage (already executed) into _build/html with -W
#   make sync     jupytext --sync every chapters/*.md with its .ipynb, then strip outputs
#   make world    regenerate the tiny base model and the shipped datasets
#   make seeds CHAPTER=03   run a chapter at seeds 0-4 -> chapters/seeds/03_*.json
#   make placebo CHAPTER=03 run it once with every training budget zero steps (the negative
#                 control: every effect must fail) -> chapters/placebo/03_*.json
#   make pipeline SEED=1    train every stage not cached yet (upstream first), then score the report
#                 card -> reports/report_card.md and .png (python -m posttrain_utils.runtime.pipeline)
#   make student  write the student edition (solutions removed) -> student/chapters/*.ipynb
#   make student-book   build that edition as its own website -> student/_build/html
#   make grade NOTEBOOK=path   execute a student's notebook, run every exercise checker on its answers,
#                 print a table and write NOTEBOOK.grade.json (posttrain_utils.teaching.grade)
#   make clean    remove _build and _stage
#   make bench-ppo  time our PPO against TRL 1.12's PPOTrainer (.venv-bench) -> benchmarks/results
#   make gpu-dry-run  every gpu-profile stage at SmolLM2-135M's size (random weights), one step
#                 each, on the CPU: wall time and peak memory -> benchmarks/results/gpu_dry_run.json
#
# Knobs (make VAR=value): PYTHON, VENV, TORCH (empty: keep the installed torch, e.g. on a GPU
# machine), JOBS (parallel notebooks / test workers), NB_TIMEOUT (seconds per cell),
# POSTTRAIN_PROFILE (cpu by default; gpu needs CUDA and the network; PROFILE=gpu on the command
# line is short for it), SEED (make pipeline's seed, 0 by default), STUDENT (the student edition's
# folder), GRADE_CELL_TIMEOUT (make grade's seconds per cell).

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV ?= .venv
BIN := $(abspath $(VENV))/bin
TORCH ?= torch==2.13.0
JOBS ?= 2
NB_TIMEOUT ?= 1800
STAGE := _stage
SHARED_STAGES ?= sft reward
# trained after SHARED_STAGES: one process per group, the groups side by side (each process is
# single-threaded); a group's stages (comma-separated) train one after another in its process
PARALLEL_STAGES ?= sl-cai,ppo,dpo,rl-cai,grpo,sft-filtered \
  ppo-hack,dpo-sweep,cai-ablations,grpo-variants,lora,qlora,sft-contaminated,reward
# after its stages, each process scores their rows of chapter 9's report card (report_card.main;
# "reward" there means the best-of-n row), so that the chapter only reads the cache
HTML := _build/html
ENV_STAMP := $(VENV)/.posttrain-installed
# What the book is built from; anything else in the repository never reaches Sphinx.
BOOK_SOURCES := _config.yml _toc.yml index.md chapters $(wildcard _static images references.bib)

SEED ?= 0
STUDENT ?= student
GRADE_CELL_TIMEOUT ?= 900
# `make pipeline PROFILE=gpu`: only a command-line PROFILE counts (not one in the environment)
ifeq ($(origin PROFILE),command line)
export POSTTRAIN_PROFILE := $(PROFILE)
endif
export POSTTRAIN_PROFILE ?= cpu
ifeq ($(POSTTRAIN_PROFILE),cpu)
# The cpu profile never touches the network: profiles.activate() installs posttrain_utils.runtime.netguard
# when POSTTRAIN_NO_NETWORK=1, and the Hugging Face libraries are told to stay offline.
export POSTTRAIN_NO_NETWORK ?= 1
export HF_HUB_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1
export HF_HUB_DISABLE_TELEMETRY ?= 1
endif
# One thread per process: tiny models train 2-6x faster, and JOBS processes share the cores.
export OMP_NUM_THREADS ?= 1
export MKL_NUM_THREADS ?= 1
export TOKENIZERS_PARALLELISM ?= false
export PYDEVD_DISABLE_FILE_VALIDATION ?= 1

.PHONY: help test book env unit pairs stage execute site sync world seeds placebo pipeline student student-book \
  grade clean bench-ppo gpu-dry-run

help:
	@sed -n '1,/^$$/p' Makefile | sed 's/^# \{0,1\}//'

## The two commands ##########################################################################

test: env
	$(MAKE) --no-print-directory unit
	$(MAKE) --no-print-directory pairs
	$(MAKE) --no-print-directory execute
	$(MAKE) --no-print-directory site

book: env
	$(MAKE) --no-print-directory execute
	$(MAKE) --no-print-directory site

## Environment ###############################################################################

env: $(ENV_STAMP)

$(ENV_STAMP): requirements.txt requirements-cpu.txt pyproject.toml
	@if [ ! -x "$(BIN)/python" ]; then \
	  echo "creating $(VENV) with $(PYTHON)"; "$(PYTHON)" -m venv "$(VENV)"; fi
	$(if $(TORCH),"$(BIN)/python" -m pip install --quiet "$(TORCH)")
	"$(BIN)/python" -m pip install --quiet -r requirements.txt
	"$(BIN)/python" -m pip install --quiet --no-deps -e .
	"$(BIN)/python" -m pip check
	@touch "$@"

## Steps #####################################################################################

unit: env
	"$(BIN)/python" -m pytest tests -n $(JOBS) -p no:cacheprovider --ignore=tests/test_pairs_sync.py

pairs: env
	"$(BIN)/python" -m pytest tests/test_pairs_sync.py -p no:cacheprovider -q

# A fresh copy of the book sources: notebooks are executed there, so the committed .ipynb files
# stay output-free.
stage:
	rm -rf "$(STAGE)"
	mkdir -p "$(STAGE)"
	cp -R $(BOOK_SOURCES) "$(STAGE)/"
	find "$(STAGE)" \( -name .ipynb_checkpoints -o -name __pycache__ \) -prune -exec rm -rf {} +

# The stages several chapters start from are trained first, once, by a process of their own (each
# notebook would otherwise train a missing one itself, inside its own run time). Then every chapter
# notebook runs exactly once, JOBS at a time, its outputs written back into the
# staged copy. `-c /dev/null` keeps the repository's pytest settings and tests/conftest.py out of
# it (kernels are separate processes anyway). The stage is not under _build: nbmake skips any
# notebook with a `_build` directory in its path.
execute: env stage
	@ls "$(STAGE)"/chapters/*.ipynb >/dev/null 2>&1 || { \
	  echo "error: no chapter notebooks in chapters/ (pair each .md with 'make sync')" >&2; exit 1; }
	"$(BIN)/python" -m posttrain_utils.runtime.checkpoints $(SHARED_STAGES)
	"$(BIN)/python" -m posttrain_utils.evaluation.report_card base sft
	for group in $(PARALLEL_STAGES); do \
	  { "$(BIN)/python" -m posttrain_utils.runtime.checkpoints $${group//,/ } && \
	    "$(BIN)/python" -m posttrain_utils.evaluation.report_card $${group//,/ }; } & \
	done; for job in $$(jobs -p); do wait $$job; done
	cd "$(STAGE)" && \
	  "$(BIN)/python" -m pytest -c /dev/null --rootdir=. -p no:cacheprovider \
	    --nbmake --nbmake-timeout=$(NB_TIMEOUT) --overwrite -n $(JOBS) --durations=0 chapters

# Build the staged, already executed notebooks (execute_notebooks: "off" in _config.yml).
# -W turns every Sphinx warning into an error; --keep-going is deliberately not used.
site: env
	@test -f "$(STAGE)/_toc.yml" || { echo "error: $(STAGE) is not staged; run 'make execute' first" >&2; exit 1; }
	"$(BIN)/jupyter-book" build "$(STAGE)" --path-output . --builder html --all -W
	@echo "The site is in $(abspath $(HTML))/index.html"

## Authoring helpers #########################################################################

# Bring each chapters/NN_name.md and its paired .ipynb in line (the newer one wins), then strip
# outputs from the .ipynb so that only the sources are committed.
sync: env
	@shopt -s nullglob; for md in chapters/*.md; do \
	  if head -n 20 "$$md" | grep -q '^jupytext:'; then "$(BIN)/jupytext" --quiet --sync "$$md"; fi; done
	@shopt -s nullglob; nbs=(chapters/*.ipynb); if [ $${#nbs[@]} -gt 0 ]; then \
	  "$(BIN)/python" scripts/strip_outputs.py "$${nbs[@]}"; fi

# Regenerate the tiny base model (posttrain_utils/assets/tiny-base) and the datasets (data/).
world: env
	"$(BIN)/python" -m posttrain_utils.tinyworld.build_base
	"$(BIN)/python" -m posttrain_utils.tinyworld.make_data

# Execute one chapter at seeds 0-4 (two at a time) and write the figures its Check prints to
# chapters/seeds/NN_name.json; fails if a lesson does not hold at some seed.
seeds: env
	@test -n "$(CHAPTER)" || { echo "usage: make seeds CHAPTER=NN" >&2; exit 1; }
	"$(BIN)/python" -m posttrain_utils.runtime.seeds "$(CHAPTER)" --jobs $(JOBS)

# The negative control: execute one chapter with POSTTRAIN_PLACEBO=1 (every training budget zero
# steps, its stages cached apart) -> chapters/placebo/NN_name.json; fails unless every effect
# failed and every guard and identity held.
placebo: env
	@test -n "$(CHAPTER)" || { echo "usage: make placebo CHAPTER=NN" >&2; exit 1; }
	"$(BIN)/python" -m posttrain_utils.runtime.seeds "$(CHAPTER)" --placebo

# The whole course as one command: every stage of the stage graph in dependency order (cached ones
# are skipped), then the report card (chapter 9) -> reports/report_card.md and .png.
pipeline: env
	"$(BIN)/python" -m posttrain_utils.runtime.pipeline --profile "$(POSTTRAIN_PROFILE)" --seed "$(SEED)"

## The teaching kit (chapters/instructors.md) ################################################

# Every chapter with its gated solutions replaced by an answer cell and a check cell.
student: env
	"$(BIN)/python" -m posttrain_utils.teaching.student --out "$(STUDENT)"

# The student edition as a website of its own (not executed: its pages show no outputs).
student-book: student
	"$(BIN)/jupyter-book" build "$(STUDENT)" --builder html --all -W
	@echo "The student edition is in $(abspath $(STUDENT))/_build/html/index.html"

# Grade one student notebook: cpu profile, no network, a time limit per cell.
grade: env
	@test -n "$(NOTEBOOK)" || { echo "usage: make grade NOTEBOOK=path/to/notebook.ipynb" >&2; exit 1; }
	"$(BIN)/python" -m posttrain_utils.teaching.grade "$(NOTEBOOK)" --cell-timeout "$(GRADE_CELL_TIMEOUT)"

clean:
	rm -rf _build "$(STAGE)"

## Benchmarks ################################################################################

# Seconds per PPO iteration: the course's PPOTrainer (in $(VENV)) against TRL 1.12's experimental
# PPOTrainer, which needs a venv of its own (TRL removed it in 1.13). See benchmarks/README.md.
BENCH_VENV ?= .venv-bench
BENCH_STAMP := $(BENCH_VENV)/.bench-installed

$(BENCH_STAMP): benchmarks/requirements-trl112.txt
	@if [ ! -x "$(BENCH_VENV)/bin/python" ]; then \
	  echo "creating $(BENCH_VENV) with $(PYTHON)"; "$(PYTHON)" -m venv "$(BENCH_VENV)"; fi
	"$(BENCH_VENV)/bin/python" -m pip install --quiet torch==2.13.0
	"$(BENCH_VENV)/bin/python" -m pip install --quiet -r benchmarks/requirements-trl112.txt
	"$(BENCH_VENV)/bin/python" -m pip check
	@touch "$@"

bench-ppo: env $(BENCH_STAMP)
	"$(BIN)/python" benchmarks/bench_ppo.py --trl-python "$(abspath $(BENCH_VENV))/bin/python"

# The gpu profile's stages at SmolLM2-135M's real size and batch shapes, random weights, one step
# each, in fp32 on the CPU (scripts/gpu_dry_run.py): a stand-in for the GPU run of issue 7. Not part
# of `make test`.
gpu-dry-run: env
	"$(BIN)/python" scripts/gpu_dry_run.py --threads $(JOBS)
