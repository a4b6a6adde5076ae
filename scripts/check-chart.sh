#!/usr/bin/env bash
# Every offline check of the Helm chart, its examples and the CI workflows (`make test-chart`):
#   helm lint --strict per values file, helm-unittest, kubeconform -strict on every render and on
#   examples/argocd, actionlint, kube-score, kube-linter (where installed), helm-docs freshness, then the
#   monitoring checks.
# Prints one line per check and exits non-zero when any fails (all checks still run).
# Tools come from `make tools` (.tools/bin); core schemas from the kubernetes-validate package.
set -uo pipefail

source "$(dirname "$0")/tools-env.sh"
cd "$ROOT"
CHART=chart/zai-proxy

# The oldest Kubernetes the chart supports (Chart.yaml kubeVersion) and the newest schemas shipped.
KUBE_VERSIONS=(1.30 1.37)
CRD_SCHEMAS="$ROOT/tests/chart/crd-schemas"   # vendored, see its README

OUT="$(mktemp -d)"
trap 'rm -rf "$OUT"' EXIT
failed=0
passed=0

# check NAME COMMAND...: run one check, print PASS/FAIL with its output on failure.
check() {
    local name="$1"
    shift
    if "$@" >"$OUT/log" 2>&1; then
        printf 'PASS  %s\n' "$name"
        passed=$((passed + 1))
    else
        printf 'FAIL  %s\n' "$name"
        sed 's/^/      /' "$OUT/log"
        failed=$((failed + 1))
    fi
}

