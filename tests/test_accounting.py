"""Usage accounting: upstream usage first, estimates only for what is missing, metrics exact.

Every number is read back from a fresh Prometheus registry. cl100k_base counts used for the
output estimates: "Hello there friend" 3, "Hello there" 2, "The answer is 4." 6,
"Let me think.Hello" 5, 'get_weather{"city":"Paris"}' 7.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

os.environ.setdefault("TIKTOKEN_CACHE_DIR",
                      str(Path(__file__).resolve().parent.parent / ".cache" / "tiktoken"))

from zai_proxy.tokens import accountant as accountant_module  # noqa: E402
from zai_proxy.tokens.accountant import UsageAccountant, prepare_request  # noqa: E402
from zai_proxy.metrics import Metrics  # noqa: E402
from zai_proxy.pricing import PriceTable  # noqa: E402
from zai_proxy.sse import Event, SSEParser  # noqa: E402
from zai_proxy.streaming import plain_events, through_accountant  # noqa: E402
from zai_proxy.tokens.counter import TokenCounter  # noqa: E402

SHANGHAI = timezone(timedelta(hours=8))
OFF_PEAK = datetime(2025, 1, 15, 10, 0, tzinfo=SHANGHAI).timestamp()
PEAK = datetime(2025, 1, 15, 15, 0, tzinfo=SHANGHAI).timestamp()
DIRECTIONS = ("input", "output", "cache_read", "cache_write")


@pytest.fixture
def registry():
    return CollectorRegistry()


@pytest.fixture
def metrics(registry):
    return Metrics("test", registry, model_labels=("glm-4.7", "glm-4.6", "glm-4.5-air"))


@pytest.fixture
def counter(metrics):
    return TokenCounter("cl100k_base", 200_000, metrics)


@pytest.fixture
def make(metrics, counter):
    def make(family="openai", model="glm-4.7", estimate=(0, False), wants=True, wall=OFF_PEAK,
             **kwargs):
        kwargs.setdefault("counter", counter)
        return UsageAccountant(family, model, estimate, wants, PriceTable(), metrics,
                               wall=lambda: wall, **kwargs)
    return make


def sample(registry, family, direction, model="glm-4.7", tier="off_peak"):
    return registry.get_sample_value(family, {"direction": direction, "model": model,
                                              "pricing_tier": tier, "variant": "test"})


def tokens(registry, direction, **labels):
    return sample(registry, "zai_proxy_tokens_total", direction, **labels)


def estimated(registry, direction, **labels):
    return sample(registry, "zai_proxy_estimated_tokens_total", direction, **labels)


def cost(registry, direction, **labels):
    return sample(registry, "zai_proxy_estimated_cost_usd_total", direction, **labels)


def no_token_series(registry):
    names = {s.name for m in registry.collect() for s in m.samples}
    return not names & {"zai_proxy_tokens_total", "zai_proxy_estimated_tokens_total",
                        "zai_proxy_estimated_cost_usd_total"}


def relay(accountant, stream: bytes, step=7) -> bytes:
    """What the client receives: the stream fed to the relay's accounting in small chunks (split
    events, so every event is parsed), dropped events left out."""
    parser = SSEParser()
    sent = [through_accountant(parser, accountant, stream[i:i + step])
            for i in range(0, len(stream), step)]
    return b"".join(sent) + parser.flush()


def relay_events(accountant, stream: bytes) -> bytes:
    """The same, one whole event per read, as upstreams usually send: events without usage take
    the relay's unparsed path."""
    parser = SSEParser()
    events = [event + b"\n\n" for event in stream.split(b"\n\n")[:-1]]
    return b"".join(through_accountant(parser, accountant, event) for event in events)


def oa_chunk(content=None, *, reasoning=None, tool_args=None, tool_name=None, usage="absent",
             choices=True, finish=None) -> bytes:
    obj = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "model": "glm-4.7"}
    if choices:
        delta = {}
        if content is not None:
            delta["content"] = content
        if reasoning is not None:
            delta["reasoning_content"] = reasoning
        if tool_args is not None or tool_name is not None:
            function = {"arguments": tool_args or ""}
            if tool_name:
                function["name"] = tool_name
            delta["tool_calls"] = [{"index": 0, "function": function}]
        obj["choices"] = [{"index": 0, "delta": delta, "finish_reason": finish}]
    else:
        obj["choices"] = []
    if usage != "absent":
        obj["usage"] = usage
    return f"data: {json.dumps(obj)}\n\n".encode()


DONE = b"data: [DONE]\n\n"


