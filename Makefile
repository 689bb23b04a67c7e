# seoblog: every check people, hooks and CI run is a target here.
SHELL := /bin/bash
.DEFAULT_GOAL := help
UV ?= $(shell command -v uv 2>/dev/null || echo "$(HOME)/.local/bin/uv")
PYTHON ?= python3
PYTEST_ARGS ?=
ASYNCAPI_CLI ?= 6.2.0
BENCH_ARGS ?=
CHAOS_ARGS ?=

.PHONY: help
help: ## list the targets
	@grep -hE '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

.PHONY: uv
uv: ## install uv if it is missing
	@command -v $(UV) >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet --user uv || $(PYTHON) -m pip install --quiet uv
	@command -v $(UV) >/dev/null 2>&1 || { echo "uv not found after install; add ~/.local/bin to PATH"; exit 1; }

.PHONY: install
install: uv ## install every package of the workspace (frozen lock), byte-compiled
	$(UV) sync --frozen --all-packages --compile-bytecode --python $(PYTHON)
	@# uv compiles site-packages only; the editable workspace sources too, as machines that
	@# set PYTHONDONTWRITEBYTECODE never write them at import (compiled files are still read).
	$(UV) run --frozen --no-sync python -m compileall -q -j 0 libs/*/src services/*/src

.PHONY: up
up: install ## run the whole system on this machine (embedded NATS/PostgreSQL if none answer)
	$(UV) run --frozen seoblog up

.PHONY: browser
browser: ## install Debian's chromium for the web page test, when /usr/bin/chromium is missing
	@[ -x /usr/bin/chromium ] || { SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$SUDO apt-get update && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y --no-install-recommends chromium; }

.PHONY: promtool
promtool: ## install Debian's prometheus (for promtool: alert rule checks) when promtool is missing
	@command -v promtool >/dev/null 2>&1 || { SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$SUDO apt-get update && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y --no-install-recommends prometheus; }

.PHONY: test
test: install browser promtool compose ## the test suite but the long system suites (finds or starts NATS, PostgreSQL, Redis)
	$(UV) run --frozen pytest -q -p no:cacheprovider -m "not slow" $(PYTEST_ARGS)

.PHONY: test-slow
test-slow: install browser promtool compose ## the long system suites (marked slow): kills, chaos, browsers, experiments; CI runs them
	$(UV) run --frozen pytest -q -p no:cacheprovider -m slow $(PYTEST_ARGS)

.PHONY: test-all
test-all: install browser promtool compose ## every test, slow suites included
	$(UV) run --frozen pytest -q -p no:cacheprovider $(PYTEST_ARGS)

.PHONY: lint
lint: install ## ruff, formatting and mypy
	$(UV) run --frozen ruff check .
	$(UV) run --frozen ruff format --check .
	$(UV) run --frozen mypy libs/*/src services/*/src

.PHONY: compose
compose: ## install Debian's docker-compose when no `docker compose` answers (k8s-check renders compose.yaml)
	@docker compose version >/dev/null 2>&1 || command -v docker-compose >/dev/null 2>&1 || { SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$SUDO apt-get update && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y --no-install-recommends docker-compose; }

.PHONY: k8s-check
k8s-check: uv compose ## kubectl kustomize + Kubernetes/CRD schemas, checkov, project rules; compose.yaml, Dockerfile
	UV=$(UV) $(UV) run --frozen --with pyyaml --with kubernetes-validate==1.37.0 python scripts/k8s_check.py

.PHONY: pin-images
pin-images: uv ## pin third-party images by digest (needs a container registry that answers)
	$(UV) run --frozen --with pyyaml python scripts/pin_images.py

.PHONY: clean
clean: ## remove local state (embedded databases, caches)
	rm -rf .seoblog .pytest_cache .ruff_cache .mypy_cache

.PHONY: settings-doc
settings-doc: install ## regenerate the README settings tables and .env.example from the code
	$(UV) run --frozen python scripts/settings_doc.py --readme
	$(UV) run --frozen python scripts/settings_doc.py --env-file

.PHONY: events-doc
events-doc: install ## regenerate docs/asyncapi.yaml and docs/events.md from the event models
	$(UV) run --frozen python -m seoblog_contracts.asyncapi --yaml docs/asyncapi.yaml --markdown docs/events.md

.PHONY: asyncapi-check
asyncapi-check: ## validate docs/asyncapi.yaml with the real AsyncAPI CLI (pinned, from npm)
	ASYNCAPI_METRICS=false SUPPRESS_NO_CONFIG_WARNING=1 npx --yes @asyncapi/cli@$(ASYNCAPI_CLI) validate --fail-severity error docs/asyncapi.yaml

.PHONY: observability
observability: install ## regenerate the Grafana dashboard, PrometheusRule and dashboard ConfigMap
	$(UV) run --frozen python scripts/observability.py

.PHONY: bench
bench: install ## the performance table (bench/run.py: 3 interleaved rounds, ~8-15 min; BENCH_ARGS=--quick for one)
	$(UV) run --frozen python bench/run.py $(BENCH_ARGS)

.PHONY: bench-areas
bench-areas: install ## the per-area benchmarks (bench/<area>/run.py), each printing its own table
	@set -e; for b in bench/*/run.py; do [ -f "$$b" ] || continue; [ "$$b" = bench/chaos/run.py ] && continue; echo "== $$b"; $(UV) run --frozen python "$$b"; done

.PHONY: chaos
chaos: install ## chaos suite, quick (5-6 min): kill -9, NATS/PostgreSQL restarts, JetStream cluster, LLM faults, poison
	$(UV) run --frozen python bench/chaos/run.py --quick $(CHAOS_ARGS)
