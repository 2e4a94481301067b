# musicgen-ops — one Makefile for install, demo, tests and generated artefacts.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
AZURITE := .tools/node_modules/.bin/azurite-blob
DEMO_DIR ?= demo-output

.DEFAULT_GOAL := help
.PHONY: help install demo studio test test-fast test-browser lint format crds chart images bench clean

help:  ## Show the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# The CPU build of torch; an unpinned torch would pull a multi-GB CUDA build.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

$(AZURITE):
	# Azurite 3.35 is the last release that runs on Node.js 20.
	npm install --silent --no-audit --no-fund --prefix .tools azurite@3.35.0

install: $(STAMP) $(AZURITE)  ## Create .venv and install everything for development

demo: $(STAMP)  ## Run the whole pipeline on one machine with the tiny model (no cluster, no cloud)
	$(BIN)/musicgen-ops demo --output-dir $(DEMO_DIR)

studio: $(STAMP)  ## Start the studio web app on this machine (prints the URL with its token)
	$(BIN)/musicgen-ops studio --root studio-data

test: install  ## Run the test suite (starts its own S3, Azurite and Kubernetes API emulators)
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/pytest -q

test-fast: $(STAMP)  ## Tests without the slow ones
	$(BIN)/pytest -q -m "not slow"

test-browser: $(STAMP)  ## The studio's browser tests (needs Debian's chromium: apt-get install chromium)
	$(BIN)/pytest -q -m browser tests/studio

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

images:  ## Build the container images (needs a Docker engine)
	docker build -f images/operator/Dockerfile -t musicgen-ops/operator:dev .
	docker build -f images/trainer/Dockerfile -t musicgen-ops/trainer:dev .
	docker build -f images/generator/Dockerfile -t musicgen-ops/generator:dev .
	docker build -f images/studio/Dockerfile -t musicgen-ops/studio:dev .

bench: $(STAMP)  ## Run the CPU benchmarks and write bench/results/ (GPU: see docs/performance.md)
	$(BIN)/python bench/train_step.py --threads 1
	$(BIN)/python bench/export_speed.py
	$(BIN)/python bench/generate.py
	$(BIN)/python bench/generate_fast.py --device cpu --threads 1

clean:  ## Remove the virtual environment, tools and outputs
	rm -rf $(VENV) .tools $(DEMO_DIR) studio-data .pytest_cache .ruff_cache
