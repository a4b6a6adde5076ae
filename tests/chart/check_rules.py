"""Offline proofs of the chart's PrometheusRules: `python -m tests.chart.check_rules [workdir]`.

1. Render each release (render.RELEASES), take the PrometheusRule `.spec`, `promtool check rules`.
2. Check the rule set: seed names/severities/durations, every alert's labels and annotations and
   its runbook anchor, token gating, unique groups, no `namespace` in the comparisons, the schema
   listing exactly the chart's alerts.
3. Write promtool test files from rule_scenarios.py (fires / pending before `for` / healthy /
   quiet, for EVERY alert) plus the recording rules' values, and run `promtool test rules`.
Prints one PASS/FAIL line per check; exits 1 when any fails.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from tools.chart import render
from tests.chart.rule_scenarios import MINUTES, Scenario, scenarios, traffic

ROOT = render.ROOT
RUNBOOKS = ROOT / "docs" / "runbooks.md"
SCHEMA = render.CHART / "values.schema.json"
RULE_FILES = [render.CHART / "rules" / f"{v}.yaml" for v in ("canary", "production")]
SEVERITIES = {"critical", "warning", "info"}

# The seed's canary alerts (original-system.md, its MONITORING_SETUP): severity and `for`.
SEED_CANARY = {
    "ZaiProxyCanaryHighErrorRate": ("warning", "5m"),
    "ZaiProxyCanaryHighLatency": ("warning", "5m"),
    "ZaiProxyCanaryCrashLooping": ("critical", "5m"),
    "ZaiProxyCanaryNotReady": ("critical", "2m"),
    "ZaiProxyCanaryDegradedVsProduction": ("warning", "10m"),
    "ZaiProxyCanarySlowerThanProduction": ("warning", "10m"),
    "ZaiProxyCanaryTokenCountingSlow": ("warning", "5m"),
    "ZaiProxyCanaryRateLimitAdjustingDown": ("info", "5m"),
}
# Production's alerts (issue 4's list, plus CrashLooping and MetricsAbsent shared with the canary,
# and UpstreamAuthFailing: the operator's own key refused, issue 11).
PRODUCTION = {"ZaiProxyProductionHighErrorRate", "ZaiProxyProductionHighLatency",
              "ZaiProxyProductionZaiRateLimited", "ZaiProxyProductionAtCapacity",
              "ZaiProxyProductionNotReady", "ZaiProxyProductionQuotaBurn",
              "ZaiProxyProductionCrashLooping", "ZaiProxyProductionMetricsAbsent",
              "ZaiProxyProductionUpstreamAuthFailing"}
TOKEN_ALERTS = {"ZaiProxyCanaryTokenCountingSlow", "ZaiProxyProductionTokenCountingSlow"}


class Checks:
    def __init__(self) -> None:
        self.failed = 0

    def run(self, name: str, fn, *args):
        try:
            detail = fn(*args)
        except Exception as exc:  # a failed check prints why and the others still run
            self.failed += 1
            print(f"FAIL  {name}")
            for line in str(exc).strip().splitlines()[:60]:
                print(f"      {line}")
            return None
        print(f"PASS  {name}" + (f" ({detail})" if isinstance(detail, str) and detail else ""))
        return detail


def promtool(*args: str, cwd: Path | None = None) -> str:
    exe = shutil.which("promtool")
    if not exe:
        raise RuntimeError("promtool not found: run `make tools` (Debian package prometheus)")
    out = subprocess.run([exe, *args], capture_output=True, text=True, cwd=cwd)
    if out.returncode != 0:
        raise RuntimeError(out.stdout + out.stderr)
    return out.stdout


def check_rules(path: Path) -> str:
    found = re.search(r"SUCCESS: (\d+) rules found", promtool("check", "rules", str(path)))
    return f"{found.group(1)} rules" if found else ""


def dump(path: Path, data) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False, width=1000))
    return path


# --- static checks ----------------------------------------------------------------------------

def runbook_anchors() -> set[str]:
    """GitHub anchors of the `##`/`###` headings of docs/runbooks.md."""
    anchors = set()
    for line in RUNBOOKS.read_text().splitlines():
        match = re.match(r"^#{2,3} (.+)$", line)
        if match:
            anchors.add(re.sub(r"[^a-z0-9_ -]", "", match.group(1).strip().lower()).replace(" ", "-"))
    return anchors


def check_alert_fields(specs: dict[str, dict]) -> str:
    anchors = runbook_anchors()
    values = yaml.safe_load((render.CHART / "values.yaml").read_text())
    prefix = values["prometheusRule"]["runbookUrlPrefix"].rstrip("#")
    problems, count = [], 0
    for release, spec in specs.items():
        variant = "canary" if release == "canary" else "production"
        for name, rule in render.alerts(spec).items():
            count += 1
            where = f"{release}/{name}"
            if not re.fullmatch(rf"ZaiProxy{variant.capitalize()}[A-Z][A-Za-z]+", name):
                problems.append(f"{where}: not a CamelCase ZaiProxy{variant.capitalize()}… name")
            if rule.get("labels", {}).get("severity") not in SEVERITIES:
                problems.append(f"{where}: severity not in {sorted(SEVERITIES)}")
            if not rule.get("for"):
                problems.append(f"{where}: no `for`")
            notes = rule.get("annotations", {})
            for key in ("summary", "description", "runbook_url"):
                if not notes.get(key):
                    problems.append(f"{where}: no {key}")
            url = notes.get("runbook_url", "")
            if url != f"{prefix}#{name.lower()}":
                problems.append(f"{where}: runbook_url {url!r} is not {prefix}#{name.lower()}")
            if name.lower() not in anchors:
                problems.append(f"{where}: docs/runbooks.md has no heading `## {name}`")
            if not all(isinstance(v, str) for v in rule.get("labels", {}).values()):
                problems.append(f"{where}: a label value is not a string")
    if problems:
        raise AssertionError("\n".join(problems))
    return f"{count} alerts"


def check_seed_and_gates(specs: dict[str, dict]) -> str:
    canary = render.alerts(specs["canary"])
    production = render.alerts(specs["production"])
    with_tokens = render.alerts(specs["production-tokens"])
    problems = []
    for name, (severity, duration) in SEED_CANARY.items():
        rule = canary.get(name)
        if not rule:
            problems.append(f"canary: seed alert {name} missing")
        elif (rule["labels"]["severity"], rule["for"]) != (severity, duration):
            problems.append(f"canary: {name} is {rule['labels']['severity']}/{rule['for']}, "
                            f"the seed says {severity}/{duration}")
    group_names = [g["name"] for g in specs["canary"]["groups"]]
    if "zai_proxy_canary_alerts" not in group_names:
        problems.append(f"canary groups {group_names} lack zai_proxy_canary_alerts")
    alerts_group = next(g for g in specs["canary"]["groups"] if g["name"] == "zai_proxy_canary_alerts")
    missing = set(SEED_CANARY) - {r.get("alert") for r in alerts_group["rules"]}
    if missing:
        problems.append(f"zai_proxy_canary_alerts lacks {sorted(missing)}")
    if set(production) != PRODUCTION:
        problems.append(f"production alerts {sorted(production)} != {sorted(PRODUCTION)}")
    if set(with_tokens) != PRODUCTION | {"ZaiProxyProductionTokenCountingSlow"}:
        problems.append("production with tokenCounting.enabled=true must add exactly "
                        "ZaiProxyProductionTokenCountingSlow")
    if TOKEN_ALERTS & set(production):
        problems.append("production (token counting off) renders a token alert")
    all_groups = [g["name"] for key in ("canary", "production") for g in specs[key]["groups"]]
    if len(all_groups) != len(set(all_groups)):
        problems.append(f"group names repeat across the releases: {all_groups}")
    for name in ("ZaiProxyCanaryDegradedVsProduction", "ZaiProxyCanarySlowerThanProduction"):
        expr = canary[name]["expr"]
        if "namespace" in expr or "on ()" not in expr:
            problems.append(f"{name} must match with on () and never on namespace")
    if problems:
        raise AssertionError("\n".join(problems))
    return "seed severities and durations, token gate, unique groups, comparisons on ()"


def check_schema_lists_alerts() -> str:
    schema = json.loads(SCHEMA.read_text())
    listed = set(schema["properties"]["prometheusRule"]["properties"]["alerts"]["properties"])
    defined = {r["alert"] for f in RULE_FILES for r in yaml.safe_load(f.read_text())["alerts"]}
    if listed != defined:
        raise AssertionError(f"values.schema.json prometheusRule.alerts lists {sorted(listed ^ defined)} "
                             "differently from rules/*.yaml")
    return f"{len(defined)} alert names"


# --- promtool unit tests ----------------------------------------------------------------------

def pending_sample(name: str, labels: dict[str, str]) -> dict:
    full = {"alertname": name, "alertstate": "pending", **labels}
    inner = ",".join(f'{k}="{v}"' for k, v in sorted(full.items()))
    return {"labels": f"ALERTS{{{inner}}}", "value": 1}


def minutes(duration: str) -> int:
    match = re.fullmatch(r"(\d+)m", duration)
    if not match:
        raise AssertionError(f"`for: {duration}`: the tests expect whole minutes")
    return int(match.group(1))


def alert_tests(name: str, rule: dict, scenario: Scenario) -> list[dict]:
    wait = minutes(rule["for"])
    fires_at = scenario.onset + wait + 1
    before = scenario.onset + wait - 1
    labels = {**rule.get("labels", {}), **scenario.labels}
    annotations = {**rule["annotations"], "description": scenario.description}
    expected = [{"exp_labels": labels, "exp_annotations": annotations}]

    def case(title, series, eval_time, exp, pending=None):
        test = {"name": f"{name}: {title}", "interval": "1m", "input_series": series,
                "alert_rule_test": [{"eval_time": f"{eval_time}m", "alertname": name,
                                     "exp_alerts": exp}]}
        if pending:
            test["promql_expr_test"] = [{"expr": f'ALERTS{{alertname="{name}"}}',
                                         "eval_time": f"{eval_time}m", "exp_samples": [pending]}]
        return test

    tests = [
        case("fires on the bad variant", scenario.bad, fires_at, expected),
        case(f"pending, not firing, before its for ({rule['for']})", scenario.bad, before, [],
             pending_sample(name, labels)),
        case("silent on a healthy variant", scenario.healthy, fires_at, []),
    ]
    tests += [case(f"silent: {why}", series, fires_at, []) for why, series in scenario.quiet]
    # Still silent much later, so "silent" never means "not yet".
    tests += [case(f"still silent at {MINUTES - 5}m: {why}", series, MINUTES - 5, [])
              for why, series in [("healthy", scenario.healthy)] + scenario.quiet]
    return tests


def recording_tests() -> list[dict]:
    """The by-variant recording rules: one series per variant, production's 5xx ratio 0 not missing."""
    series = traffic("canary", 60, errors=30, slow=30) + traffic("production", 60)
    at = "10m"
    expect = [
        ("deployment_variant:zai_proxy_requests:rate5m", {"canary": 1, "production": 1}),
        ("deployment_variant:zai_proxy_requests_5xx:ratio_rate5m", {"canary": 0.5, "production": 0}),
        # p95: canary half slow -> 10 + 20 * (0.95 - 0.5) / 0.5 = 28s; production 0.95 * 1s.
        ("deployment_variant:zai_proxy_request_duration_seconds:p95_rate5m",
         {"canary": 28, "production": 0.95}),
    ]
    return [{"name": "recording rules by deployment_variant", "interval": "1m",
             "input_series": series,
             "promql_expr_test": [
                 {"expr": metric, "eval_time": at,
                  "exp_samples": [{"labels": f'{metric}{{deployment_variant="{v}"}}', "value": val}
                                  for v, val in values.items()]}
                 for metric, values in expect]}]


