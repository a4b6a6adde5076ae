"""Streams that end without their family's terminal event (issue 10, item 8).

A close-delimited stream cut on an event boundary, or a chunked or length-framed one that is
complete as HTTP but ends too early, looked like a clean end: relayed as a clean 200, logged `ok`,
billed as complete, and the official SDKs could not tell. Whatever the framing, such a stream now
ends for the client with an error event in the family's format, is counted and logged as an
upstream error (`truncated_response`; `read_error` when the framing itself breaks), and its usage
is marked incomplete. A stream that ends properly, or with the upstream's own error event, is
relayed byte for byte.

In-process proxy, raw-socket upstream, token counting on, the official SDKs as clients.
"""

from __future__ import annotations

import json

import pytest
import requests

from tools.sdks import anthropic, openai
from tests.raw_proxy import FAMILIES, PATHS, ask, body, events
from tools.raw_upstream import Close, RawUpstream, chunked, head, response

SETTINGS = {"RATE_LIMIT_ENABLED": "false", "MAX_RETRIES": "2", "RETRY_BACKOFF_BASE": "10ms",
            "UPSTREAM_READ_TIMEOUT": "5s", "TOKEN_COUNTING_ENABLED": "true",
            "LOG_LEVEL": "info"}
SSE = ("Content-Type", "text/event-stream")


def _ended_early(stream: bytes, framing: str) -> list:
    """The stream as the upstream sends it, in `framing`; complete as HTTP."""
    return response(200, stream, content_type="text/event-stream", framing=framing)


def _framing_broken(stream: bytes, framing: str) -> list:
    """The stream cut by the connection, before its framing says it is complete."""
    if framing == "chunked":
        return [head(200, [SSE, ("Transfer-Encoding", "chunked")]),
                chunked(stream, last=False), Close()]
    return [head(200, [SSE, ("Content-Length", str(len(stream) + 100))]), stream, Close()]


CASES = {
    "close-delimited, cut on an event boundary": (_ended_early, "close", "truncated_response"),
    "chunked, last chunk sent too early": (_ended_early, "chunked", "truncated_response"),
    "length, the whole length sent too early": (_ended_early, "length", "truncated_response"),
    "chunked, no last chunk": (_framing_broken, "chunked", "read_error"),
    "length, cut short": (_framing_broken, "length", "read_error"),
}


@pytest.fixture
def upstream():
    with RawUpstream() as server:
        yield server


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("family", FAMILIES)
def test_a_stream_without_its_terminal_event_ends_with_an_error_the_sdk_sees(
        inprocess_proxy, upstream, family, case):
    shape, framing, error_type = CASES[case]
    proxy = inprocess_proxy(upstream.url, **SETTINGS)
    stream = events(family, ["Hel", "lo"], terminal=False)
    upstream.reply(shape(stream, framing))
    with pytest.raises((openai.APIError, anthropic.APIError)):
        ask(family, proxy.url, stream=True)
    upstream.reply(shape(stream, framing))
    answer = requests.post(proxy.url + PATHS[family], json=body(family, True), timeout=30)
    assert answer.status_code == 200
    relayed, _, last = answer.content.rstrip(b"\n").rpartition(b"\n\n")
    assert stream.startswith(relayed + b"\n\n")            # whole events, unaltered
    name, _, data = last.rpartition(b"data: ")
    error = json.loads(data)
    if family == "anthropic":
        assert name == b"event: error\n" and error["type"] == "error"
    else:
        assert error["error"]["code"] == error_type
    assert len(upstream.requests) == 2                       # never sent again
    assert proxy.value("zai_proxy_upstream_errors_total", error_type=error_type) == 2
    assert proxy.value("zai_proxy_upstream_errors_total") == 2
    lines = proxy.wait_for_request_logs(2)
    assert [line["outcome"] for line in lines] == [error_type] * 2
    assert all(line["usage"]["incomplete"] for line in lines)


@pytest.mark.parametrize("framing", ["close", "chunked", "length"])
@pytest.mark.parametrize("family", FAMILIES)
def test_a_complete_stream_is_relayed_byte_for_byte_and_not_marked(
        inprocess_proxy, upstream, family, framing):
    proxy = inprocess_proxy(upstream.url, **SETTINGS)
    stream = events(family, ["Hel", "lo"])
    upstream.reply(_ended_early(stream, framing))
    answer = requests.post(proxy.url + PATHS[family], json=body(family, True), timeout=30)
    assert answer.content == stream
    [line] = proxy.wait_for_request_logs(1)
    assert line["outcome"] == "ok" and line["usage"]["incomplete"] is False


@pytest.mark.parametrize("family", FAMILIES)
def test_the_upstreams_own_error_event_ends_a_stream_without_another(inprocess_proxy, upstream,
                                                                   family):
    proxy = inprocess_proxy(upstream.url, **SETTINGS)
    start = events(family, ["Hel"], terminal=False)
    start = start[:start.index(b"\n\n") + 2]          # the first event only
    if family == "anthropic":
        own = b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error",' \
              b'"message":"busy"}}\n\n'
    else:
        own = b'data: {"error":{"code":"1305","message":"busy"}}\n\n'
    upstream.reply(response(200, start + own, content_type="text/event-stream", framing="close"))
    answer = requests.post(proxy.url + PATHS[family], json=body(family, True), timeout=30)
    assert answer.content == start + own
    assert proxy.value("zai_proxy_upstream_errors_total") == 0


def test_a_last_line_without_its_blank_line_is_ended_before_the_error_event(inprocess_proxy,
                                                                         upstream):
    proxy = inprocess_proxy(upstream.url, **SETTINGS)
    stream = events("openai", ["Hel"], terminal=False) + b'data: {"choices":[]}\n'
    upstream.reply(response(200, stream, content_type="text/event-stream", framing="close"))
    answer = requests.post(proxy.url + PATHS["openai"], json=body("openai", True), timeout=30)
    assert answer.content.startswith(stream + b"\n" + b"data: ")
    parsed = [line for line in answer.content.split(b"\n\n") if line]
    assert json.loads(parsed[-1].removeprefix(b"data: "))["error"]["code"] == "truncated_response"
