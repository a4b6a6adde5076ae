"""Offline proofs of the Grafana dashboard: `python -m tests.chart.check_dashboard [workdir]`.

- The JSON is sane: fixed uid, `"id": null`, title and tags of the seed, a datasource variable,
  `namespace`/`deployment_variant` variables; the seed's ten panels with its titles and types in
  its order (Worker Utilization ... Concurrent Requests on top, Token Throughput, Token Counting
  Duration and Rate Limit Adjustments under the "Canary only" row), then the "Details" row with
  the panels beyond the seed; every panel with a unit, a description and the datasource variable;
  no overlapping grid positions, and the grid shows the panels in the list's order.
- Every query uses `$__rate_interval`, filters every zai_proxy selector on `deployment_variant` and
  `namespace`, uses no other variable, and parses (promtool check rules on a wrapper rule file).
- Every query returns data for both variants on synthetic series, the token panels for the canary
  only (promtool test rules), as the seed's values make it.
- The rendered ConfigMap: the JSON comes through Helm unchanged (Grafana's {{…}} legends intact),
  the token panels and the Canary only row follow grafanaDashboard.tokenPanels, and the two seed
  releases together render exactly one dashboard.
Prints one PASS/FAIL line per check; exits 1 when any fails.
"""

from __future__ import annotations

import json
import re
import sys
import tempfile
from pathlib import Path

from tools.chart import render
from tests.chart import rule_scenarios as rs
from tests.chart.check_rules import Checks, dump, promtool
from tools.chart.dashboard_queries import (CANARY_ONLY_ROW, DASHBOARD, TOKEN_METRICS, VARIABLES,
                                           is_gated, is_token_panel, load, panels_with_rows,
                                           queries, substitute)

UID = "zai-proxy-prod-vs-canary"
TITLE = "ZAI Proxy - Production vs Canary"
TAGS = {"zai-proxy", "canary", "production", "monitoring"}
# The seed's dashboard, panel by panel: title and Grafana panel type, in its order.
SEED_PANELS = [
    ("Worker Utilization", "gauge"),
    ("Request Rate", "timeseries"),
    ("Error Rate", "timeseries"),
    ("Latency Comparison", "timeseries"),
    ("Current Rate Limit", "timeseries"),
    ("Upstream Errors", "timeseries"),
    ("Concurrent Requests", "gauge"),
    ("Token Throughput", "timeseries"),          # the seed's "canary only" panels: under the
    ("Token Counting Duration", "timeseries"),   # Canary only row, gated with the token panels
    ("Rate Limit Adjustments", "timeseries"),
]
DETAILS_ROW = "Details"
DETAILS = {"Z.AI errors by class and code", "Retries by reason", "Latency P99",
           "Rate limiter: P95 wait and rejections", "Estimated cost (USD per hour)"}
TOKEN_PANELS = {"Token Throughput", "Token Counting Duration", "Estimated cost (USD per hour)"}
GATED_PANELS = TOKEN_PANELS | {"Rate Limit Adjustments"}
CONFIGMAP_KEY = "zai-proxy-production-vs-canary.json"
SELECTOR = re.compile(r"\b(zai_proxy_[a-z_]+)\b(\{[^}]*\})?")
FILTERS = ('deployment_variant=~"$deployment_variant"', 'namespace=~"$namespace"')


