# Sourced by the check scripts: the repository root, and the repo-local tools and helm
# directories (the Makefile exports the same), so nothing reads or writes $HOME.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PATH="$ROOT/.tools/bin:$ROOT/.venv/bin:$PATH"
export HELM_CONFIG_HOME="${HELM_CONFIG_HOME:-$ROOT/.tools/helm/config}"
export HELM_CACHE_HOME="${HELM_CACHE_HOME:-$ROOT/.tools/helm/cache}"
export HELM_DATA_HOME="${HELM_DATA_HOME:-$ROOT/.tools/helm/data}"
export HELM_PLUGINS="${HELM_PLUGINS:-$ROOT/.tools/helm/plugins}"
PY="$ROOT/.venv/bin/python"
