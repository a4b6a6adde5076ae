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
# Python caches compiled modules (__pycache__/, git-ignored) even where the shell says not to: the
# suite and the demo start hundreds of interpreters (xdist workers, gunicorns, fake upstreams), and
# each would compile every module of ours again (15 s of CPU per pytest worker, before any test).
unexport PYTHONDONTWRITEBYTECODE
# helm and its plugins (helm-unittest) live under .tools/helm, never in $HOME (same as install-tools.sh).
export HELM_CONFIG_HOME := $(CURDIR)/.tools/helm/config
export HELM_CACHE_HOME  := $(CURDIR)/.tools/helm/cache
export HELM_DATA_HOME   := $(CURDIR)/.tools/helm/data
export HELM_PLUGINS     := $(CURDIR)/.tools/helm/plugins

.PHONY: help venv tools go-tools helm debs tiktoken-cache test test-python test-python-base test-python-tools test-chart test-image test-ui ui lint settings-docs chart-docs run dashboard demo bench reliability image clean

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

tools: go-tools debs ## build helm, helm-unittest, kubeconform, actionlint... into .tools/bin; apt for promtool/redis

# The Go-built tools take minutes of CPU from a cold cache: helm is built first, on its own, since
# the Python suite needs nothing else of them; the rest reuse its compiled packages.
helm: ## build helm alone into .tools/bin (the part of `make tools` the Python suite needs)
	bash scripts/install-tools.sh helm

go-tools: helm ## build every Go-built tool into .tools/bin and register the helm-unittest plugin
	bash scripts/install-tools.sh go

debs: ## install the Debian packages the checks use (promtool, redis-server, chromium...) when missing
	bash scripts/install-tools.sh debs

# `make test` is one make run: every step starts as soon as what it needs is there, and prints its
# output whole when it ends. The Go tools (CPU-bound, the longest step from a cold cache) build
# while pip, npm and most of the Python suite run (test-python-base); the tests marked
# `needs_tools` start once helm and the UI are built and the rest of the suite is done
# (test-python-tools), and the chart checks once every tool is. A failed step does not stop the
# others (-k): one run reports every failure.
SIDE_BY_SIDE := --no-print-directory --output-sync=target

test: ## every check (what CI runs)
	$(MAKE) $(SIDE_BY_SIDE) -k -j8 lint test-ui test-image test-python-base test-python-tools test-chart

# pytest-xdist workers; most tests wait on timers and sockets, not the CPU, so more workers than
# cores pays. --dist loadscope hands out a module's test functions, or a class's tests, as one
# unit, so a module- or class-scoped fixture (a reliability group, the leak run) runs once; units
# go out in collection order, where tests/conftest.py puts those marked `slow` first, and
# tests/scheduling.py keeps them on separate workers. One file runs faster without -n:
# `.venv/bin/python -m pytest -q tests/test_x.py`.
PYTEST_DIST := --dist loadscope --no-loadscope-reorder
PYTEST_PARALLEL := -n 4 $(PYTEST_DIST)
PYTEST_SUITE := $(PY) -m pytest -q $(PYTEST_PARALLEL) tests --ignore=tests/test_image.py

# The whole suite in one session, once helm and the UI are built. Six workers on 2 cores: the
# alert-window runs, the soak and the browser wait on timers, and the CPU-bound tests fill that
# time (measured on 2 cores: 150 s; the two parts below one after the other: 207 s).
test-python: venv tiktoken-cache debs helm ui ## the pytest suite (all but the image check), one session on six workers
	$(PY) -m pytest -q -n 6 $(PYTEST_DIST) tests --ignore=tests/test_image.py

# The suite in two parts, for `make test` from a cold machine, where the Go build takes minutes.
# The base part runs without the built tools (helm, the dashboard UI), which may still be building
# beside it: the Go tools are off PATH and tools/built_tools.py refuses them, so a test that uses
# one without the `needs_tools` mark fails here on every machine, built or not. The two parts keep
# their own pytest caches (`--lf` works on each).
test-python-base: venv tiktoken-cache debs ## the pytest suite but the tests marked needs_tools
	PATH="$(subst $(TOOLS):,,$(PATH))" ZAI_PROXY_WITHOUT_BUILT_TOOLS=1 $(PYTEST_SUITE) -m "not needs_tools"

# After the base part, never beside it: both at once are eight pytest workers, chromium and
# their gunicorns on 2 cores beside the Go build, where timing-bound checks (a slow drip's 2 s
# idle timeout, scrape durations) were seen to fail. Order-only, so `make test-python-tools`
# alone runs only itself.
AFTER_BASE := $(if $(filter test-python-base,$(MAKECMDGOALS)),test-python-base)

# Only the files that mention needs_tools are collected: collecting the whole suite on four workers
# to run 73 of its tests took 16 s of CPU. tests/conftest.py refuses a needs_tools test elsewhere.
NEEDS_TOOLS_FILES = $(shell grep -rl --include='test_*.py' needs_tools tests)