def check_json(dashboard: dict) -> str:
    problems = []
    if dashboard.get("id", "missing") is not None:
        problems.append('"id" must be null (Grafana assigns it)')
    if dashboard.get("uid") != UID or len(UID) > 40:
        problems.append(f"uid must be the fixed {UID!r}")
    if dashboard.get("title") != TITLE:
        problems.append(f"title must be {TITLE!r}")
    if set(dashboard.get("tags", [])) != TAGS:
        problems.append(f"tags must be {sorted(TAGS)}")
    variables = {v["name"]: v for v in dashboard.get("templating", {}).get("list", [])}
    ds = variables.get("datasource", {})
    if ds.get("type") != "datasource" or ds.get("query") != "prometheus":
        problems.append("no Prometheus datasource variable named `datasource`")
    for name in ("namespace", "deployment_variant"):
        if variables.get(name, {}).get("type") != "query":
            problems.append(f"no query variable `{name}`")
    problems += check_panel_list(dashboard)
    cells = set()
    for panel in dashboard.get("panels", []):
        where = f"panel {panel.get('id')} {panel.get('title')!r}"
        grid = panel.get("gridPos", {})
        if grid.get("x", 0) + grid.get("w", 0) > 24:
            problems.append(f"{where}: wider than the grid")
        for x in range(grid.get("x", 0), grid.get("x", 0) + grid.get("w", 0)):
            for y in range(grid.get("y", 0), grid.get("y", 0) + grid.get("h", 0)):
                if (x, y) in cells:
                    problems.append(f"{where}: overlaps another panel at {(x, y)}")
                    break
                cells.add((x, y))
    # Grafana lays panels out by gridPos, so the list's order is what users see only if the grid
    # agrees with it (top to bottom, left to right).
    positions = [(p["gridPos"]["y"], p["gridPos"]["x"]) for p in dashboard.get("panels", [])
                 if "gridPos" in p]
    if positions != sorted(positions):
        problems.append("the grid does not show the panels in the list's order")
    for panel, _ in panels_with_rows(dashboard):
        where = f"panel {panel.get('id')} {panel.get('title')!r}"
        if not panel.get("fieldConfig", {}).get("defaults", {}).get("unit"):
            problems.append(f"{where}: no unit (fieldConfig.defaults.unit)")
        if len(panel.get("description", "")) < 20:
            problems.append(f"{where}: no description")
        if panel.get("datasource", {}).get("uid") != "${datasource}":
            problems.append(f"{where}: datasource is not ${{datasource}}")
        targets = panel.get("targets", [])
        if not targets or len({t.get("refId") for t in targets}) != len(targets):
            problems.append(f"{where}: targets missing or refIds repeat")
        for target in targets:
            if target.get("datasource", {}).get("uid") != "${datasource}" or not target.get("legendFormat"):
                problems.append(f"{where} {target.get('refId')}: datasource or legendFormat missing")
        if panel.get("type") == "gauge":
            if panel.get("options", {}).get("reduceOptions", {}).get("calcs") != ["lastNotNull"]:
                problems.append(f"{where}: a gauge shows the last value (reduceOptions.calcs)")
            if panel["fieldConfig"]["defaults"].get("min") != 0:
                problems.append(f"{where}: a gauge starts at 0 (fieldConfig.defaults.min)")
    if problems:
        raise AssertionError("\n".join(dict.fromkeys(problems)))
    rows = [p["title"] for p in dashboard["panels"] if p.get("type") == "row"]
    return (f"uid {UID}, the seed's {len(SEED_PANELS)} panels in order, rows {rows}, "
            f"{len(panels_with_rows(dashboard)) - len(SEED_PANELS)} more in {DETAILS_ROW}")


def check_panel_list(dashboard: dict) -> list[str]:
    """The seed's ten panels first, in its order, with its titles and types; the seven ungated
    ones above any row, the three "canary only" ones under CANARY_ONLY_ROW; then DETAILS_ROW."""
    problems = []
    listed = panels_with_rows(dashboard)
    seen = [(p.get("title"), p.get("type")) for p, _ in listed[:len(SEED_PANELS)]]
    if seen != SEED_PANELS:
        problems.append("the first panels are not the seed's ten (title, type) in order:\n"
                        + "\n".join(f"  {i + 1}. {s} expected {e}"
                                     for i, (s, e) in enumerate(zip(seen + [None] * 10, SEED_PANELS))
                                     if s != e))
    rows = [p for p in dashboard.get("panels", []) if p.get("type") == "row"]
    if [r.get("title") for r in rows] != [CANARY_ONLY_ROW, DETAILS_ROW]:
        problems.append(f"rows are {[r.get('title') for r in rows]}, expected "
                        f"{[CANARY_ONLY_ROW, DETAILS_ROW]}")
    if any(r.get("collapsed") or r.get("panels") for r in rows):
        problems.append("rows must not be collapsed: the chart gates the panels that follow a row")
    placed = {p["title"]: row for p, row in listed}
    for title, _ in SEED_PANELS:
        expected = CANARY_ONLY_ROW if title in GATED_PANELS else ""
        if title in placed and placed[title] != expected:
            problems.append(f"{title!r} is under row {placed[title]!r}, expected {expected!r}")
    details = {p["title"] for p, row in listed if row == DETAILS_ROW}
    if details != DETAILS:
        problems.append(f"the {DETAILS_ROW} row holds {sorted(details)}, expected {sorted(DETAILS)}")
    tokens = {p["title"] for p, _ in listed if is_token_panel(p)}
    if tokens != TOKEN_PANELS:
        problems.append(f"token panels are {sorted(tokens)}, expected {sorted(TOKEN_PANELS)}")
    gated = {p["title"] for p, row in listed if is_gated(p, row)}
    if gated != GATED_PANELS:
        problems.append(f"gated panels are {sorted(gated)}, expected {sorted(GATED_PANELS)}")
    return problems


