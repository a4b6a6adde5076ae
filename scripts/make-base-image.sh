#!/usr/bin/env bash
# Builds an offline stand-in for the official python:3.11-slim base image and stores it in
# buildah's local storage, so `scripts/build-image.sh` can build the real image/Dockerfile on a
# machine that reaches Debian's package mirror but no container registry.
#
# Debian bookworm (its python3 is 3.11, like the official image) is debootstrapped straight into
# a scratch container, with python3, python3-venv, python3-pip and ca-certificates added.
#
# Usage: scripts/make-base-image.sh [IMAGE]        (default localhost/zai-proxy-base:bookworm)
# Env:   DEBIAN_MIRROR  overrides the mirror (default: the one apt uses on this machine)
#        REBUILD=1      rebuilds even when the image exists
#
# Idempotent: does nothing when the image already exists. Downloaded .debs are kept under
# .cache/debootstrap so a rebuild does not download them again. Needs root (debootstrap).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
IMAGE="${1:-localhost/zai-proxy-base:bookworm}"
SUITE=bookworm
PACKAGES=python3,python3-venv,python3-pip,ca-certificates
DEB_CACHE="$ROOT/.cache/debootstrap/$SUITE"

log() { printf 'make-base-image: %s\n' "$*" >&2; }

command -v buildah >/dev/null || { log "buildah is missing: run 'make tools' (scripts/install-tools.sh)"; exit 1; }
exists() { buildah inspect --type image "$IMAGE" >/dev/null 2>&1; }
if [[ "${REBUILD:-0}" != 1 ]] && exists; then
    log "$IMAGE already exists"
    exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
    log "debootstrap needs root"
    exit 1
fi
# buildah's storage is machine-wide, so is this lock: two checkouts testing at once build the
# base once (the second waits, then finds it).
lock_dir=/run/lock
[[ -d "$lock_dir" ]] || lock_dir=/tmp
exec 9>"$lock_dir/zai-proxy-base-image.lock"
flock 9
if [[ "${REBUILD:-0}" != 1 ]] && exists; then
    log "$IMAGE already exists"
    exit 0
fi
command -v debootstrap >/dev/null || { log "debootstrap is missing: run 'make tools' (scripts/install-tools.sh)"; exit 1; }

# The mirror apt already uses here (deb822 .sources files or one-line sources.list), so the base
# is built from the same place the machine's own packages come from.
apt_mirror() {
    local file uri
    for file in /etc/apt/sources.list.d/*.sources; do
        [[ -f "$file" ]] || continue
        # The stanza that serves the plain suite (not -security): its first URIs line.
        uri="$(awk -v suite="$SUITE" '
            /^URIs:/ { uris = $2 }
            /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == suite) { print uris; exit } }
            /^$/ { uris = "" }' "$file")"
        [[ -n "$uri" ]] && { echo "$uri"; return; }
    done
    for file in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [[ -f "$file" ]] || continue
        uri="$(awk -v suite="$SUITE" '$1 == "deb" && $3 == suite && $2 ~ /^https?:/ { print $2; exit }' "$file")"
        [[ -n "$uri" ]] && { echo "$uri"; return; }
    done
    echo "http://deb.debian.org/debian"
}
MIRROR="${DEBIAN_MIRROR:-$(apt_mirror)}"

ctr=""
cleanup() {
    if [[ -n "$ctr" ]]; then
        buildah umount "$ctr" >/dev/null 2>&1 || true
        buildah rm "$ctr" >/dev/null 2>&1 || true
    fi
}
trap cleanup EXIT

log "debootstrapping $SUITE from $MIRROR with $PACKAGES into $IMAGE"
ctr="$(buildah from scratch)"
rootfs="$(buildah mount "$ctr")"
mkdir -p "$DEB_CACHE"
debootstrap --variant=minbase --include="$PACKAGES" --cache-dir="$DEB_CACHE" \
    "$SUITE" "$rootfs" "$MIRROR" >"$ROOT/.cache/debootstrap/$SUITE.log" 2>&1 || {
    tail -20 "$ROOT/.cache/debootstrap/$SUITE.log" >&2
    log "debootstrap failed (full log: .cache/debootstrap/$SUITE.log)"
    exit 1
}

# Leave nothing of this host in the image (resolv.conf and hostname are provided at run time),
# and no package lists or logs: the official slim image ships without them too.
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin \
    "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/log/*.log \
    "$rootfs"/debootstrap
: >"$rootfs/etc/resolv.conf"
: >"$rootfs/etc/hostname"
printf 'deb %s %s main\n' "$MIRROR" "$SUITE" >"$rootfs/etc/apt/sources.list"
python_version="$(chroot "$rootfs" python3 -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])')"

buildah umount "$ctr" >/dev/null
buildah config \
    --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --env LANG=C.UTF-8 \
    --cmd '["python3"]' \
    --label org.opencontainers.image.title=zai-proxy-base \
    --label "org.opencontainers.image.description=Debian $SUITE minbase with python3 $python_version (offline stand-in for python:3.11-slim)" \
    --label "org.opencontainers.image.base.name=debian:$SUITE" \
    "$ctr"
buildah commit --quiet --rm "$ctr" "$IMAGE" >/dev/null
ctr=""
log "built $IMAGE (python3 $python_version)"
