"""The dashboard's panel queries as data, for the checks here and for the demo/e2e.

The dashboard JSON (chart/zai-proxy/dashboards/) is the single source of the panel queries. Every
`targets[].expr` is plain PromQL whose only Grafana variables are `$__rate_interval`,
`$deployment_variant` and `$namespace`, so `substitute()` turns it into a query Prometheus's HTTP
API answers directly:

    from tools.chart.dashboard_queries import queries, substitute
    for q in queries():
        promql = substitute(q.expr, variants=("production", "canary"), rate_interval="1m")

A token panel (tokens/s, estimated cost) reads a family that exists only with token counting on;
with the seed's values only the canary has data there.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

DASHBOARD = (Path(__file__).resolve().parents[2] / "chart" / "zai-proxy" / "dashboards"
             / "zai-proxy-production-vs-canary.json")
# The same pattern as "zai-proxy.tokenMetricsRegex" in templates/_monitoring.tpl (checked).
TOKEN_METRICS = r"zai_proxy_(estimated_)?(token|cost)"
VARIABLES = ("$__rate_interval", "$deployment_variant", "$namespace")


@dataclass(frozen=True)
class Query:
    panel_id: int
    title: str
    unit: str
    ref_id: str
    legend: str
    expr: str
    token_panel: bool


def load(path: Path = DASHBOARD) -> dict:
    return json.loads(Path(path).read_text())


def is_token_panel(panel: dict) -> bool:
    return any(re.search(TOKEN_METRICS, t.get("expr", "")) for t in panel.get("targets", []))


def queries(dashboard: dict | None = None) -> list[Query]:
    """Every panel target, in panel order."""
    dashboard = dashboard or load()
    out = []
    for panel in dashboard["panels"]:
        token = is_token_panel(panel)
        unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit", "")
        for target in panel.get("targets", []):
            out.append(Query(panel["id"], panel["title"], unit, target["refId"],
                             target.get("legendFormat", ""), target["expr"], token))
    return out


def _regex_of(values) -> str:
    if values is None:
        return ".*"
    return "|".join(re.escape(v) for v in values)


def substitute(expr: str, variants=None, namespaces=None, rate_interval: str = "1m") -> str:
    """`expr` with Grafana's variables replaced; None means "All" (`.*`), as the dashboard's default."""
    return (expr.replace("$__rate_interval", rate_interval)
            .replace("$deployment_variant", _regex_of(variants))
            .replace("$namespace", _regex_of(namespaces)))