def check_query_text(dashboard: dict) -> str:
    problems = []
    all_queries = queries(dashboard)
    for q in all_queries:
        where = f"{q.title!r} {q.ref_id}"
        if "$__rate_interval" not in q.expr:
            problems.append(f"{where}: does not use $__rate_interval")
        leftover = re.findall(r"\$\{?\w+", substitute(q.expr, rate_interval="5m"))
        if leftover:
            problems.append(f"{where}: uses variables other than {VARIABLES}: {leftover}")
        selectors = SELECTOR.findall(q.expr)
        if not selectors:
            problems.append(f"{where}: reads no zai_proxy family")
        for metric, matchers in selectors:
            if not all(f in matchers for f in FILTERS):
                problems.append(f"{where}: {metric} is not filtered on {' and '.join(FILTERS)}")
    if problems:
        raise AssertionError("\n".join(problems))
    return f"{len(all_queries)} queries"


def check_queries_parse(dashboard: dict, workdir: Path) -> str:
    rules = [{"record": f"dashboard:panel{q.panel_id}:{q.ref_id.lower()}",
              "expr": substitute(q.expr, variants=("production", "canary"), rate_interval="5m")}
             for q in queries(dashboard)]
    path = dump(workdir / "dashboard-queries.rules.yaml",
                {"groups": [{"name": "dashboard_queries", "rules": rules}]})
    promtool("check", "rules", str(path))
    return f"{len(rules)} expressions"


