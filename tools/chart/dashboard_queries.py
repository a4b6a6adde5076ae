"""The dashboard's panel queries as data, for the checks here and for the demo/e2e.

The dashboard JSON (chart/zai-proxy/dashboards/) is the single source of the panel queries. Every
`targets[].expr` is plain PromQL whose only Grafana variables are `$__rate_interval`,
`$deployment_variant` and `$namespace`, so `substitute()` turns it into a query Prometheus's HTTP
API answers directly:

    from tools.chart.dashboard_queries import queries, substitute
    for q in queries():
        promql = substitute(q.expr, variants=("production", "canary"), rate_interval="1m")

A token panel (token throughput, token counting duration, estimated cost) reads a family that
exists only with token counting on; with the seed's values only the canary has data there. The
chart drops the token panels and the whole "Canary only" row (whose Rate Limit Adjustments panel
has data for every variant that rate-limits) unless grafanaDashboard.tokenPanels keeps them:
`Query.gated` marks the targets it drops.
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
# The same title as "zai-proxy.canaryOnlyRow" in templates/_monitoring.tpl (checked).
CANARY_ONLY_ROW = "Canary only"
VARIABLES = ("$__rate_interval", "$deployment_variant", "$namespace")


@dataclass(frozen=True)
class Query:
    panel_id: int
    title: str
    unit: str
    ref_id: str
    legend: str
    expr: str
    token_panel: bool   # reads a token family: data only where tokens are counted
    gated: bool         # dropped with the token panels (grafanaDashboard.tokenPanels)
    row: str            # title of the row the panel sits under ("" above the first row)


def load(path: Path = DASHBOARD) -> dict:
    return json.loads(Path(path).read_text())


def is_token_panel(panel: dict) -> bool:
    return any(re.search(TOKEN_METRICS, t.get("expr", "")) for t in panel.get("targets", []))


def panels_with_rows(dashboard: dict | None = None) -> list[tuple[dict, str]]:
    """Every panel that is not a row, in order, with the title of the row above it."""
    dashboard = dashboard or load()
    row, out = "", []
    for panel in dashboard["panels"]:
        if panel.get("type") == "row":
            row = panel.get("title", "")
            out += [(child, row) for child in panel.get("panels", [])]  # a collapsed row's
        else:
            out.append((panel, row))
    return out


def is_gated(panel: dict, row: str) -> bool:
    """Dropped by the chart unless grafanaDashboard.tokenPanels keeps the token panels."""
    return row == CANARY_ONLY_ROW or is_token_panel(panel)


def panel_queries(panel: dict, row: str = "") -> list[Query]:
    """The targets of one panel."""
    token, gated = is_token_panel(panel), is_gated(panel, row)
    unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit", "")
    return [Query(panel["id"], panel["title"], unit, target["refId"],
                  target.get("legendFormat", ""), target["expr"], token, gated, row)
            for target in panel.get("targets", [])]


def queries(dashboard: dict | None = None) -> list[Query]:
    """Every panel target, in panel order."""
    return [q for panel, row in panels_with_rows(dashboard) for q in panel_queries(panel, row)]


def _regex_of(values) -> str:
    if values is None:
        return ".*"
    return "|".join(re.escape(v) for v in values)


def substitute(expr: str, variants=None, namespaces=None, rate_interval: str = "1m") -> str:
    """`expr` with Grafana's variables replaced; None means "All" (`.*`), as the dashboard's default."""
    return (expr.replace("$__rate_interval", rate_interval)
            .replace("$deployment_variant", _regex_of(variants))
            .replace("$namespace", _regex_of(namespaces)))
