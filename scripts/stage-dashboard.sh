#!/usr/bin/env bash
# Stages the dashboard service for the image: the `dashboard` build context of image/Dockerfile.
#
# Usage: scripts/stage-dashboard.sh DIR
#   DIR/gunicorn.conf.py, DIR/zai_dashboard/ (no bytecode), DIR/ui/dist/ (the built UI)
#
# The UI (dashboard/ui, React + Vite) is built first when its build is missing or older than its
# sources: `npm ci` from the lockfile, then `npm run build`. Without a UI (or without its build)
# the image still carries the service, whose `/` then says how to build the UI; this script says
# so on stderr. scripts/build-image.sh runs it; so does the release workflow.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
UI="$ROOT/dashboard/ui"
dest="${1:?usage: scripts/stage-dashboard.sh DIR}"

log() { printf 'stage-dashboard: %s\n' "$*" >&2; }

if [[ -f "$UI/package.json" ]]; then
    stale=""
    if [[ -f "$UI/dist/index.html" ]]; then
        stale="$(find "$UI/src" "$UI/index.html" "$UI/package.json" "$UI/package-lock.json" \
            "$UI"/vite.config.* "$UI"/tsconfig*.json -newer "$UI/dist/index.html" 2>/dev/null \
            | head -1 || true)"
    fi
    if [[ ! -f "$UI/dist/index.html" || -n "$stale" ]]; then
        command -v npm >/dev/null || {
            log "npm is missing: the dashboard UI needs Node.js >= 20.19 and npm to build"
            exit 1
        }
        if [[ ! -d "$UI/node_modules" || "$UI/package-lock.json" -nt "$UI/node_modules" ]]; then
            log "installing the UI's packages (npm ci)"
            (cd "$UI" && npm ci --no-audit --no-fund) >&2
        fi
        log "building the UI (npm run build)"
        (cd "$UI" && npm run build) >&2
    fi
else
    log "dashboard/ui is missing: the image's dashboard serves its API, and / says the UI is not built"
fi

rm -rf "$dest"
mkdir -p "$dest/ui"
cp "$ROOT/dashboard/gunicorn.conf.py" "$dest/"
(cd "$ROOT/dashboard" && find zai_dashboard -name '*.py' -print0 \
    | xargs -0 -I{} install -D -m 0644 {} "$dest/{}")
if [[ -f "$UI/dist/index.html" ]]; then
    cp -r "$UI/dist" "$dest/ui/dist"
else
    log "dashboard/ui/dist is missing: the image will have no dashboard UI"
fi