test-python-tools: venv tiktoken-cache debs helm ui | $(AFTER_BASE) ## the pytest tests marked needs_tools (helm, the built UI)
	$(PY) -m pytest -q $(PYTEST_PARALLEL) $(NEEDS_TOOLS_FILES) -m needs_tools -o cache_dir=.pytest_cache/needs-tools

lint: venv ## ruff over all Python code (settings in pyproject.toml)
	$(VENV)/bin/ruff check .

test-chart: venv go-tools debs ## chart checks: helm lint, helm-unittest, kubeconform, kube-score, actionlint, README freshness
	bash scripts/check-chart.sh

# No pytest cache here: in `make test` this runs beside the pytest parts, which keep .pytest_cache.
test-image: venv debs ## build image/Dockerfile with buildah (offline Debian base) and run its CMD (needs root)
	$(PY) -m pytest -q -p no:cacheprovider tests/test_image.py

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

# The build is `make ui`'s, shared with the browser tests (test-python-tools): one build, never
# rewritten while a test serves it.
test-ui: $(UI)/dist/index.html ## dashboard UI: the production build (tsc, vite), then the Vitest unit tests
	cd $(UI) && npx vitest run

image: tools ## build the image into buildah's local storage (BASE_IMAGE=... picks another base)
	bash scripts/build-image.sh

settings-docs: venv ## regenerate the README's configuration table from image/zai_proxy/settings.py
	$(PY) -m tools.settings_docs --write

chart-docs: tools ## regenerate chart/zai-proxy/README.md from values.yaml and README.md.gotmpl
	cd chart && helm-docs --chart-search-root . --template-files README.md.gotmpl --sort-values-order file

# The launcher checks every setting (a bad one is one line naming it), then execs the image's
# gunicorn command. Loopback only unless BIND_HOST says otherwise; each run has its own metrics folder.
run: venv ## run the proxy locally against the real Z.AI (needs ZAI_API_KEY; listens on 127.0.0.1:8080)
	cd image && ../$(PY) -m zai_proxy.launch

dashboard: venv ui ## run the dashboard service on :8090 against DASHBOARD_TARGETS (builds the UI when needed)
	@test -n "$$DASHBOARD_TARGETS$$DASHBOARD_PROMETHEUS_URL" || { echo "set DASHBOARD_TARGETS first, e.g. DASHBOARD_TARGETS='production=http://127.0.0.1:8080/metrics;canary=http://127.0.0.1:8081/metrics' (dashboard/README.md)" >&2; exit 2; }
	DASHBOARD_DB_PATH=$${DASHBOARD_DB_PATH:-$(CURDIR)/out/dashboard/dashboard.db} $(PY) -m gunicorn -c dashboard/gunicorn.conf.py 'zai_dashboard.app:create_app()'

demo: venv tools tiktoken-cache ui ## fake Z.AI + both variants + real Prometheus, no cluster/key: panels and alerts to out/demo/ (DEMO_CANARY_FAULT=errors|latency)
	$(PY) -m tools.demo

BENCH_VENV := .venv-bench

# LiteLLM (the benchmark's Python peer) lives in its own venv: its dependencies must not meet ours.
$(BENCH_VENV)/.installed: bench/requirements-litellm.txt
	test -x $(BENCH_VENV)/bin/python || python3 -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install -q --upgrade pip
	$(BENCH_VENV)/bin/pip install -q -r bench/requirements-litellm.txt
	touch $@

bench: venv tiktoken-cache $(BENCH_VENV)/.installed ## zai-proxy vs direct, LiteLLM, nginx, then the dashboard service's and UI's budgets and one long SSE event's cost: bench/results/ (~17 min on 2 cores; BENCH_ARGS=--quick)
	@command -v nginx >/dev/null && command -v wrk >/dev/null && command -v chromium >/dev/null || bash scripts/install-tools.sh
	$(PY) -m bench.run $(BENCH_ARGS)
	$(PY) -m bench.dashboard_service $(filter --quick,$(BENCH_ARGS))
	$(PY) -m bench.dashboard_ui
	$(PY) -m bench.sse_event_cost

# The long fuzz profile and 10,000 random paths and models belong to the full run only (make test
# runs short ones); RELIABILITY_ARGS=--fast skips them.
reliability: venv tiktoken-cache tools ## fault and load suite: fault → expected → observed table, out/reliability/ (25-40 min; RELIABILITY_ARGS=--fast: ~2 min)
	$(PY) -m tools.reliability $(RELIABILITY_ARGS)
	$(if $(filter --fast,$(RELIABILITY_ARGS)),@echo "--fast: long fuzz and cardinality runs skipped",\
		ZAI_PROXY_FUZZ=long ZAI_PROXY_CARDINALITY_REQUESTS=10000 \
		$(PY) -m pytest -q tests/test_fuzz.py tests/test_cardinality.py)

clean: ## remove run artefacts (keeps .venv and .tools)
	rm -rf out .pytest_cache .hypothesis