def fixture() -> list[dict]:
    """Both variants with traffic and every family the panels read; tokens on the canary only."""
    out = []
    for variant in ("production", "canary"):
        base = rs.target_labels(variant)
        out += rs.traffic(variant, 60, errors=3 if variant == "canary" else 0, slow=3)
        out += rs.utilization(variant, rs.constant(0.4))
        out += rs.adjustments(variant, 0)
        out += [rs.series("zai_proxy_concurrent_requests", base, rs.constant(4)),
                rs.series("zai_proxy_max_workers", base, rs.constant(10)),
                rs.series("zai_proxy_rate_limit_requests_per_second", base, rs.constant(10)),
                rs.series("zai_proxy_rate_limit_rejections_total", {**base, "client": "source-07"},
                          rs.counter(1)),
                rs.series("zai_proxy_zai_errors_total", {**base, "class": "frequency", "code": "1303"},
                          rs.counter(2)),
                rs.series("zai_proxy_retry_attempts_total", {**base, "reason": "frequency_429"},
                          rs.counter(2))]
        out += rs.upstream_429(variant, 2)
        for le, count in (("0.01", 50), ("0.1", 58), ("+Inf", 60)):
            out.append(rs.series("zai_proxy_rate_limit_wait_seconds_bucket",
                                 {**base, "client": "source-07", "le": le}, rs.counter(count)))
    canary = {**rs.target_labels("canary"), "model": "glm-4.7", "pricing_tier": "off_peak"}
    for direction, per_min in (("input", 6000), ("output", 1200)):
        labels = {**canary, "direction": direction}
        out += [rs.series("zai_proxy_tokens_total", labels, rs.counter(per_min)),
                rs.series("zai_proxy_estimated_tokens_total", labels, rs.counter(per_min // 10)),
                rs.series("zai_proxy_estimated_cost_usd_total", labels, rs.counter(0.01))]
    out += rs.token_counts("canary", 60, slow=1)
    return out


def check_queries_return_data(dashboard: dict, workdir: Path) -> str:
    tests = []
    for q in queries(dashboard):
        expected = ("canary",) if q.token_panel else ("production", "canary")
        tests.append({
            "expr": f"group by (deployment_variant) ({substitute(q.expr, rate_interval='5m')})",
            "eval_time": "10m",
            "exp_samples": [{"labels": f'{{deployment_variant="{v}"}}', "value": 1}
                            for v in expected]})
    path = dump(workdir / "dashboard-queries.test.yaml",
                {"rule_files": [], "evaluation_interval": "1m",
                 "tests": [{"name": "every panel query returns data per variant", "interval": "1m",
                            "input_series": fixture(), "promql_expr_test": tests}]})
    promtool("test", "rules", path.name, cwd=workdir)
    return f"{len(tests)} queries; token panels canary only"


def check_gates_match_template() -> str:
    helpers = (render.CHART / "templates" / "_monitoring.tpl").read_text()
    problems = []
    for name, value in (("zai-proxy.tokenMetricsRegex", TOKEN_METRICS),
                        ("zai-proxy.canaryOnlyRow", CANARY_ONLY_ROW)):
        block = helpers.split(f'define "{name}"', 1)[1].split("{{- end }}", 1)[0]
        if block.split("-}}", 1)[1].strip() != value:
            problems.append(f"tools/chart/dashboard_queries.py has {value!r}, the chart's {name} differs")
    if problems:
        raise AssertionError("\n".join(problems))
    return ""


def without_gated(dashboard: dict) -> list[dict]:
    """The top-level panels the chart keeps when it drops the token panels: everything but the
    Canary only row, the panels under it and the token panels."""
    kept, row = [], ""
    for panel in dashboard["panels"]:
        if panel.get("type") == "row":
            row = panel.get("title", "")
            if row != CANARY_ONLY_ROW:
                kept.append(panel)
        elif not is_gated(panel, row):
            kept.append(panel)
    return kept


def configmap_dashboards(release: render.Release) -> list[dict]:
    objects = render.render(release)
    maps = [o for o in objects if o.get("kind") == "ConfigMap"
            and o["metadata"].get("labels", {}).get("grafana_dashboard") == "1"]
    return [json.loads(m["data"][CONFIGMAP_KEY]) for m in maps]


def check_rendered(source: dict) -> str:
    problems = []
    owner = configmap_dashboards(render.PRODUCTION)
    if len(owner) != 1:
        problems.append(f"the production release renders {len(owner)} dashboards, expected 1")
    elif owner[0] != source:
        problems.append("the rendered dashboard differs from dashboards/*.json (Helm changed it)")
    canary = configmap_dashboards(render.CANARY)
    if canary:
        problems.append("the canary release renders a dashboard too: two owners of one uid")
    uids = [d["uid"] for d in owner + canary]
    if uids.count(UID) != 1:
        problems.append(f"both seed releases together render uid {UID} {uids.count(UID)} times")
    hidden = configmap_dashboards(render.Release(
        "production-auto", "zai-proxy", "mcp", render.PRODUCTION.values,
        ("grafanaDashboard.tokenPanels=auto",)))
    if len(hidden) == 1:
        text = json.dumps(hidden[0])
        titles = {p["title"] for p in hidden[0]["panels"]}
        if titles & (GATED_PANELS | {CANARY_ONLY_ROW}) or re.search(TOKEN_METRICS, text):
            problems.append("tokenPanels=auto without token counting must drop the Canary only "
                            f"row and the token panels; it keeps {sorted(titles)}")
        if hidden[0]["panels"] != without_gated(source):
            problems.append("dropping the token panels changed the other panels")
    else:
        problems.append("production with tokenPanels=auto renders no dashboard")
    if problems:
        raise AssertionError("\n".join(problems))
    return "one owner (production), JSON unchanged, Canary only row and token panels gated"


def main(argv: list[str]) -> int:
    workdir = Path(argv[1]) if len(argv) > 1 else Path(tempfile.mkdtemp(prefix="zai-dash-"))
    workdir.mkdir(parents=True, exist_ok=True)
    checks = Checks()
    try:
        dashboard = load()
    except (OSError, ValueError) as exc:
        print(f"FAIL  dashboard JSON loads ({DASHBOARD.name}): {exc}")
        return 1
    checks.run("dashboard JSON: uid, id null, title, tags, variables, units, descriptions, layout",
               check_json, dashboard)
    checks.run("dashboard queries: $__rate_interval, filtered on deployment_variant and namespace",
               check_query_text, dashboard)
    checks.run("dashboard queries parse (promtool check rules)", check_queries_parse, dashboard, workdir)
    checks.run("dashboard queries return data per variant (promtool test rules)",
               check_queries_return_data, dashboard, workdir)
    checks.run("token panel pattern and Canary only row match the chart's",
               check_gates_match_template)
    checks.run("rendered dashboard ConfigMap", check_rendered, dashboard)
    return 1 if checks.failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
