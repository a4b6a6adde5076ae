"""Render the chart's monitoring objects with helm, the way the two releases are installed.

Used by the monitoring checks (scripts/check-monitoring.sh) and usable by the demo/e2e code that
needs the rendered rules or dashboard.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from tools import built_tools

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "chart" / "zai-proxy"


@dataclass(frozen=True)
class Release:
    """One `helm template` of the chart: release name, namespace, values files and --set pairs."""
    name: str
    release: str
    namespace: str
    values: tuple[str, ...]
    sets: tuple[str, ...] = field(default=())


# The seed's two installs, plus production with token counting on, so that the production token
# alert (rendered only there) is tested too.
CANARY = Release("canary", "zai-proxy-canary", "devpod", ("values/values-canary.yaml",))
PRODUCTION = Release("production", "zai-proxy", "mcp", ("values/values-production.yaml",))
PRODUCTION_TOKENS = Release("production-tokens", "zai-proxy", "mcp",
                            ("values/values-production.yaml",), ("tokenCounting.enabled=true",))
RELEASES = (CANARY, PRODUCTION, PRODUCTION_TOKENS)


def helm() -> str:
    built_tools.require("helm")
    local = ROOT / ".tools" / "bin" / "helm"
    found = str(local) if local.exists() else shutil.which("helm")
    if not found:
        raise SystemExit("helm not found: run `make tools` (scripts/install-tools.sh)")
    return found


def render(release: Release, show_only: tuple[str, ...] = ()) -> list[dict]:
    """The objects `helm template` renders for `release` (optionally only some templates)."""
    cmd = [helm(), "template", release.release, str(CHART), "--namespace", release.namespace]
    for values in release.values:
        cmd += ["-f", str(ROOT / values)]
    for pair in release.sets:
        cmd += ["--set", pair]
    for template in show_only:
        cmd += ["--show-only", template]
    env = dict(os.environ)
    for var, sub in (("HELM_CONFIG_HOME", "config"), ("HELM_CACHE_HOME", "cache"),
                     ("HELM_DATA_HOME", "data"), ("HELM_PLUGINS", "plugins")):
        env.setdefault(var, str(ROOT / ".tools" / "helm" / sub))
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        raise RuntimeError(f"helm template {release.name} failed:\n{out.stderr}")
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


def one(objects: list[dict], kind: str) -> dict:
    found = [o for o in objects if o.get("kind") == kind]
    if len(found) != 1:
        raise AssertionError(f"expected one {kind}, found {len(found)}")
    return found[0]


def rule_spec(release: Release) -> dict:
    """The `.spec` of the release's PrometheusRule: a Prometheus rule file (`groups:`)."""
    return one(render(release, ("templates/prometheusrule.yaml",)), "PrometheusRule")["spec"]


def alerts(spec: dict) -> dict[str, dict]:
    """Alert name -> rule, over every group of a rule file."""
    return {rule["alert"]: rule for group in spec["groups"] for rule in group["rules"]
            if "alert" in rule}
