#!/usr/bin/env bash
# Installs every chart/CI tool the checks need into the repo, so a clean clone on a fresh machine
# passes `make test` without anything installed by hand. What to install is named by the
# arguments (the Makefile runs the parts as separate steps, so that each waits only for its own):
#   helm   helm alone, built first from scripts/go-tools: the Python suite's chart tests need
#          only it, and start while the other tools build
#   go     every Go-built tool (helm included) and the helm-unittest plugin
#   debs   the Debian packages
# No argument: go and debs.
#   - Go tools built from their modules at pinned versions into .tools/bin (GOBIN). Downloads
#     and compiled packages go to Go's own caches (GOMODCACHE, GOCACHE: ~/go/pkg/mod and
#     ~/.cache/go-build unless set), which are content-addressed and safe to share: a second
#     clone on the same machine builds in seconds instead of minutes. Nothing else leaves the
#     repo. helm,
#     helm-unittest, helm-docs, kubeconform and actionlint are one module (scripts/go-tools:
#     versions in its go.mod, checksums in its go.sum), so the libraries they share are compiled
#     once; kube-score, which needs older Kubernetes API packages, is built beside it at the same
#     time (while one build links or downloads, the other compiles);
#   - helm-unittest registered as a helm plugin under .tools/helm (HELM_* dirs point there);
#   - Debian packages (promtool + a real Prometheus, redis-server, nginx, jq, chromium) only when
#     missing.
# Idempotent and fast when already done: binaries are rebuilt only when their pinned versions
# (or the build flags) change.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
TOOLS="$ROOT/.tools"
BIN="$TOOLS/bin"
mkdir -p "$BIN"

GO_TOOLS="$ROOT/scripts/go-tools"
# Pinned versions: the go-tools module's require lines, and kube-score's here. helm matches the
# Helm module helm-unittest is built against, so `helm template` and the unit tests render with
# the same engine (Argo CD embeds Helm 3 too).
module_version() { sed -n "s|^[[:space:]]*$1 \(v[^ ]*\).*|\1|p" "$GO_TOOLS/go.mod"; }
HELM_VERSION="$(module_version helm.sh/helm/v3)"
HELM_UNITTEST_VERSION="$(module_version github.com/helm-unittest/helm-unittest)"
# kube-linter's module (golang.stackrox.io/kube-linter) is not served by the Go module proxy
# this project can reach (403 for every version): it runs in the GitHub workflow only, and
# kube-score lints the rendered objects everywhere.
KUBE_SCORE_VERSION=v1.20.0
# The Kubernetes version helm and helm-unittest assume without a cluster (helm's own Makefile sets it
# from its client-go version; a plain `go install` would leave the ancient v1.20 default, which fails
# the chart's kubeVersion constraint).
DEFAULT_KUBE_MINOR=36
KUBE_LDFLAGS="-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$DEFAULT_KUBE_MINOR -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$DEFAULT_KUBE_MINOR"

if command -v go >/dev/null; then
    GOMODCACHE="${GOMODCACHE:-$(go env GOMODCACHE)}"
    GOCACHE="${GOCACHE:-$(go env GOCACHE)}"
    export GOMODCACHE GOCACHE
fi
export GOBIN="$BIN"
export GOFLAGS="-modcacherw -buildvcs=false"
export CGO_ENABLED=0

# The helm environment every caller uses (the Makefile exports the same values).
export HELM_CONFIG_HOME="$TOOLS/helm/config"
export HELM_CACHE_HOME="$TOOLS/helm/cache"
export HELM_DATA_HOME="$TOOLS/helm/data"
export HELM_PLUGINS="$TOOLS/helm/plugins"
mkdir -p "$HELM_CONFIG_HOME" "$HELM_CACHE_HOME" "$HELM_DATA_HOME" "$HELM_PLUGINS"

log() { printf 'install-tools: %s\n' "$*"; }

# go_tool NAME PACKAGE@VERSION: build once per pinned version; a stamp file records it.
go_tool() {
    local name="$1" pkg="$2"
    local stamp="$BIN/.$name.version"
    if [[ -x "$BIN/$name" && -f "$stamp" && "$(cat "$stamp")" == "$pkg" ]]; then
        return 0
    fi
    log "building $name ($pkg)"
    go install -trimpath -ldflags "-s -w" "$pkg"
    printf '%s' "$pkg" >"$stamp"
}

# go_tools_module: every tool of scripts/go-tools in one build. helm's version and the Kubernetes
# version are set at link time; a -X naming a symbol a binary lacks is ignored, so one set of
# flags serves all five. Rebuilt when go.mod, go.sum, the flags or the Go version change.
GO_TOOLS_LDFLAGS="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION $KUBE_LDFLAGS"
go_tools_fingerprint() {
    (cat "$GO_TOOLS/go.mod" "$GO_TOOLS/go.sum"; echo "$GO_TOOLS_LDFLAGS"; go version) | sha256sum
}

