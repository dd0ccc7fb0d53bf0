# Entry points for people and CI. `make up` builds and pushes the images on
# the local stack; `make test` runs every test. See README.md.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

include scripts/versions.env

PROJECT_DIR := $(abspath $(dir $(lastword $(MAKEFILE_LIST))))
VENV := $(PROJECT_DIR)/.venv
PYTHON := $(VENV)/bin/python
STACK ?= local
PYTHON_BOOTSTRAP ?= python3

# Local state: a file backend inside the project and a passphrase secrets
# provider. The default passphrase protects nothing and suits only a local
# stack; set PULUMI_CONFIG_PASSPHRASE to your own for anything else.
export PULUMI_BACKEND_URL ?= file://$(PROJECT_DIR)/.pulumi-state
export PULUMI_CONFIG_PASSPHRASE ?= base-images-local-only
export PULUMI_SKIP_UPDATE_CHECK := true
export PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION := true
export PULUMI_PYTHON_CMD := $(PYTHON)

.PHONY: help
help: ## List the targets.
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | expand -t 20

$(VENV)/.requirements: requirements.txt
	$(PYTHON_BOOTSTRAP) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

.PHONY: venv
venv: $(VENV)/.requirements ## Create the virtualenv with the pinned requirements.

.PHONY: test-unit
test-unit: venv ## Unit tests: no Docker daemon or Pulumi CLI needed, under a minute.
	$(PYTHON) -m pytest tests/unit

.PHONY: test
test: test-unit ## Every test.

.PHONY: readme
readme: venv ## Regenerate the graph diagram in README.md from the catalog.
	$(PYTHON) -m components.readme README.md
