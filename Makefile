# zai-proxy: every entry point a user or CI needs. Each target installs what it uses, idempotently,
# into the repo (.venv/, .tools/bin/); nothing is installed system-wide except Debian packages.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV      := .venv
PY        := $(VENV)/bin/python
PIP       := $(VENV)/bin/pip
TOOLS     := $(CURDIR)/.tools/bin
export PATH := $(TOOLS):$(CURDIR)/$(VENV)/bin:$(PATH)
# tiktoken never downloads at run time: tests and the demo use this local cache.
export TIKTOKEN_CACHE_DIR := $(CURDIR)/.cache/tiktoken
# helm and its plugins (helm-unittest) live under .tools/helm, never in $HOME (same as install-tools.sh).
export HELM_CONFIG_HOME := $(CURDIR)/.tools/helm/config
export HELM_CACHE_HOME  := $(CURDIR)/.tools/helm/cache
export HELM_DATA_HOME   := $(CURDIR)/.tools/helm/data
export HELM_PLUGINS     := $(CURDIR)/.tools/helm/plugins

.PHONY: help venv tools tiktoken-cache test test-python test-chart test-image test-ui ui lint chart-docs run dashboard demo bench reliability image clean

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

$(VENV)/.installed: image/requirements.txt requirements-dev.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -r requirements-dev.txt
	touch $@

venv: $(VENV)/.installed ## create .venv with the image's pinned requirements plus test tools

tiktoken-cache: $(VENV)/.installed ## extract tiktoken's BPE files from the litellm wheel (offline)
	$(PY) scripts/tiktoken_cache.py "$(TIKTOKEN_CACHE_DIR)"

tools: ## build helm, helm-unittest, kubeconform, actionlint... into .tools/bin; apt for promtool/redis
	bash scripts/install-tools.sh

test: venv tiktoken-cache tools lint test-chart test-image test-ui ## every check (what CI runs)
	$(PY) -m pytest -q tests --ignore=tests/test_image.py

lint: venv ## ruff over all Python code (settings in pyproject.toml)
	$(VENV)/bin/ruff check .

test-chart: venv tools ## chart checks: helm lint, helm-unittest, kubeconform, kube-score, actionlint, README freshness
	bash scripts/check-chart.sh

test-image: venv tools ## build image/Dockerfile with buildah (offline Debian base) and run its CMD (needs root)
	$(PY) -m pytest -q tests/test_image.py

# The dashboard's browser UI (React + Vite): Node packages only from the committed lockfile.
UI := dashboard/ui
UI_SOURCES := $(shell find $(UI)/src -type f 2>/dev/null) $(UI)/index.html $(UI)/vite.config.ts $(UI)/tsconfig.json

$(UI)/node_modules/.installed: $(UI)/package.json $(UI)/package-lock.json
	@command -v npm >/dev/null || { echo "the dashboard UI needs Node.js >= 20.19 and npm" >&2; exit 1; }
	cd $(UI) && npm ci --no-audit --no-fund
	touch $@

$(UI)/dist/index.html: $(UI)/node_modules/.installed $(UI_SOURCES)
	cd $(UI) && npm run build

ui: $(UI)/dist/index.html ## build the dashboard UI into dashboard/ui/dist/ (npm ci from the lockfile when needed)

test-ui: $(UI)/node_modules/.installed ## dashboard UI: Vitest unit tests, then the production build
	cd $(UI) && npx vitest run
	cd $(UI) && npm run build

image: tools ## build the image into buildah's local storage (BASE_IMAGE=... picks another base)
	bash scripts/build-image.sh

chart-docs: tools ## regenerate chart/zai-proxy/README.md from values.yaml and README.md.gotmpl
	cd chart && helm-docs --chart-search-root . --template-files README.md.gotmpl --sort-values-order file

run: venv ## run the proxy locally against the real Z.AI (needs ZAI_API_KEY)
	@test -n "$$ZAI_API_KEY$$ZAI_API_KEY_FILE" || { echo "set ZAI_API_KEY (or ZAI_API_KEY_FILE) first" >&2; exit 2; }
	cd image && PROMETHEUS_MULTIPROC_DIR=$${PROMETHEUS_MULTIPROC_DIR:-$(CURDIR)/.cache/metrics} ../$(PY) -m gunicorn -c gunicorn.conf.py 'app:create_app()'

DASHBOARD_UI := dashboard/ui

dashboard: venv ## run the dashboard service on :8090 against DASHBOARD_TARGETS (builds the UI if it is missing)
	@test -n "$$DASHBOARD_TARGETS$$DASHBOARD_PROMETHEUS_URL" || { echo "set DASHBOARD_TARGETS first, e.g. DASHBOARD_TARGETS='production=http://127.0.0.1:8080/metrics;canary=http://127.0.0.1:8081/metrics' (dashboard/README.md)" >&2; exit 2; }
	@if [ -f $(DASHBOARD_UI)/package.json ] && [ ! -f $(DASHBOARD_UI)/dist/index.html ]; then \
		command -v npm >/dev/null || { echo "npm is missing: install Node.js 20 and npm (Debian: apt-get install nodejs npm)" >&2; exit 2; }; \
		echo "building the dashboard UI: npm ci && npm run build in $(DASHBOARD_UI)"; \
		(cd $(DASHBOARD_UI) && npm ci && npm run build) || exit 1; \
	fi
	DASHBOARD_DB_PATH=$${DASHBOARD_DB_PATH:-$(CURDIR)/out/dashboard/dashboard.db} $(PY) -m gunicorn -c dashboard/gunicorn.conf.py 'zai_dashboard.app:create_app()'

demo: venv tools tiktoken-cache ## fake Z.AI + both variants + real Prometheus, no cluster/key: panels and alerts to out/demo/ (DEMO_CANARY_FAULT=errors|latency)
	$(PY) -m tools.demo

BENCH_VENV := .venv-bench

# LiteLLM (the benchmark's Python peer) lives in its own venv: its dependencies must not meet ours.
$(BENCH_VENV)/.installed: bench/requirements-litellm.txt
	test -x $(BENCH_VENV)/bin/python || python3 -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install -q --upgrade pip
	$(BENCH_VENV)/bin/pip install -q -r bench/requirements-litellm.txt
	touch $@

bench: venv tiktoken-cache $(BENCH_VENV)/.installed ## zai-proxy vs direct, LiteLLM, nginx, then the dashboard UI budgets: bench/results/ (~12 min on 2 cores; BENCH_ARGS=--quick)
	@command -v nginx >/dev/null && command -v wrk >/dev/null && command -v chromium >/dev/null || bash scripts/install-tools.sh
	$(PY) -m bench.run $(BENCH_ARGS)
	$(PY) -m bench.dashboard_ui

reliability: venv tiktoken-cache tools ## fault and load suite: fault → expected → observed table, out/reliability/ (~25 min; RELIABILITY_ARGS=--fast: ~2 min)
	$(PY) -m tools.reliability $(RELIABILITY_ARGS)
	# The long fuzz profile and 10,000 random paths and models (make test runs short ones).
	ZAI_PROXY_FUZZ=long ZAI_PROXY_CARDINALITY_REQUESTS=10000 \
		$(PY) -m pytest -q tests/test_fuzz.py tests/test_cardinality.py

clean: ## remove run artefacts (keeps .venv and .tools)
	rm -rf out .pytest_cache .hypothesis