go_tools_module() {
    local stamp="$BIN/.go-tools.version" want name missing=0
    want="$(go_tools_fingerprint)"
    for name in helm helm-unittest helm-docs kubeconform actionlint; do
        [[ -x "$BIN/$name" ]] || missing=1
    done
    if ((missing == 0)) && [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
        return 0
    fi
    log "building helm $HELM_VERSION, helm-unittest $HELM_UNITTEST_VERSION, helm-docs, kubeconform, actionlint (scripts/go-tools)"
    (cd "$GO_TOOLS" && go install -trimpath -ldflags "$GO_TOOLS_LDFLAGS" tool)
    printf '%s' "$want" >"$stamp"
}

# helm_alone: helm from the same module, with the same flags, so that the later build of the
# whole module finds it up to date (and its compiled packages in GOCACHE) instead of redoing it.
helm_alone() {
    local stamp="$BIN/.helm.version" want
    want="$(go_tools_fingerprint)"
    if [[ -x "$BIN/helm" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
        return 0
    fi
    log "building helm $HELM_VERSION (scripts/go-tools)"
    (cd "$GO_TOOLS" && go install -trimpath -ldflags "$GO_TOOLS_LDFLAGS" helm.sh/helm/v3/cmd/helm)
    printf '%s' "$want" >"$stamp"
}

all_go_tools() {
    go_tool kube-score "github.com/zegl/kube-score/cmd/kube-score@$KUBE_SCORE_VERSION" &
    local kube_score=$!
    trap 'kill '"$kube_score"' 2>/dev/null || true' EXIT   # a failed build below ends this one too
    go_tools_module
    wait "$kube_score" || { log "building kube-score failed"; exit 1; }
    trap - EXIT
    register_helm_unittest
}

# Register helm-unittest as a local plugin: a plugin dir whose plugin.yaml runs the built binary.
# No install hooks (they would download a release binary, which cannot work offline).
register_helm_unittest() {
    local plugin_dir="$HELM_PLUGINS/helm-unittest"
    mkdir -p "$plugin_dir"
    cat >"$plugin_dir/plugin.yaml.new" <<EOF
name: "unittest"
version: "${HELM_UNITTEST_VERSION#v}"
usage: "unittest for helm charts"
description: "helm-unittest ${HELM_UNITTEST_VERSION}, built from source by scripts/install-tools.sh"
ignoreFlags: false
command: "$BIN/helm-unittest"
EOF
    if ! cmp -s "$plugin_dir/plugin.yaml.new" "$plugin_dir/plugin.yaml" 2>/dev/null; then
        mv "$plugin_dir/plugin.yaml.new" "$plugin_dir/plugin.yaml"
    else
        rm -f "$plugin_dir/plugin.yaml.new"
    fi
    "$BIN/helm" unittest --help >/dev/null || { log "helm unittest plugin does not run"; exit 1; }
}

# Debian packages: promtool and a real Prometheus, Redis for the shared rate-limit tests,
# nginx and wrk for the benchmarks, buildah and debootstrap for the image check (scripts/build-image.sh),
# jq for scripts/verify-monitoring.sh and the runbooks' commands that the tests run; chromium for
# the dashboard's real-browser tests, demo screenshots and render benchmark (driven by PyPI
# playwright through executable_path; never `playwright install`).
# apt-get update runs once, and only when something is missing.
debian_packages() {
    local -A want=([promtool]=prometheus [prometheus]=prometheus [redis-server]=redis-server [nginx]=nginx-light [wrk]=wrk [buildah]=buildah [debootstrap]=debootstrap [jq]=jq [chromium]=chromium)
    local cmd sudo missing=()
    for cmd in "${!want[@]}"; do
        command -v "$cmd" >/dev/null 2>&1 || missing+=("${want[$cmd]}")
    done
    # A font for the page's text in screenshots (chromium only recommends one).
    [[ -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ]] || missing+=(fonts-dejavu-core)
    if ((${#missing[@]})); then
        mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
        # Root here and in this project's CI; a GitHub runner has passwordless sudo instead.
        sudo=()
        if [[ $(id -u) -ne 0 ]]; then
            command -v sudo >/dev/null 2>&1 || { log "missing Debian packages (run as root): ${missing[*]}"; exit 1; }
            sudo=(sudo -n)
        fi
        log "apt-get install ${missing[*]}"
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
        # No services are started by the install (RUNLEVEL=1): tests start their own on loopback.
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 \
            apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
}

(($#)) || set -- go debs
for part in "$@"; do
    case "$part" in
        helm) helm_alone ;;
        go) all_go_tools ;;
        debs) debian_packages ;;
        *) log "unknown part '$part' (helm, go or debs)"; exit 2 ;;
    esac
done
log "ok ($*): $(ls "$BIN" | tr '\n' ' ')"
