"""Token and cost accounting through the proxy app over HTTP, read from its metrics.

The fake upstream reports usage numbers we choose, so every direction is asserted exactly:
prompt 100 (of which 20 cached), completion 50, and on Anthropic 10 tokens written to the cache.
"""

from __future__ import annotations

import json
import time

import pytest
import requests

from zai_proxy.pricing import pricing_tier

USAGE = "prompt_tokens=100;cached_tokens=20;cache_creation_tokens=10;completion_tokens=50"
OPENAI_BODY = {"model": "glm-4.7", "messages": [{"role": "user", "content": "hello there"}]}
ANTHROPIC_BODY = {**OPENAI_BODY, "max_tokens": 64}
# glm-4.7 list prices, USD per 1M tokens
PRICE = {"input": 0.60, "output": 2.20, "cache_read": 0.11, "cache_write": 0.0}


@pytest.fixture
def canary(start_proxy):
    return start_proxy(DEPLOYMENT_VARIANT="canary", TOKEN_COUNTING_ENABLED="true",
                       RATE_LIMIT_ENABLED="false")


def _tokens(proxy, direction, **labels):
    return proxy.value("zai_proxy_tokens_total", direction=direction, **labels)


def _wait_for_tokens(proxy, direction, expected, timeout=5.0):
    deadline = time.monotonic() + timeout
    while _tokens(proxy, direction) < expected and time.monotonic() < deadline:
        time.sleep(0.05)
    return _tokens(proxy, direction)


def _assert_usage(proxy, expected: dict):
    tier = pricing_tier(time.time())
    multiplier = 2 if tier == "peak" else 1
    _wait_for_tokens(proxy, "output", expected["output"])
    for direction, count in expected.items():
        labels = dict(direction=direction, model="glm-4.7", variant="canary", pricing_tier=tier)
        assert proxy.value("zai_proxy_tokens_total", **labels) == count, direction
        assert proxy.value("zai_proxy_estimated_tokens_total", **labels) == 0, direction
        cost = proxy.value("zai_proxy_estimated_cost_usd_total", **labels)
        assert cost == pytest.approx(count * PRICE[direction] / 1e6 * multiplier), direction


@pytest.mark.parametrize("stream", [False, True])
def test_openai_usage_all_directions(canary, stream):
    response = requests.post(canary.url + "/v1/chat/completions",
                             json={**OPENAI_BODY, "stream": stream},
                             headers={"X-Fake-Scenario": USAGE})
    assert response.status_code == 200
    # OpenAI's prompt_tokens includes the cached part: input is billed for the rest only.
    _assert_usage(canary, {"input": 80, "cache_read": 20, "output": 50})


@pytest.mark.parametrize("stream", [False, True])
def test_anthropic_usage_all_directions(canary, stream):
    response = requests.post(canary.url + "/v1/messages", json={**ANTHROPIC_BODY, "stream": stream},
                             headers={"X-Fake-Scenario": USAGE})
    assert response.status_code == 200
    _assert_usage(canary, {"input": 100, "cache_read": 20, "cache_write": 10, "output": 50})


def test_usage_chunk_is_requested_upstream_and_stripped_when_the_client_did_not_ask(
        canary, fake_zai):
    body = {**OPENAI_BODY, "stream": True}
    headers = {"X-Fake-Scenario": USAGE}
    direct = requests.post(fake_zai.url + "/api/paas/v4/chat/completions", json=body,
                           headers=headers).content
    fake_zai.clear()
    proxied = requests.post(canary.url + "/v1/chat/completions", json=body,
                            headers=headers).content
    assert fake_zai.requests[0].json()["stream_options"] == {"include_usage": True}
    assert proxied == direct                          # the client's stream is untouched
    assert b'"usage"' not in proxied
    assert _wait_for_tokens(canary, "output", 50) == 50


def test_usage_chunk_is_kept_when_the_client_asked_for_it(canary, fake_zai):
    body = {**OPENAI_BODY, "stream": True, "stream_options": {"include_usage": True}}
    headers = {"X-Fake-Scenario": USAGE}
    direct = requests.post(fake_zai.url + "/api/paas/v4/chat/completions", json=body,
                           headers=headers).content
    proxied = requests.post(canary.url + "/v1/chat/completions", json=body,
                            headers=headers).content
    assert proxied == direct
    assert b'"usage"' in proxied


def test_missing_upstream_usage_is_estimated_and_marked(canary):
    requests.post(canary.url + "/v1/chat/completions", json=OPENAI_BODY,
                  headers={"X-Fake-Scenario": "ok;no_usage=1;chunks=30"})
    output = _wait_for_tokens(canary, "output", 1)
    assert output > 0
    assert canary.value("zai_proxy_estimated_tokens_total", direction="output") == output
    estimated_input = canary.value("zai_proxy_estimated_tokens_total", direction="input")
    assert estimated_input == _tokens(canary, "input") > 0


def test_a_client_that_disconnects_mid_stream_is_billed_for_partial_output(canary, fake_zai):
    response = requests.post(canary.url + "/v1/messages", stream=True,
                             json={**ANTHROPIC_BODY, "stream": True},
                             headers={"X-Fake-Scenario": USAGE + ";chunks=400;interval_ms=20"})
    chunks = response.iter_content(None)
    received = b""
    while received.count(b"content_block_delta") < 20:
        received += next(chunks)
    response.close()
    output = _wait_for_tokens(canary, "output", 1)
    # Twenty-odd deltas reached the client before it left: they are counted, as an estimate.
    assert 10 <= output < 400
    assert canary.value("zai_proxy_estimated_tokens_total", direction="output") == output
    # message_start had already reported the input side, which is not estimated.
    assert _tokens(canary, "cache_read") == 20
    assert canary.wait_value("zai_proxy_stream_disconnects_total", 1) == 1


def test_input_is_counted_locally_before_forwarding(canary):
    requests.post(canary.url + "/v1/chat/completions", json=OPENAI_BODY)
    deadline = time.monotonic() + 5
    while (canary.value("zai_proxy_token_count_duration_seconds_count") < 1
           and time.monotonic() < deadline):
        time.sleep(0.05)
    assert canary.value("zai_proxy_token_count_duration_seconds_count") == 1


def test_counting_off_means_no_token_series_and_untouched_bodies(start_proxy, fake_zai):
    proxy = start_proxy(TOKEN_COUNTING_ENABLED="false", RATE_LIMIT_ENABLED="false")
    body = json.dumps({**OPENAI_BODY, "stream": True}).encode()
    proxied = requests.post(proxy.url + "/v1/chat/completions", data=body,
                            headers={"Content-Type": "application/json",
                                     "X-Fake-Scenario": USAGE})
    assert proxied.status_code == 200
    requests.post(proxy.url + "/v1/messages", json=ANTHROPIC_BODY)
    assert fake_zai.requests[0].body == body           # no include_usage injected
    text = proxy.metrics_text()
    samples = [line for line in text.splitlines()
               if line.startswith("zai_proxy_") and ("token" in line or "cost" in line)]
    assert samples == []
