"""The dashboard's settings: read once, validated, errors naming the variable, no secret shown;
and the exposition parser against prometheus_client's own."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from zai_dashboard import config, exposition
from zai_dashboard.metrics import Metrics

ROOT = Path(__file__).resolve().parents[2]
TARGETS = "production=http://127.0.0.1:8080/metrics"


def test_defaults():
    c = config.load({"DASHBOARD_TARGETS": TARGETS})
    assert (c.port, c.scrape_interval, c.verdict_window) == (8090, 5, 600)
    assert (c.raw_retention, c.rollup_retention) == (86400, 7 * 86400)
    assert c.thresholds == config.Thresholds(2.0, 0.01, 1.5, 0.1, 0.05)
    assert c.source == "scrape" and c.variants == ("production",)


def test_targets_name_the_variants_in_order_and_resolve_per_kind():
    c = config.load({"DASHBOARD_TARGETS": "canary=dns+http://zai-proxy-canary-headless.devpod:8080"
                                          "/metrics ; production=http://a:1/m,http://b:2/m"})
    assert c.variants == ("canary", "production")
    canary, = c.targets["canary"]
    assert (canary.dns, canary.host, canary.port, canary.path) == (
        True, "zai-proxy-canary-headless.devpod", 8080, "/metrics")
    assert canary.pods(lambda host, port: ["10.0.0.7", "10.0.0.5", "10.0.0.7"]) == [
        ("10.0.0.5:8080", "http://10.0.0.5:8080/metrics"),
        ("10.0.0.7:8080", "http://10.0.0.7:8080/metrics")]
    assert [t.host for t in c.targets["production"]] == ["a", "b"]


@pytest.mark.parametrize("env, name", [
    ({}, "DASHBOARD_TARGETS"),
    ({"DASHBOARD_TARGETS": "production"}, "DASHBOARD_TARGETS"),
    ({"DASHBOARD_TARGETS": "Prod=http://a/metrics"}, "DASHBOARD_TARGETS"),
    ({"DASHBOARD_TARGETS": "production=ftp://a/metrics"}, "DASHBOARD_TARGETS"),
    ({"DASHBOARD_TARGETS": "production=http://a/m;production=http://b/m"}, "DASHBOARD_TARGETS"),
    ({"DASHBOARD_TARGETS": "production="}, "DASHBOARD_TARGETS"),
    ({"DASHBOARD_TARGETS": "production=http://a:99999/m"}, "DASHBOARD_TARGETS"),
    ({"DASHBOARD_TARGETS": TARGETS, "DASHBOARD_PORT": "0"}, "DASHBOARD_PORT"),
    ({"DASHBOARD_TARGETS": TARGETS, "DASHBOARD_SCRAPE_INTERVAL": "1500ms"},
     "DASHBOARD_SCRAPE_INTERVAL"),
    ({"DASHBOARD_TARGETS": TARGETS, "DASHBOARD_SCRAPE_INTERVAL": "soon"},
     "DASHBOARD_SCRAPE_INTERVAL"),
    ({"DASHBOARD_TARGETS": TARGETS, "DASHBOARD_SCRAPE_TIMEOUT": "10s"},
     "DASHBOARD_SCRAPE_TIMEOUT"),
    ({"DASHBOARD_TARGETS": TARGETS, "DASHBOARD_VERDICT_WINDOW": "2d"},
     "DASHBOARD_VERDICT_WINDOW"),
    ({"DASHBOARD_TARGETS": TARGETS, "DASHBOARD_ERROR_RATIO_FACTOR": "0.5"},
     "DASHBOARD_ERROR_RATIO_FACTOR"),
    ({"DASHBOARD_TARGETS": TARGETS, "DASHBOARD_MIN_REQUEST_RATE": "nan"},
     "DASHBOARD_MIN_REQUEST_RATE"),
    ({"DASHBOARD_TARGETS": TARGETS, "DASHBOARD_LOG_LEVEL": "loud"}, "DASHBOARD_LOG_LEVEL"),
    ({"DASHBOARD_TARGETS": TARGETS, "DASHBOARD_DB_PATH": "/data/"}, "DASHBOARD_DB_PATH"),
    ({"DASHBOARD_TARGETS": TARGETS, "DASHBOARD_PROMETHEUS_URL": "http://p:9090"},
     "DASHBOARD_PROMETHEUS_URL"),
    ({"DASHBOARD_PROMETHEUS_URL": "prometheus:9090"}, "DASHBOARD_PROMETHEUS_URL"),
    ({"DASHBOARD_PROMETHEUS_URL": "http://p:9090", "DASHBOARD_VARIANTS": "a,a"},
     "DASHBOARD_VARIANTS"),
    ({"DASHBOARD_TARGETS": TARGETS, "DASHBOARD_VARIANTS": "a,b"}, "DASHBOARD_VARIANTS"),
])
def test_errors_name_the_variable(env, name):
    with pytest.raises(config.ConfigError) as error:
        config.load(env)
    assert name in str(error.value)


def test_credentials_in_a_target_never_reach_an_error_or_the_config_repr():
    with pytest.raises(config.ConfigError) as error:
        config.load({"DASHBOARD_TARGETS": "production=http://u:hunter22@a:99999/m"})
    assert "hunter22" not in str(error.value)
    c = config.load({"DASHBOARD_TARGETS": "production=http://u:hunter22@a/m",
                     "DASHBOARD_PROMETHEUS_URL": ""})
    assert "hunter22" not in repr(c)
    assert c.secrets == ("hunter22",)
    assert c.targets["production"][0].auth == ("u", "hunter22")


def test_the_prometheus_source_takes_its_variants_from_dashboard_variants():
    c = config.load({"DASHBOARD_PROMETHEUS_URL": "http://prometheus.monitoring:9090/",
                     "DASHBOARD_VARIANTS": "production, canary"})
    assert c.source == "prometheus" and c.variants == ("production", "canary")
    assert c.prometheus_url == "http://prometheus.monitoring:9090"


def test_exposition_parser_agrees_with_prometheus_client(fake_zai, inprocess_proxy):
    import requests
    proxy = inprocess_proxy(TOKEN_COUNTING_ENABLED="true", LOG_LEVEL="error")
    for model in ("glm-4.7", "glm-4.7@status;code=503", "glm-4.5-air"):
        requests.post(proxy.url + "/v1/chat/completions", timeout=10, json={
            "model": model, "messages": [{"role": "user", "content": "hi"}]})
    text = requests.get(proxy.url + "/metrics", timeout=5).text
    ours = exposition.parse(text)
    cache = exposition.LabelCache()
    theirs = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in exposition.WANTED:
                theirs[(sample.name, frozenset(sample.labels.items()))] = sample.value
    assert len(theirs) > 40
    assert {(exposition.name_of(k), frozenset(cache.labels(k).items())): v
            for k, v in ours.items()} == theirs


def test_exposition_parser_edge_cases():
    text = ('# HELP x\n'
            'zai_proxy_requests_total{path="/a\\"b}",status_code="200"} 3 1700000000000\r\n'
            'zai_proxy_max_workers 10\n'
            'zai_proxy_concurrent_requests NaN\n'
            'zai_proxy_request_size_bytes_bucket{le="100"} 4\n')
    parsed = exposition.parse(text)
    key = 'zai_proxy_requests_total{path="/a\\"b}",status_code="200"}'
    assert parsed == {key: 3.0, "zai_proxy_max_workers": 10.0}
    assert exposition.LabelCache().labels(key) == {"path": '/a"b}', "status_code": "200"}
    for bad in ("<html><body>login</body></html>", '{"status": "ok"}'):
        with pytest.raises(exposition.ExpositionError):
            exposition.parse(bad)
    with pytest.raises(exposition.ExpositionError):
        exposition.parse("zai_proxy_max_workers ten\n")
    assert exposition.parse("") == {}


def test_readme_documents_every_setting_and_metric():
    readme = (ROOT / "dashboard/README.md").read_text()
    source = (ROOT / "dashboard/zai_dashboard/config.py").read_text()
    settings = set(re.findall(r'"(DASHBOARD_[A-Z0-9_]+)"', source))
    assert len(settings) >= 21
    assert sorted(name for name in settings if f"`{name}`" not in readme) == []
    families = {metric.name for metric in Metrics().registry.collect()}
    assert len(families) >= 15
    assert sorted(name for name in families if f"`{name}" not in readme) == []