def oa_usage(prompt, completion, cached=None):
    usage = {"prompt_tokens": prompt, "completion_tokens": completion,
             "total_tokens": prompt + completion}
    if cached is not None:
        usage["prompt_tokens_details"] = {"cached_tokens": cached}
    return usage


def an_event(name, obj) -> bytes:
    return f"event: {name}\ndata: {json.dumps(dict(obj, type=name))}\n\n".encode()


def an_start(**usage):
    return an_event("message_start", {"message": {"id": "msg_1", "model": "glm-4.7",
                                                  "role": "assistant", "content": [],
                                                  "usage": usage}})


def an_text(text, kind="text_delta", field="text"):
    return an_event("content_block_delta", {"index": 0, "delta": {"type": kind, field: text}})


AN_TAIL = (an_event("content_block_stop", {"index": 0})
           + an_event("message_stop", {}))


# prepare_request ------------------------------------------------------------------------------
def test_prepare_request_adds_include_usage_to_openai_streams_only():
    body = {"model": "glm-4.7", "stream": True, "messages": []}
    sent, wants = prepare_request("openai", body)
    assert sent == {**body, "stream_options": {"include_usage": True}} and wants is False
    assert "stream_options" not in body  # the caller's dict is left alone

    asked = {"stream": True, "stream_options": {"include_usage": True}}
    assert prepare_request("openai", asked) == (asked, True)
    assert prepare_request("openai", asked)[0] is asked

    refused = {"stream": True, "stream_options": {"include_usage": False, "x": 1}}
    sent, wants = prepare_request("openai", refused)
    assert sent["stream_options"] == {"include_usage": True, "x": 1} and wants is False

    for family, plain in (("openai", {"stream": False}), ("openai", {}),
                          ("anthropic", {"stream": True})):
        assert prepare_request(family, plain)[0] is plain
        assert prepare_request(family, plain)[1] is True


# Non-streaming --------------------------------------------------------------------------------
def test_openai_body_usage_with_cached_tokens(make, registry):
    acct = make(estimate=(999, False))
    body = json.dumps({"model": "glm-4.7", "choices": [{"message": {"content": "Hi"}}],
                       "usage": oa_usage(1000, 50, cached=200)}).encode()
    acct.on_body(body)
    summary = acct.finish()
    # prompt_tokens includes the cached part: 800 full-price input + 200 cache reads.
    assert tokens(registry, "input") == 800
    assert tokens(registry, "cache_read") == 200
    assert tokens(registry, "output") == 50
    assert tokens(registry, "cache_write") is None
    assert all(estimated(registry, d) is None for d in DIRECTIONS)
    assert cost(registry, "input") == pytest.approx(800 * 0.60 / 1e6)
    assert cost(registry, "cache_read") == pytest.approx(200 * 0.11 / 1e6)
    assert cost(registry, "output") == pytest.approx(50 * 2.20 / 1e6)
    assert summary["input_tokens"] == 800 and summary["cache_read_tokens"] == 200
    assert summary["output_tokens"] == 50 and summary["estimated"] == []
    assert summary["cost_usd"] == pytest.approx((800 * 0.60 + 200 * 0.11 + 50 * 2.20) / 1e6)
    assert summary["local_input_tokens"] == 999 and summary["recorded"] is True


def test_fully_cached_prompt_is_not_billed_twice(make, registry):
    acct = make()
    acct.on_body(json.dumps({"choices": [], "usage": oa_usage(1000, 1, cached=1000)}).encode())
    acct.finish()
    assert tokens(registry, "input") is None and cost(registry, "input") is None
    assert tokens(registry, "cache_read") == 1000


def test_anthropic_body_usage_all_four_directions(make, registry):
    acct = make("anthropic", estimate=(5000, False))
    body = {"type": "message", "model": "glm-4.7",
            "content": [{"type": "text", "text": "Hi"}],
            "usage": {"input_tokens": 300, "cache_read_input_tokens": 700,
                      "cache_creation_input_tokens": 100, "output_tokens": 40}}
    acct.on_body(json.dumps(body).encode())
    acct.finish()
    assert [tokens(registry, d) for d in DIRECTIONS] == [300, 40, 700, 100]
    assert all(estimated(registry, d) is None for d in DIRECTIONS)
    assert cost(registry, "cache_read") == pytest.approx(700 * 0.11 / 1e6)
    assert cost(registry, "cache_write") is None  # Z.AI does not charge cache writes


