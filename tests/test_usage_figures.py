"""Usage figures are believed only when they can be token counts.

An upstream usage value such as `completion_tokens: 8.59e307` made the cost +Inf, and
`zai_proxy_estimated_cost_usd_total` stayed +Inf until the process restarted (the long fuzz of
`make reliability` found it). A figure that is not a whole, non-negative number of at most
MAX_USAGE_TOKENS is now treated as missing: estimated instead and marked so, counted in
`zai_proxy_invalid_usage_total{direction,reason}`, named in the request line, and logged at most
once a minute.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest
import requests
from prometheus_client import CollectorRegistry

os.environ.setdefault("TIKTOKEN_CACHE_DIR",
                      str(Path(__file__).resolve().parent.parent / ".cache" / "tiktoken"))

from tools.raw_upstream import Close, RawUpstream, head, response, sse  # noqa: E402
from zai_proxy.logs import EveryPeriod  # noqa: E402
from zai_proxy.metrics import Metrics  # noqa: E402
from zai_proxy.pricing import PriceTable  # noqa: E402
from zai_proxy.sse import Event  # noqa: E402
from zai_proxy.tokens import accountant as accountant_module  # noqa: E402
from zai_proxy.tokens.accountant import MAX_USAGE_TOKENS, UsageAccountant, usage_figure  # noqa: E402
from zai_proxy.tokens.counter import TokenCounter  # noqa: E402

ABSURD = 8.59e307
OFF_PEAK = 1_736_906_400.0   # 2025-01-15 10:00 in Shanghai


@pytest.mark.parametrize("value, expected", [
    (None, (None, None)), (0, (0, None)), (12, (12, None)), (12.0, (12, None)),
    (MAX_USAGE_TOKENS, (MAX_USAGE_TOKENS, None)),
    (MAX_USAGE_TOKENS + 1, (None, "too_large")), (ABSURD, (None, "too_large")),
    (math.inf, (None, "too_large")), (-math.inf, (None, "negative")),
    (math.nan, (None, "not_a_number")), (-3, (None, "negative")), (-0.5, (None, "negative")),
    (1.5, (None, "fraction")), ("12", (None, "not_a_number")), (True, (None, "not_a_number")),
    ([12], (None, "not_a_number")), ({"n": 1}, (None, "not_a_number")),
])
def test_a_usage_figure_is_a_whole_non_negative_number_within_the_bound(value, expected):
    assert usage_figure(value) == expected


@pytest.fixture
def metrics():
    return Metrics("test", CollectorRegistry(), model_labels=("glm-4.7",))


@pytest.fixture
def fresh_log(monkeypatch):
    """The once-a-minute warning gate, fresh for this test and on a clock it moves."""
    clock = [0.0]
    gate = EveryPeriod(60.0, clock=lambda: clock[0])
    monkeypatch.setattr(accountant_module, "INVALID_USAGE_LOG", gate)
    return clock


def _accountant(metrics, family="openai", estimate=40):
    return UsageAccountant(family, "glm-4.7", (estimate, False), True, PriceTable(), metrics,
                           wall=lambda: OFF_PEAK,
                           counter=TokenCounter("cl100k_base", 200_000, metrics))


def _value(metrics, name, **labels):
    return sum(sample.value for family in metrics.registry.collect() for sample in family.samples
               if sample.name == name and labels.items() <= sample.labels.items())


def _cost(metrics):
    return _value(metrics, "zai_proxy_estimated_cost_usd_total")


def test_an_absurd_completion_count_is_estimated_and_the_cost_stays_finite(metrics, fresh_log):
    acct = _accountant(metrics)
    acct.on_body(json.dumps({"model": "glm-4.7",
                             "choices": [{"message": {"content": "Hello there friend"}}],
                             "usage": {"prompt_tokens": 100, "completion_tokens": ABSURD}}).encode())
    summary = acct.finish()
    assert summary["output_tokens"] == 3                       # "Hello there friend", counted
    assert summary["estimated"] == ["output"] and summary["invalid"] == {"output": "too_large"}
    assert summary["input_tokens"] == 100                      # the valid figure is kept
    assert math.isfinite(summary["cost_usd"])
    assert _cost(metrics) == pytest.approx((100 * 0.60 + 3 * 2.20) / 1e6)
    assert _value(metrics, "zai_proxy_estimated_tokens_total", direction="output") == 3
    assert _value(metrics, "zai_proxy_invalid_usage_total", direction="output",
                  reason="too_large") == 1


@pytest.mark.parametrize("usage, invalid", [
    ({"prompt_tokens": -100, "completion_tokens": 5}, {"input": "negative"}),
    ({"prompt_tokens": 100.5, "completion_tokens": 5}, {"input": "fraction"}),
    ({"prompt_tokens": "100", "completion_tokens": True}, {"input": "not_a_number",
                                                           "output": "not_a_number"}),
    ({"prompt_tokens": 100, "completion_tokens": 5,
      "prompt_tokens_details": {"cached_tokens": 1e300}}, {"cache_read": "too_large"}),
])
def test_every_kind_of_invalid_figure_is_counted_by_direction_and_reason(metrics, fresh_log,
                                                                         usage, invalid):
    acct = _accountant(metrics)
    acct.on_body(json.dumps({"choices": [{"message": {"content": "Hi"}}],
                             "usage": usage}).encode())
    summary = acct.finish()
    assert summary["invalid"] == invalid
    for direction, reason in invalid.items():
        assert _value(metrics, "zai_proxy_invalid_usage_total", direction=direction,
                      reason=reason) == 1
        if direction in ("input", "output"):
            assert direction in summary["estimated"]
    assert _value(metrics, "zai_proxy_invalid_usage_total") == len(invalid)
    assert math.isfinite(_cost(metrics)) and summary["cache_read_tokens"] == 0


def test_streams_absurd_figures_on_both_surfaces(metrics, fresh_log):
    openai_acct = _accountant(metrics)
    for data in ('{"choices":[{"index":0,"delta":{"content":"Hello there"}}]}',
                 '{"choices":[],"usage":{"prompt_tokens":7,"completion_tokens":8.59e307}}',
                 "[DONE]"):
        openai_acct.on_event(Event(b"", None, data))
    assert openai_acct.finish()["invalid"] == {"output": "too_large"}

    anthropic_acct = _accountant(metrics, "anthropic", estimate=30)
    events = [("message_start", {"type": "message_start", "message": {
                  "model": "glm-4.7", "usage": {"input_tokens": 0, "output_tokens": 1}}}),
              ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                       "delta": {"type": "text_delta", "text": "Hello"}}),
              ("message_delta", {"type": "message_delta", "delta": {},
                                 "usage": {"input_tokens": -1e308, "output_tokens": ABSURD}})]
    for name, obj in events:
        anthropic_acct.on_event(Event(b"", name, json.dumps(obj)))
    summary = anthropic_acct.finish()
    assert summary["invalid"] == {"input": "negative", "output": "too_large"}
    assert summary["estimated"] == ["input", "output"]
    assert (summary["input_tokens"], summary["output_tokens"]) == (30, 1)   # "Hello"
    assert math.isfinite(_cost(metrics)) and _cost(metrics) > 0


def test_the_warning_comes_once_a_minute_with_how_many_it_held_back(metrics, fresh_log, caplog):
    caplog.set_level("WARNING", logger="zai_proxy.tokens.accountant")
    body = json.dumps({"choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": -2}})
    for step in (0, 10, 20, 61):
        fresh_log[0] = step
        acct = _accountant(metrics)
        acct.on_body(body.encode())
        acct.finish()
    lines = [r for r in caplog.records if getattr(r, "fields", {}).get("event") == "invalid_usage"]
    assert [line.fields["held_back"] for line in lines] == [0, 2]
    assert lines[0].fields["invalid"] == {"output": "negative"}
    assert "output negative" in lines[0].getMessage()
    assert _value(metrics, "zai_proxy_invalid_usage_total") == 4        # every one counted


def test_a_non_finite_cost_never_reaches_the_counter(metrics):
    metrics.add_tokens("output", "glm-4.7", "off_peak", 5, math.inf, False)
    metrics.add_tokens("output", "glm-4.7", "off_peak", 5, math.nan, False)
    metrics.add_tokens("output", "glm-4.7", "off_peak", 5, 0.25, False)
    assert _cost(metrics) == 0.25
    assert _value(metrics, "zai_proxy_tokens_total") == 15


# Through the proxy, every surface and form ---------------------------------------------------
def _openai_whole() -> list:
    body = {"id": "x", "object": "chat.completion", "model": "glm-4.7",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello there"},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 9, "completion_tokens": ABSURD, "total_tokens": ABSURD}}
    return response(200, json.dumps(body).encode(), content_type="application/json")


def _openai_stream() -> list:
    base = {"id": "x", "object": "chat.completion.chunk", "model": "glm-4.7"}
    return [head(200, [("Content-Type", "text/event-stream"), ("Connection", "close")]), sse(
        dict(base, choices=[{"index": 0, "delta": {"content": "Hello there"}}]),
        dict(base, choices=[{"index": 0, "delta": {}, "finish_reason": "stop"}]),
        dict(base, choices=[], usage={"prompt_tokens": 9, "completion_tokens": ABSURD}),
        "data: [DONE]\n\n"), Close()]


def _anthropic_whole() -> list:
    body = {"id": "m", "type": "message", "role": "assistant", "model": "glm-4.7",
            "content": [{"type": "text", "text": "Hello there"}], "stop_reason": "end_turn",
            "usage": {"input_tokens": 9, "output_tokens": ABSURD}}
    return response(200, json.dumps(body).encode(), content_type="application/json")


def _anthropic_stream() -> list:
    def event(name, payload):
        return f"event: {name}\ndata: {json.dumps(dict(payload, type=name))}\n\n"
    return [head(200, [("Content-Type", "text/event-stream"), ("Connection", "close")]), sse(
        event("message_start", {"message": {"id": "m", "type": "message", "role": "assistant",
                                            "model": "glm-4.7", "content": [],
                                            "usage": {"input_tokens": 9, "output_tokens": 1}}}),
        event("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}),
        event("content_block_delta", {"index": 0, "delta": {"type": "text_delta",
                                                            "text": "Hello there"}}),
        event("content_block_stop", {"index": 0}),
        event("message_delta", {"delta": {"stop_reason": "end_turn"},
                                "usage": {"output_tokens": ABSURD}}),
        event("message_stop", {})), Close()]


@pytest.mark.parametrize("path, stream, answer", [
    ("/v1/chat/completions", False, _openai_whole),
    ("/v1/chat/completions", True, _openai_stream),
    ("/v1/messages", False, _anthropic_whole),
    ("/v1/messages", True, _anthropic_stream),
], ids=["openai-whole", "openai-stream", "anthropic-whole", "anthropic-stream"])
def test_an_absurd_figure_from_the_upstream_never_poisons_the_cost(inprocess_proxy, fresh_log,
                                                                    path, stream, answer):
    with RawUpstream() as upstream:
        upstream.default(*answer())
        proxy = inprocess_proxy(upstream.url, RATE_LIMIT_ENABLED="false", LOG_LEVEL="info",
                                TOKEN_COUNTING_ENABLED="true")
        body = {"model": "glm-4.7", "max_tokens": 16, "stream": stream,
                "messages": [{"role": "user", "content": "hi"}]}
        if stream and path == "/v1/chat/completions":
            body["stream_options"] = {"include_usage": True}    # the usage chunk reaches us too
        answered = requests.post(proxy.url + path, json=body, timeout=30)
        assert answered.status_code == 200
        assert b"e+307" in answered.content                       # relayed as it came
        # Metrics and the log line are written as the answer closes, just after the client's
        # last byte: wait for the line, the last of them.
        proxy.wait_for_request_logs(1, timeout=30)
    assert proxy.value("zai_proxy_invalid_usage_total", direction="output",
                       reason="too_large") == 1
    cost = proxy.value("zai_proxy_estimated_cost_usd_total")
    assert math.isfinite(cost) and 0 < cost < 1e-3
    output = proxy.value("zai_proxy_tokens_total", direction="output")
    assert output == proxy.value("zai_proxy_estimated_tokens_total", direction="output") == 2
    lines = [json.loads(line) for line in proxy.stdout().splitlines()]
    [request] = [line for line in lines if line.get("logger") == "zai_proxy.request"]
    assert request["usage"]["invalid"] == {"output": "too_large"}
    assert request["usage"]["estimated"] == ["output"]
    assert [line["level"] for line in lines if line.get("event") == "invalid_usage"] == ["warning"]