# The values files to lint and render: name -> release, namespace, -f arguments.
declare -a SCENARIOS=()
scenario() { SCENARIOS+=("$1|$2|$3|$4"); }
scenario production zai-proxy mcp "values/values-production.yaml"
scenario canary zai-proxy-canary devpod "values/values-canary.yaml"
# The NetworkPolicy example is an overlay on the production values.
scenario production+networkpolicy zai-proxy mcp "values/values-production.yaml -f examples/networkpolicy.yaml"
for file in "$CHART"/ci/*-values.yaml; do
    name="$(basename "$file" -values.yaml)"
    scenario "ci/$name" zai-proxy ci "$file"
done

# --- helm lint --strict ------------------------------------------------------------------------
# helm lint renders `fail` as a note, not an error, so the bare defaults lint clean; that they
# refuse to render without a Z.AI key is checked with helm template below.
check "helm lint --strict (defaults)" helm lint --strict "$CHART"
for entry in "${SCENARIOS[@]}"; do
    IFS='|' read -r name release namespace files <<<"$entry"
    # shellcheck disable=SC2086 # $files may hold "a.yaml -f b.yaml"
    check "helm lint --strict ($name)" helm lint --strict "$CHART" --namespace "$namespace" -f $files
done

# --- helm-unittest -----------------------------------------------------------------------------
check "helm unittest --strict (all suites)" helm unittest --strict --color=false "$CHART"
# helm-unittest writes a missing snapshot and passes; a snapshot only guards once it is committed.
snapshots_committed() {
    git rev-parse --is-inside-work-tree >/dev/null 2>&1 || return 0
    local new
    new="$(git ls-files --others --exclude-standard -- "$CHART/tests/__snapshot__")"
    [[ -z "$new" ]] || { echo "uncommitted snapshots (review and commit them):"; echo "$new"; return 1; }
}
check "helm-unittest snapshots are committed" snapshots_committed

# --- renders -----------------------------------------------------------------------------------
mkdir -p "$OUT/renders"
render_all() {
    local entry name release namespace files
    for entry in "${SCENARIOS[@]}"; do
        IFS='|' read -r name release namespace files <<<"$entry"
        # shellcheck disable=SC2086 # $files may hold "a.yaml -f b.yaml"
        helm template "$release" "$CHART" --namespace "$namespace" -f $files \
            >"$OUT/renders/${name//\//-}.yaml" || return 1
    done
}
check "helm template (every values file)" render_all
defaults_demand_key() {
    if helm template zai-proxy "$CHART" >"$OUT/defaults" 2>&1; then
        echo "the bare defaults rendered, but the chart must demand a Z.AI key"
        return 1
    fi
    grep -q "zai.apiKey or zai.existingSecret must be set" "$OUT/defaults" || { cat "$OUT/defaults"; return 1; }
}
check "helm template: bare defaults fail, naming zai.apiKey / zai.existingSecret" defaults_demand_key

# --- kubeconform -strict -----------------------------------------------------------------------
kubeconform_all() {
    local version dir
    for version in "${KUBE_VERSIONS[@]}"; do
        dir="$("$PY" scripts/k8s_schemas.py "$ROOT/.cache/k8s-schemas" "$version")" || return 1
        kubeconform -strict -summary -output text \
            -kubernetes-version "$version.0" \
            -schema-location "$dir/{{.ResourceKind}}{{.KindSuffix}}.json" \
            -schema-location "$CRD_SCHEMAS/{{.Group}}/{{.ResourceKind}}_{{.ResourceAPIVersion}}.json" \
            "$@" || return 1
    done
}
check "kubeconform -strict (renders, Kubernetes ${KUBE_VERSIONS[*]})" kubeconform_all "$OUT"/renders/*.yaml
if compgen -G "examples/argocd/*.yaml" >/dev/null; then
    check "kubeconform -strict (examples/argocd)" kubeconform_all examples/argocd/*.yaml
else
    check "kubeconform -strict (examples/argocd present)" false
fi

# --- kube-score --------------------------------------------------------------------------------
kube_score_all() {
    local -a args
    mapfile -t args < <("$PY" - <<'EOF'
import yaml
cfg = yaml.safe_load(open(".kube-score.yaml"))
print("--kubernetes-version"); print(cfg["kubernetesVersion"])
for test in cfg.get("enableOptionalTests", []):
    print("--enable-optional-test"); print(test)
for test, why in cfg.get("ignoreTests", {}).items():
    assert why and len(why) > 20, f"ignoreTests.{test} needs a reason"
    print("--ignore-test"); print(test)
if cfg["ignoreContainerCpuLimit"]["value"]:
    print("--ignore-container-cpu-limit")
print("--min-replicas-deployment"); print(cfg["minReplicasDeployment"]["value"])
EOF
    ) || return 1
    local file rc=0
    for file in "$@"; do
        kube-score score --output-format ci --color never "${args[@]}" "$file" >"$OUT/score" || {
            echo "== $(basename "$file")"
            grep -E '^\[(CRITICAL|WARNING)\]' "$OUT/score"
            rc=1
        }
    done
    return $rc
}
check "kube-score (renders, exclusions explained in .kube-score.yaml)" kube_score_all "$OUT"/renders/*.yaml

# --- kube-linter ---------------------------------------------------------------------------------
# golang.stackrox.io/kube-linter is refused by the Go module proxy this project's machines reach, so
# it runs where it can be installed: the GitHub workflow puts it on PATH (.github/workflows/ci.yml)
# and this check runs it there, configured by .kube-linter.yaml. Elsewhere kube-score (above) is the
# best-practice lint, and this line says kube-linter was not run rather than pretending it passed.
if command -v kube-linter >/dev/null 2>&1; then
    check "kube-linter (renders, exclusions explained in .kube-linter.yaml)" \
        kube-linter lint --config .kube-linter.yaml "$OUT"/renders/*.yaml
else
    printf 'SKIP  %s\n' "kube-linter (not installable here; runs in .github/workflows/ci.yml)"
fi

# --- actionlint --------------------------------------------------------------------------------
if compgen -G ".github/workflows/*.yml" >/dev/null; then
    check "actionlint (.github/workflows)" actionlint -no-color .github/workflows/*.yml
else
    check "actionlint (.github/workflows present)" false
fi

# --- helm-docs: the committed README matches its values and template ----------------------------
readme_fresh() {
    mkdir -p "$OUT/docs"
    cp -r "$CHART" "$OUT/docs/"
    (cd "$OUT/docs" && helm-docs --log-level warning --chart-search-root . \
        --template-files README.md.gotmpl --sort-values-order file) || return 1
    diff -u "$CHART/README.md" "$OUT/docs/zai-proxy/README.md" ||
        { echo "chart README is stale: run 'make chart-docs' and commit it"; return 1; }
}
check "helm-docs (chart/zai-proxy/README.md is up to date)" readme_fresh

# --- monitoring checks (promtool, dashboard), written by the monitoring templates' owner ---------
# Its own per-check lines are shown as they come.
if [[ -f scripts/check-monitoring.sh ]]; then
    if bash scripts/check-monitoring.sh; then
        printf 'PASS  %s\n' "monitoring checks (scripts/check-monitoring.sh)"
        passed=$((passed + 1))
    else
        printf 'FAIL  %s\n' "monitoring checks (scripts/check-monitoring.sh)"
        failed=$((failed + 1))
    fi
fi

echo "chart checks: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
