"""The dashboard as the chart installs it: the verdict's thresholds are the rendered comparison
alerts' own figures, its targets name the Services the releases render, and adding it never
makes Prometheus scrape a pod twice."""

from __future__ import annotations

import functools
import re

import pytest

from tools.chart import render as rendering
from tools.chart.render import CANARY, PRODUCTION, Release, alerts
from zai_dashboard import config

pytestmark = pytest.mark.needs_tools     # helm renders the chart

TUNED = Release("tuned", "zai-proxy", "mcp", ("values/values-production.yaml",),
                ("prometheusRule.thresholds.errorRatioFactor=3",
                 "prometheusRule.thresholds.latencyP95Factor=2"))
TUNED_CANARY = Release("tuned-canary", "zai-proxy-canary", "devpod",
                       ("values/values-canary.yaml",), TUNED.sets)


@functools.cache
def render(release: Release) -> list[dict]:
    """Every object of one `helm template` (once per release in this module)."""
    return rendering.render(release)


def rule_spec(release: Release) -> dict:
    return rendering.one(render(release), "PrometheusRule")["spec"]


def dashboard_env(release: Release) -> dict[str, str]:
    deployment, = [o for o in render(release) if o["kind"] == "Deployment"
                   and o["metadata"]["labels"].get("app.kubernetes.io/component") == "dashboard"]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return {item["name"]: item["value"] for item in container["env"]}


def rule_figures(release: Release) -> dict[str, float]:
    rules = alerts(rule_spec(release))
    error = rules["ZaiProxyCanaryDegradedVsProduction"]["expr"]
    latency = rules["ZaiProxyCanarySlowerThanProduction"]["expr"]
    floor = re.search(r'rate5m\{deployment_variant="canary"\} > ([0-9.]+)', error)
    e = re.search(r"group_left \(\) ([0-9.]+) \* \(.*\+ ([0-9.]+)\)", error)
    lat = re.search(r"group_left \(\) ([0-9.]+) \* \(.*\+ ([0-9.]+)\)", latency)
    return {"error_ratio_factor": float(e.group(1)), "error_ratio_margin": float(e.group(2)),
            "latency_p95_factor": float(lat.group(1)),
            "latency_p95_margin_s": float(lat.group(2)),
            "min_requests_per_s": float(floor.group(1))}


@pytest.mark.parametrize("dashboard, rules", [(PRODUCTION, CANARY), (TUNED, TUNED_CANARY)],
                         ids=["defaults", "tuned"])
def test_the_verdict_uses_the_rendered_comparison_alerts_figures(dashboard, rules):
    loaded = config.load(dashboard_env(dashboard))
    figures = rule_figures(rules)
    assert figures == {
        "error_ratio_factor": loaded.thresholds.error_ratio_factor,
        "error_ratio_margin": loaded.thresholds.error_ratio_margin,
        "latency_p95_factor": loaded.thresholds.latency_p95_factor,
        "latency_p95_margin_s": loaded.thresholds.latency_p95_margin_s,
        "min_requests_per_s": loaded.thresholds.min_requests_per_s}
    if dashboard is TUNED:
        assert figures["error_ratio_factor"] == 3 and figures["latency_p95_factor"] == 2


def test_the_rendered_settings_load_and_name_both_releases_headless_services():
    env = dashboard_env(PRODUCTION)
    loaded = config.load(env)
    assert loaded.variants == ("production", "canary")
    names = {}
    for release in (PRODUCTION, CANARY):
        service, = [o for o in render(release) if o["kind"] == "Service"
                    and o["metadata"]["name"].endswith("-headless")]
        names[release.name] = (service["metadata"]["name"], service["metadata"]["namespace"],
                               service["spec"]["ports"][0]["port"])
        assert service["spec"]["clusterIP"] == "None"
    for variant, release in (("production", "production"), ("canary", "canary")):
        target, = loaded.targets[variant]
        name, namespace, port = names[release]
        assert target.dns and target.host == f"{name}.{namespace}.svc.cluster.local"
        assert target.port == port and target.path == "/metrics"


@pytest.mark.parametrize("release", [PRODUCTION, CANARY], ids=["production", "canary"])
def test_no_new_service_is_selected_by_a_servicemonitor(release):
    objects = render(release)
    monitor = next(o for o in objects if o["kind"] == "ServiceMonitor")
    selector = monitor["spec"]["selector"]["matchLabels"]
    selected = [o["metadata"]["name"] for o in objects if o["kind"] == "Service" and all(
        o["metadata"].get("labels", {}).get(k) == v for k, v in selector.items())]
    assert selected == [release.release]   # the main Service only: no pod scraped twice
