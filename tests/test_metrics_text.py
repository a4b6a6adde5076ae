"""tools.metrics_text.samples reads a /metrics page exactly as prometheus_client's parser does.

The tests read proxies' pages through it (ProxyReadings.metrics, value, wait_value), so a
misread here would misjudge every metric assertion."""

from __future__ import annotations

import math

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tools import metrics_text


def reference(text: str) -> dict:
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def same(got: dict, wanted: dict) -> bool:
    """Equal, where NaN equals NaN (a summary of no observations)."""
    return got.keys() == wanted.keys() and all(
        got[k] == wanted[k] or (math.isnan(got[k]) and math.isnan(wanted[k])) for k in got)


@pytest.fixture
def fast_only(monkeypatch):
    """Fails the test if the page needed prometheus_client's parser."""
    def refuse(text):
        raise AssertionError("a line outside the fast reader's grammar")
    monkeypatch.setattr(metrics_text, "_samples_slowly", refuse)


def test_a_proxy_page_after_traffic_and_errors_is_read_as_prometheus_client_reads_it(
        start_proxy, fake_zai, fast_only):
    proxy = start_proxy(TOKEN_COUNTING_ENABLED="true", MAX_RETRIES="0")
    for stream in (False, True):
        requests.post(proxy.url + "/v1/messages", json={
            "model": "glm-4.7", "max_tokens": 8, "stream": stream,
            "messages": [{"role": "user", "content": "hi"}]}).raise_for_status()
    requests.post(proxy.url + "/v1/chat/completions",
                  headers={"X-Fake-Scenario": "status;code=503"},
                  json={"model": "glm-4.7", "messages": [{"role": "user", "content": "x"}]})
    requests.get(proxy.url + "/v9/nowhere")
    page = proxy.metrics_text()
    got = metrics_text.samples(page)
    assert same(got, reference(page))
    assert len(got) > 100 and any(labels for _, labels in got)


EDGES = (
    # escapes in label values, an empty value, a trailing comma, a timestamp
    'x{a="q\\"uo\\\\te\\nnext",b=""} 1.5e3 1700000000000\n'
    'x{a="plain",} 2\n'
    # special values, no labels, HELP and TYPE with odd text
    '# HELP y a "quoted" help \\ text\n# TYPE y gauge\ny +Inf\nz -Inf\nw NaN\nv -0.0\n'
    # a label value holding the characters that end labels and lines elsewhere
    'u{path="/a}b,c=d e"} 3\n'
)


def test_escapes_special_values_and_timestamps_are_read_on_the_fast_path(fast_only):
    got = metrics_text.samples(EDGES)
    assert same(got, reference(EDGES))
    assert got[("x", frozenset({("a", 'q"uo\\te\nnext'), ("b", "")}))] == 1500.0
    assert got[("u", frozenset({("path", "/a}b,c=d e")}))] == 3


@pytest.mark.parametrize("line", [
    "x  1",                                   # two spaces
    "x\t1",                                   # a tab
    'x{a="1"} 2 # {trace_id="abc"} 1.0',      # an exemplar
    'x{ a="1" } 2',                           # spaces inside the braces
])
def test_other_shapes_are_read_by_prometheus_client(line):
    text = "# TYPE x counter\n" + line + "\n"
    assert metrics_text._SAMPLE.fullmatch(line) is None
    assert same(metrics_text.samples(text), reference(text))
