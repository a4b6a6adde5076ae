"""Offline proofs of the Grafana dashboard: `python -m tests.chart.check_dashboard [workdir]`.

- The JSON is sane: fixed uid, `"id": null`, title and tags of the seed, a datasource variable,
  `namespace`/`deployment_variant` variables, ten panels with a unit, a description and the
  datasource variable each, no overlapping grid positions, token panels last.
- Every query uses `$__rate_interval`, filters every zai_proxy selector on `deployment_variant` and
  `namespace`, uses no other variable, and parses (promtool check rules on a wrapper rule file).
- Every query returns data for both variants on synthetic series, the token panels for the canary
  only (promtool test rules), as the seed's values make it.
- The rendered ConfigMap: the JSON comes through Helm unchanged (Grafana's {{…}} legends intact),
  token panels follow grafanaDashboard.tokenPanels, and the two seed releases together render
  exactly one dashboard.
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
from tools.chart.dashboard_queries import (DASHBOARD, TOKEN_METRICS, VARIABLES, is_token_panel,
                                           load, queries, substitute)

UID = "zai-proxy-prod-vs-canary"
TITLE = "ZAI Proxy - Production vs Canary"
TAGS = {"zai-proxy", "canary", "production", "monitoring"}
TOKEN_PANELS = {"Tokens per second", "Estimated cost (USD per hour)"}
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
    panels = dashboard.get("panels", [])
    if len(panels) != 10:
        problems.append(f"{len(panels)} panels, the seed's dashboard has ten")
    ids = [p.get("id") for p in panels]
    if len(set(ids)) != len(ids):
        problems.append(f"panel ids repeat: {ids}")
    cells = set()
    for panel in panels:
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
        grid = panel.get("gridPos", {})
        if grid.get("x", 0) + grid.get("w", 0) > 24:
            problems.append(f"{where}: wider than the grid")
        for x in range(grid.get("x", 0), grid.get("x", 0) + grid.get("w", 0)):
            for y in range(grid.get("y", 0), grid.get("y", 0) + grid.get("h", 0)):
                if (x, y) in cells:
                    problems.append(f"{where}: overlaps another panel at {(x, y)}")
                    break
                cells.add((x, y))
    tokens = [p for p in panels if is_token_panel(p)]
    if {p["title"] for p in tokens} != TOKEN_PANELS:
        problems.append(f"token panels are {[p['title'] for p in tokens]}, expected {sorted(TOKEN_PANELS)}")
    others_bottom = max((p["gridPos"]["y"] + p["gridPos"]["h"] for p in panels if p not in tokens), default=0)
    if any(p["gridPos"]["y"] < others_bottom for p in tokens):
        problems.append("token panels must come last, so hiding them leaves no gap")
    if problems:
        raise AssertionError("\n".join(dict.fromkeys(problems)))
    return f"uid {UID}, {len(panels)} panels, {len(tokens)} token panels"


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
        out += [rs.series("zai_proxy_concurrent_requests", base, rs.constant(4)),
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


def check_token_regex_matches_template() -> str:
    helpers = (render.CHART / "templates" / "_monitoring.tpl").read_text()
    block = helpers.split('define "zai-proxy.tokenMetricsRegex"', 1)[1].split("{{- end }}", 1)[0]
    if TOKEN_METRICS not in block.split("-}}", 1)[1]:
        raise AssertionError("dashboard_queries.TOKEN_METRICS differs from zai-proxy.tokenMetricsRegex")
    return ""


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
        if len(hidden[0]["panels"]) != 8 or re.search(TOKEN_METRICS, text):
            problems.append("tokenPanels=auto without token counting must drop exactly the token panels")
        kept = [p for p in source["panels"] if not is_token_panel(p)]
        if hidden[0]["panels"] != kept:
            problems.append("dropping the token panels changed the other panels")
    else:
        problems.append("production with tokenPanels=auto renders no dashboard")
    if problems:
        raise AssertionError("\n".join(problems))
    return "one owner (production), JSON unchanged, token panels gated"


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
    checks.run("token panel pattern matches the chart's", check_token_regex_matches_template)
    checks.run("rendered dashboard ConfigMap", check_rendered, dashboard)
    return 1 if checks.failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