def test_body_without_usage_estimates_input_and_output(make, registry):
    acct = make(estimate=(90, False))
    acct.on_body(json.dumps({"choices": [{"message": {
        "content": "The answer is 4.",
        "tool_calls": [{"function": {"name": "get_weather",
                                     "arguments": '{"city":"Paris"}'}}]}}]}).encode())
    summary = acct.finish()
    assert tokens(registry, "input") == 90 and estimated(registry, "input") == 90
    assert tokens(registry, "output") == 12 and estimated(registry, "output") == 12
    assert summary["estimated"] == ["input", "output"]


def test_anthropic_body_without_usage_estimates_from_content(make, registry):
    acct = make("anthropic", estimate=(40, False))
    acct.on_body(json.dumps({"type": "message", "content": [
        {"type": "thinking", "thinking": "Let me think."},
        {"type": "text", "text": "Hello"}]}).encode())
    acct.finish()
    assert estimated(registry, "input") == 40 and estimated(registry, "output") == 5


@pytest.mark.parametrize("family,body,status", [
    ("anthropic", {"input_tokens": 12}, 200),                          # count_tokens
    ("openai", {"object": "list", "data": [{"id": "glm-4.7"}]}, 200),  # model list
    ("openai", {"error": {"code": "1302", "message": "busy"}}, 200),
    ("anthropic", {"type": "error", "error": {"type": "overloaded_error"}}, 200),
    ("openai", {"choices": [], "usage": oa_usage(10, 10)}, 429),
])
def test_answers_that_are_not_generations_record_nothing(make, registry, family, body, status):
    acct = make(family, estimate=(500, False))
    acct.on_body(json.dumps(body).encode(), status=status)
    assert acct.finish()["recorded"] is False
    assert no_token_series(registry)


def test_nothing_recorded_without_an_answer(make, registry):
    assert make(estimate=(500, False)).finish(disconnected=True)["recorded"] is False
    assert no_token_series(registry)


def test_on_body_never_raises_and_never_alters_the_body(make, registry):
    acct = make(estimate=(7, False))
    for body in (b"\xff\xfe not json", b"[1, 2]", b"", b'{"usage": "weird", "choices": 3}'):
        original = bytes(body)
        acct.on_body(body)
        assert body == original
    acct.finish()
    assert estimated(registry, "input") == 7  # the last body looked like a generation


@pytest.fixture(params=["split reads", "one event per read"])
def send(request):
    """Each stream test runs both ways the relay reads an upstream stream."""
    if request.param == "split reads":
        return relay
    return lambda accountant, stream, step=None: relay_events(accountant, stream)


def test_only_whole_events_without_usage_skip_parsing():
    assert plain_events(oa_chunk("Hello")) and plain_events(oa_chunk("a") + oa_chunk("b"))
    assert plain_events(an_text("Hello")) and plain_events(DONE)
    assert not plain_events(OA_USAGE_ONLY)                      # usage to read (and strip)
    assert not plain_events(oa_chunk("Hi", usage=None))         # "usage": null is read too
    assert not plain_events(an_start(input_tokens=5))           # model and usage
    assert not plain_events(oa_chunk("Hello")[:-1])              # an event cut short
    assert not plain_events(oa_chunk("Hello").replace(b"\n", b"\r\n"))  # CRLF: parsed


def test_unparsed_events_are_kept_raw_and_counted_at_finish(make, registry):
    acct = make(wants=False, estimate=(64, False))
    assert relay_events(acct, oa_chunk("Hello") + oa_chunk(" there")) == \
        oa_chunk("Hello") + oa_chunk(" there")
    assert acct._pending and all(isinstance(item, bytes) for item in acct._pending)
    acct.finish(disconnected=True)
    assert estimated(registry, "output") == 2


# OpenAI streams -------------------------------------------------------------------------------
OA_STREAM = (oa_chunk("", reasoning=None) + oa_chunk("Hello") + oa_chunk(" there")
             + oa_chunk(finish="stop"))
OA_USAGE_ONLY = oa_chunk(choices=False, usage=oa_usage(120, 3, cached=20))


def test_usage_only_chunk_is_stripped_when_the_client_did_not_ask(make, registry, send):
    acct = make(wants=False, estimate=(111, False))
    sent = send(acct, OA_STREAM + OA_USAGE_ONLY + DONE)
    assert sent == OA_STREAM + DONE  # everything else byte for byte
    acct.finish()
    assert tokens(registry, "input") == 100
    assert tokens(registry, "cache_read") == 20
    assert tokens(registry, "output") == 3
    assert all(estimated(registry, d) is None for d in DIRECTIONS)


