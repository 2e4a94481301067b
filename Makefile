# musicgen-ops — one Makefile for install, demo, tests and generated artefacts.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
AZURITE := .tools/node_modules/.bin/azurite-blob
DEMO_DIR ?= demo-output
# The one lock of every install (this Makefile, CI, the three images); `make lock` regenerates it.
LOCK   := requirements/lock.txt
# Extra pip options for torch: on a machine whose indexes hold no CPU build of torch, pass
# TORCH_PIP_ARGS="--index-url https://download.pytorch.org/whl/cpu" (PyPI's Linux torch is the CUDA build).
TORCH_PIP_ARGS ?=
LOCK_ARGS ?=
# One version for the package, the chart and the image tags: musicgen_ops.__version__.
VERSION := $(shell sed -n 's/^__version__ = "\(.*\)"/\1/p' operator/musicgen_ops/__init__.py)
IMAGE_PREFIX ?= ghcr.io/musicgen-ops

.DEFAULT_GOAL := help
.PHONY: help install lock demo test test-fast lint format crds chart chart-docs images bench clean

help:  ## Show the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml $(LOCK)
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first, at the lock's version, as the CPU build (a CUDA build would pull several GB).
	$(BIN)/pip install -q -c $(LOCK) $(TORCH_PIP_ARGS) torch
	$(BIN)/pip install -q -c $(LOCK) -e '.[dev]'
	touch $(STAMP)

$(AZURITE):
	# Azurite 3.35 is the last release that runs on Node.js 20.
	npm install --silent --no-audit --no-fund --prefix .tools azurite@3.35.0

install: $(STAMP) $(AZURITE)  ## Create .venv and install everything for development

# Keeps the current pins where pyproject.toml allows them; `make lock LOCK_ARGS=--upgrade` takes the newest.
lock: $(STAMP)  ## Regenerate requirements/lock.txt from pyproject.toml and requirements/lock.in (uv)
	$(BIN)/uv pip compile pyproject.toml requirements/lock.in --extra dev --python-version 3.11 \
		--python-platform x86_64-manylinux_2_28 --custom-compile-command "make lock" $(LOCK_ARGS) -o $(LOCK)

demo: $(STAMP)  ## Run the whole pipeline on one machine with the tiny model (no cluster, no cloud)
	$(BIN)/musicgen-ops demo --output-dir $(DEMO_DIR)

test: install  ## Run the test suite (starts its own S3, Azurite and Kubernetes API emulators)
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/pytest -q

test-fast: $(STAMP)  ## Tests without the slow ones
	$(BIN)/pytest -q -m "not slow"

lint: $(STAMP)  ## ruff and import-linter
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

format: $(STAMP)  ## Apply ruff's fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

crds: $(STAMP)  ## Regenerate crds/*.yaml and the chart's copy from the pydantic models
	$(BIN)/musicgen-ops crds --output-dir crds --chart-dir charts/musicgen/crds

chart: $(STAMP)  ## Render and lint the Helm chart with the Helm library
	$(BIN)/pytest -q tests/chart

chart-docs: $(STAMP)  ## Regenerate charts/musicgen/README.md from the comments in values.yaml
	$(BIN)/python .ci/chart_readme.py

images:  ## Build the three container images (needs a Docker engine)
	docker build -f images/operator/Dockerfile -t $(IMAGE_PREFIX)/operator:$(VERSION) .
	docker build -f images/trainer/Dockerfile -t $(IMAGE_PREFIX)/trainer:$(VERSION) .
	docker build -f images/generator/Dockerfile -t $(IMAGE_PREFIX)/generator:$(VERSION) .

bench: $(STAMP)  ## Run the CPU benchmarks and write bench/results/ (GPU: see docs/performance.md)
	$(BIN)/python bench/train_step.py --threads 1
	$(BIN)/python bench/export_speed.py
	$(BIN)/python bench/generate.py
	$(BIN)/python bench/generate_fast.py --device cpu --threads 1
	$(BIN)/python bench/decode.py --threads 1

clean:  ## Remove the virtual environment, tools and outputs
	rm -rf $(VENV) .tools $(DEMO_DIR) .pytest_cache .ruff_cache
