#!/usr/bin/env bash
# Offline proofs of the chart's monitoring objects (ServiceMonitor, PrometheusRules, dashboard),
# run at the end of scripts/check-chart.sh and runnable alone: `bash scripts/check-monitoring.sh`.
#   - rules:     render both releases, promtool check rules on each PrometheusRule .spec, seed
#                facts and gates, then promtool test rules for EVERY alert (fires / pending before
#                `for` / silent when healthy / silent below its floor)   tests/chart/check_rules.py
#   - dashboard: JSON sanity, every query parses, filters on deployment_variant and returns data
#                per variant, the rendered ConfigMap and its single owner  tests/chart/check_dashboard.py
#   - scrape:    each ServiceMonitor selects only its own Service and yields deployment_variant;
#                derived scrape jobs pass promtool check config           tests/chart/check_scrape.py
#   - the helm-unittest suites of the monitoring templates.
# Prints one PASS/FAIL line per check; exits non-zero when any fails (every check still runs).
# Tools: `make tools` (helm, helm-unittest in .tools/bin; promtool from the Debian package) and the
# repo venv (`make venv`, for PyYAML).
set -uo pipefail

source "$(dirname "$0")/tools-env.sh"
cd "$ROOT"

missing=()
command -v helm >/dev/null || missing+=("helm (make tools)")
command -v promtool >/dev/null || missing+=("promtool (make tools: Debian package prometheus)")
[[ -x "$PY" ]] || missing+=("$PY (make venv)")
if ((${#missing[@]})); then
    printf 'FAIL  monitoring checks: missing %s\n' "${missing[@]}"
    exit 1
fi

OUT="$(mktemp -d)"
trap 'rm -rf "$OUT"' EXIT
status=0

# Each Python check prints its own PASS/FAIL lines and exits 1 on any failure.
for check in check_rules check_dashboard check_scrape; do
    "$PY" -m "tests.chart.$check" "$OUT/$check" || status=1
done

suites=(servicemonitor prometheusrule grafana-dashboard-configmap)
args=()
for suite in "${suites[@]}"; do args+=(-f "tests/${suite}_test.yaml"); done
if helm unittest --strict --color=false "${args[@]}" chart/zai-proxy >"$OUT/unittest.log" 2>&1; then
    printf 'PASS  helm unittest --strict (%s)\n' "${suites[*]}"
else
    printf 'FAIL  helm unittest --strict (%s)\n' "${suites[*]}"
    sed 's/^/      /' "$OUT/unittest.log"
    status=1
fi
exit $status
