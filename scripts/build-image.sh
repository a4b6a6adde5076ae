#!/usr/bin/env bash
# Builds the real image/Dockerfile with buildah (chroot isolation: no daemon, no OCI runtime).
#
# Usage: scripts/build-image.sh [--reuse] [--tag IMAGE]...
#   --reuse      skip the build when an image of the same inputs exists (tests use this)
#   --tag IMAGE  extra tag (repeatable)
# Env:
#   BASE_IMAGE            base for both stages; default: the offline Debian bookworm base that
#                         scripts/make-base-image.sh builds (made here when missing)
#   ZAI_PROXY_VERSION     default: VERSION in image/zai_proxy/config.py
#   ZAI_PROXY_COMMIT      default: git HEAD (with -dirty when image/ has local changes)
#   ZAI_PROXY_BUILD_TIME  default: now, UTC, ISO 8601
#
# The image is tagged localhost/zai-proxy:<version> and localhost/zai-proxy:inputs-<hash>, where
# the hash covers everything that decides the image's content (the files of image/, the staged
# dashboard service and UI, the base image's id and the version); the last line of stdout is the
# inputs tag. The dashboard UI is built first when it is missing or stale (stage-dashboard.sh).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
CONTEXT="$ROOT/image"
NAME=localhost/zai-proxy
DEFAULT_BASE=localhost/zai-proxy-base:bookworm

log() { printf 'build-image: %s\n' "$*" >&2; }

reuse=0
tags=()
while (($#)); do
    case "$1" in
        --reuse) reuse=1 ;;
        --tag) tags+=("${2:?--tag needs a value}"); shift ;;
        *) log "unknown argument: $1"; exit 2 ;;
    esac
    shift
done

command -v buildah >/dev/null || { log "buildah is missing: run 'make tools' (scripts/install-tools.sh)"; exit 1; }
[[ $(id -u) -eq 0 ]] || { log "buildah here runs as root (chroot isolation, system storage)"; exit 1; }

base="${BASE_IMAGE:-$DEFAULT_BASE}"
if [[ "$base" == "$DEFAULT_BASE" ]]; then
    bash "$ROOT/scripts/make-base-image.sh" "$base"
elif ! buildah inspect --type image "$base" >/dev/null 2>&1; then
    buildah pull --quiet "$base" >/dev/null
fi
base_id="$(buildah inspect --type image --format '{{.FromImageID}}' "$base")"

version="${ZAI_PROXY_VERSION:-$(sed -n 's/^VERSION = "\(.*\)"$/\1/p' "$CONTEXT/zai_proxy/config.py")}"
commit="${ZAI_PROXY_COMMIT:-}"
if [[ -z "$commit" ]]; then
    commit="$(git -C "$ROOT" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)"
    if [[ "$commit" != unknown && -n "$(git -C "$ROOT" status --porcelain -- image dashboard 2>/dev/null)" ]]; then
        commit="$commit-dirty"
    fi
fi
build_time="${ZAI_PROXY_BUILD_TIME:-$(date -u +%Y-%m-%dT%H:%M:%SZ)}"

# The dashboard service's files and its built UI (built here when missing or stale): the
# Dockerfile's second build context.
stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
bash "$ROOT/scripts/stage-dashboard.sh" "$stage/dashboard"

# What decides the image's content; the commit and build time only label it, so a reused image
# keeps the labels of the build that made it.
inputs="$(
    cd "$CONTEXT"
    find . -type f ! -path '*/__pycache__/*' ! -name '*.pyc' -print0 | LC_ALL=C sort -z \
        | xargs -0 sha256sum
    cd "$stage"
    find dashboard -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum
    echo "base $base_id"
    echo "version $version"
)"
inputs_tag="$NAME:inputs-$(sha256sum <<<"$inputs" | cut -c1-16)"

if ((reuse)) && buildah inspect --type image "$inputs_tag" >/dev/null 2>&1; then
    log "reusing $inputs_tag (image/ and the base are unchanged)"
    echo "$inputs_tag"
    exit 0
fi

# pip inside the build verifies TLS with the host's CA bundle (this machine's registry access may
# go through a TLS-inspecting proxy whose CA only the host trusts); it is bind-mounted for each RUN
# and never stored in a layer.
volumes=()
if [[ -f /etc/ssl/certs/ca-certificates.crt ]]; then
    volumes+=(--volume /etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro)
fi

tag_args=(--tag "$inputs_tag" --tag "$NAME:$version")
for tag in "${tags[@]}"; do
    tag_args+=(--tag "$tag")
done

log "building $inputs_tag from $base (version $version, commit $commit)"
build_log="$ROOT/.cache/image-build.log"
mkdir -p "$(dirname "$build_log")"
start=$SECONDS
buildah bud --isolation chroot --layers --pull=false \
    --file "$CONTEXT/Dockerfile" \
    --build-arg "BASE_IMAGE=$base" \
    --build-arg "ZAI_PROXY_VERSION=$version" \
    --build-arg "ZAI_PROXY_COMMIT=$commit" \
    --build-arg "ZAI_PROXY_BUILD_TIME=$build_time" \
    --build-context "dashboard=$stage/dashboard" \
    "${volumes[@]}" "${tag_args[@]}" \
    "$CONTEXT" >"$build_log" 2>&1 || {
    tail -40 "$build_log" >&2
    log "build failed (full log: .cache/image-build.log)"
    exit 1
}
log "built in $((SECONDS - start))s: $inputs_tag $NAME:$version ${tags[*]}"

# Inputs tags beyond the newest three are removed so they do not pile up (buildah lists newest
# first); an image still used by a container (a test running meanwhile) is left alone.
buildah images --format '{{.Name}}:{{.Tag}}' \
    | { grep -F "$NAME:inputs-" || true; } | { grep -vxF "$inputs_tag" || true; } | tail -n +3 \
    | while read -r old; do buildah rmi "$old" >/dev/null 2>&1 || true; done
echo "$inputs_tag"