def test_usage_only_chunk_is_kept_when_the_client_asked(make, registry, send):
    acct = make(wants=True)
    stream = OA_STREAM + OA_USAGE_ONLY + DONE
    assert send(acct, stream) == stream
    acct.finish()
    assert tokens(registry, "output") == 3


def test_usage_on_a_chunk_with_choices_is_read_and_never_stripped(make, registry, send):
    acct = make(wants=False)
    stream = (oa_chunk("Hello", usage=None) + oa_chunk(" there", usage=None)
              + oa_chunk(finish="stop", usage=oa_usage(50, 2)) + DONE)
    assert send(acct, stream, step=3) == stream
    acct.finish()
    assert tokens(registry, "input") == 50 and tokens(registry, "output") == 2
    assert tokens(registry, "cache_read") is None


def test_stream_without_usage_estimates_both_and_marks_them(make, registry, send):
    acct = make(wants=False, estimate=(90, True))
    stream = (oa_chunk("Hello") + oa_chunk(" there") + oa_chunk(" friend")
              + oa_chunk(finish="stop") + DONE)
    assert send(acct, stream) == stream
    summary = acct.finish()
    assert tokens(registry, "input") == 90 and estimated(registry, "input") == 90
    assert tokens(registry, "output") == 3 and estimated(registry, "output") == 3
    assert summary["estimated"] == ["input", "output"]


def test_streamed_reasoning_and_tool_calls_count_as_output(make, registry, send):
    acct = make(estimate=(10, False))
    stream = (oa_chunk(reasoning="Let me think.") + oa_chunk(tool_name="get_weather",
                                                             tool_args="")
              + oa_chunk(tool_args='{"city":') + oa_chunk(tool_args='"Paris"}') + DONE)
    send(acct, stream)
    acct.finish()
    assert estimated(registry, "output") == 10  # 'Let me think.get_weather{"city":"Paris"}'


def test_openai_disconnect_counts_the_partial_output(make, registry, send):
    acct = make(wants=False, estimate=(64, False))
    send(acct, oa_chunk("Hello") + oa_chunk(" there"))
    summary = acct.finish(disconnected=True)
    assert estimated(registry, "output") == 2 and tokens(registry, "output") == 2
    assert estimated(registry, "input") == 64
    assert summary["disconnected"] is True and summary["output_tokens"] == 2


def test_long_streams_are_digested_without_changing_the_count(make, registry, send, monkeypatch):
    monkeypatch.setattr(accountant_module, "PENDING_DIGEST_CHARS", 500)
    acct = make()
    chunks = [oa_chunk(word) for word in ("Hello", " there", " friend") * 50]
    send(acct, b"".join(chunks) + DONE)
    assert len(acct._pending) < 10  # digested along the way, memory stays bounded
    acct.finish(disconnected=True)
    assert estimated(registry, "output") == 150


def test_output_text_beyond_max_chars_is_estimated_by_length(metrics, registry, send):
    acct = UsageAccountant("openai", "glm-4.7", (0, False), True, PriceTable(), metrics,
                           wall=lambda: OFF_PEAK,
                           counter=TokenCounter("cl100k_base", 11, metrics))
    send(acct, oa_chunk("Hello there") + oa_chunk(" friend" * 4))
    acct.finish()
    assert estimated(registry, "output") == 2 + 7  # 28 characters past the limit → 7


def test_events_that_cannot_be_read_never_raise(make, registry):
    acct = make(estimate=(5, False))
    for data in ('{"usage": [broken', '"usage"', "[DONE]", "", "not json at all"):
        assert acct.on_event(Event(raw=b"x", event=None, data=data)) is True
    acct.finish()
    assert estimated(registry, "input") == 5


# Anthropic streams ----------------------------------------------------------------------------
def test_anthropic_stream_usage_zai_style_real_counts_in_message_delta(make, registry, send):
    acct = make("anthropic", estimate=(999, False))
    stream = (an_start(input_tokens=0, cache_read_input_tokens=0, output_tokens=1)
              + an_event("content_block_start", {"index": 0,
                                                 "content_block": {"type": "text", "text": ""}})
              + an_event("ping", {}) + an_text("Hello") + an_text(" there")
              + an_event("message_delta", {"delta": {"stop_reason": "end_turn"},
                                           "usage": {"input_tokens": 250,
                                                     "cache_read_input_tokens": 50,
                                                     "cache_creation_input_tokens": 10,
                                                     "output_tokens": 12}})
              + AN_TAIL)
    assert send(acct, stream, step=5) == stream
    acct.finish()
    assert [tokens(registry, d) for d in DIRECTIONS] == [250, 12, 50, 10]
    assert all(estimated(registry, d) is None for d in DIRECTIONS)