def write_tests(workdir: Path, specs: dict[str, dict], rule_paths: dict[str, Path]) -> list[Path]:
    cases = scenarios()
    rendered = {}
    for release, spec in specs.items():  # first release that renders an alert tests it
        for name, rule in render.alerts(spec).items():
            rendered.setdefault(name, (release, rule))
    missing = set(rendered) - set(cases)
    extra = set(cases) - set(rendered)
    if missing or extra:
        raise AssertionError(f"alerts without scenarios: {sorted(missing)}; "
                             f"scenarios without alerts: {sorted(extra)}")
    files = []
    for release, spec in specs.items():
        tests = [t for name, (owner, rule) in sorted(rendered.items()) if owner == release
                 for t in alert_tests(name, rule, cases[name])]
        if release == "canary":
            tests += recording_tests()
        if not tests:
            continue
        doc = {"rule_files": [rule_paths[release].name], "evaluation_interval": "1m",
               "group_eval_order": [g["name"] for g in spec["groups"]], "tests": tests}
        files.append(dump(workdir / f"{release}.test.yaml", doc))
    return files


def count_tests(files: list[Path]) -> str:
    total = sum(len(yaml.safe_load(f.read_text())["tests"]) for f in files)
    return f"{total} test groups in {len(files)} files"


def main(argv: list[str]) -> int:
    workdir = Path(argv[1]) if len(argv) > 1 else Path(tempfile.mkdtemp(prefix="zai-rules-"))
    workdir.mkdir(parents=True, exist_ok=True)
    checks = Checks()
    specs, paths = {}, {}
    for release in render.RELEASES:
        spec = checks.run(f"render PrometheusRule ({release.name})", render.rule_spec, release)
        if spec is None:
            return 1
        specs[release.name] = spec
        paths[release.name] = dump(workdir / f"{release.name}.rules.yaml", spec)
        checks.run(f"promtool check rules ({release.name})", check_rules, paths[release.name])
    checks.run("every alert: CamelCase name, severity, for, summary, description, runbook anchor",
               check_alert_fields, specs)
    checks.run("seed alerts and gates", check_seed_and_gates, specs)
    checks.run("values.schema.json lists exactly the chart's alerts", check_schema_lists_alerts)
    files = checks.run("promtool test files written for every alert (tests/chart/rule_scenarios.py)",
                       lambda: write_tests(workdir, specs, paths))
    if files:
        checks.run(f"promtool test rules ({count_tests(files)})",
                   lambda: promtool("test", "rules", *[f.name for f in files], cwd=workdir) and "")
    return 1 if checks.failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