def test_anthropic_stream_usage_standard_style(make, registry, send):
    acct = make("anthropic", estimate=(999, False))
    stream = (an_start(input_tokens=250, cache_read_input_tokens=50,
                       cache_creation_input_tokens=10, output_tokens=1)
              + an_text("Hello")
              + an_event("message_delta", {"delta": {}, "usage": {"output_tokens": 12}})
              + AN_TAIL)
    send(acct, stream)
    acct.finish()
    assert [tokens(registry, d) for d in DIRECTIONS] == [250, 12, 50, 10]


def test_anthropic_zero_input_in_message_start_alone_is_estimated(make, registry, send):
    acct = make("anthropic", estimate=(400, False))
    stream = (an_start(input_tokens=0, cache_read_input_tokens=50, output_tokens=1)
              + an_text("Hello")
              + an_event("message_delta", {"delta": {}, "usage": {"output_tokens": 12}})
              + AN_TAIL)
    send(acct, stream)
    summary = acct.finish()
    # The local count covers the whole prompt, cached part included: 400 - 50 reported reads.
    assert tokens(registry, "input") == 350 and estimated(registry, "input") == 350
    assert tokens(registry, "output") == 12 and estimated(registry, "output") is None
    assert summary["estimated"] == ["input"]


def test_anthropic_disconnect_counts_partial_thinking_text_and_tool_input(make, registry, send):
    acct = make("anthropic", estimate=(999, False))
    stream = (an_start(input_tokens=250, cache_read_input_tokens=50, output_tokens=1)
              + an_text("Let me think.", "thinking_delta", "thinking")
              + an_text("Hello")
              + an_event("content_block_start", {"index": 1, "content_block": {
                  "type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}})
              + an_text('{"city":', "input_json_delta", "partial_json")
              + an_text('"Paris"}', "input_json_delta", "partial_json"))
    send(acct, stream)
    summary = acct.finish(disconnected=True)
    assert tokens(registry, "input") == 250 and estimated(registry, "input") is None
    assert tokens(registry, "cache_read") == 50
    # 'Let me think.Hello' 5 + 'get_weather{"city":"Paris"}' 7, counted as one text: 12
    assert tokens(registry, "output") == 12 and estimated(registry, "output") == 12
    assert summary["estimated"] == ["output"] and summary["disconnected"] is True


# Bookkeeping ----------------------------------------------------------------------------------
def test_finish_records_once(make, registry):
    acct = make()
    acct.on_body(json.dumps({"choices": [], "usage": oa_usage(10, 5)}).encode())
    first = acct.finish()
    assert acct.finish(disconnected=True) is first
    assert tokens(registry, "input") == 10 and tokens(registry, "output") == 5


def test_peak_tier_labels_and_doubles_cost(make, registry):
    acct = make(wall=PEAK)
    acct.on_body(json.dumps({"choices": [], "usage": oa_usage(1_000_000, 1_000_000)}).encode())
    summary = acct.finish()
    assert tokens(registry, "input", tier="peak") == 1_000_000
    assert cost(registry, "input", tier="peak") == pytest.approx(1.20)
    assert cost(registry, "output", tier="peak") == pytest.approx(4.40)
    assert summary["pricing_tier"] == "peak" and summary["cost_usd"] == pytest.approx(5.60)


def test_model_labels_are_bounded_and_prices_follow_the_model_sent(make, registry):
    body = json.dumps({"choices": [], "usage": oa_usage(1_000_000, 0)}).encode()
    for model in ("GLM-4.5-Air", "mystery-model"):
        acct = make(model=model)
        acct.on_body(body)
        acct.finish()
    assert cost(registry, "input", model="glm-4.5-air") == pytest.approx(0.13)
    assert cost(registry, "input", model="other") == pytest.approx(0.60)  # the default row


def test_missing_request_model_falls_back_to_the_answer_model(make, registry):
    acct = make(model=None)
    acct.on_body(json.dumps({"model": "glm-4.6", "choices": [],
                             "usage": oa_usage(10, 1)}).encode())
    assert acct.finish()["model"] == "glm-4.6"
    assert tokens(registry, "input", model="glm-4.6") == 10


def test_without_a_counter_output_is_estimated_from_characters(make, registry):
    acct = make(counter=None)
    relay(acct, oa_chunk("Hello there friend"))  # 18 characters
    acct.finish(disconnected=True)
    assert estimated(registry, "output") == 5
