"""The upstream's head, read as HTTP/1.1 says, against the raw-socket upstream: interim responses,
refused statuses and header blocks, header fields the server cannot re-emit, repeated fields, and
bounded status labels. A pooled connection is reused only when its state is certain, so no client
ever reads bytes meant for another.

In-process proxy (the same app as under gunicorn, on loopback); the official SDKs as clients where
the client's view matters, raw sockets where the exact bytes do.
"""

from __future__ import annotations

import http.client
import json
import time

import pytest
import requests

from tools.sdks import openai_client
from tests.raw_proxy import (FAMILIES, PATHS, ask, body, events, stream_answer, whole,
                             whole_answer)
from tools.raw_upstream import Hold, Pause, RawUpstream, head, response

KEYS = ("client-a-key-0123", "client-b-key-4567")
QUIET = {"RATE_LIMIT_ENABLED": "false", "MAX_RETRIES": "3", "RETRY_BACKOFF_BASE": "10ms",
         "UPSTREAM_READ_TIMEOUT": "5s"}


@pytest.fixture
def upstream():
    with RawUpstream() as server:
        yield server


@pytest.fixture
def proxy(inprocess_proxy, upstream):
    return inprocess_proxy(upstream.url, **QUIET, PROXY_API_KEYS=",".join(KEYS))


def _post(proxy, family: str, stream: bool = False, key: str = KEYS[0]):
    return requests.post(proxy.url + PATHS[family], json=body(family, stream), timeout=30,
                         headers={"Authorization": f"Bearer {key}"})


def _labels(proxy, name: str, label: str) -> set[str]:
    return {sample.labels[label] for metric in proxy.registry.collect()
            for sample in metric.samples if sample.name == name and sample.value}


def _counted(proxy, requests_: int) -> None:
    """Wait until `requests_` requests are counted: a request is counted as its answer closes,
    just after the client has read it."""
    deadline = time.monotonic() + 10
    while proxy.value("zai_proxy_requests_total") < requests_:
        assert time.monotonic() < deadline, "the request was never counted"
        time.sleep(0.01)


# Interim responses ------------------------------------------------------------------------------
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("family", FAMILIES)
def test_interim_responses_are_read_past_and_no_client_reads_another_ones_answer(
        proxy, upstream, family, stream):
    """A 103 and a 102 come before client A's answer, the last one after a pause. Client B, with
    another key, is served next on the same pooled connection: it must read its own answer, and
    A its own, each time (the issue saw B read A's completion 3 times out of 3)."""
    answer = stream_answer if stream else whole_answer
    for round_ in range(3):
        upstream.reply(head(103, [("Link", "</hint>; rel=preload")]), Pause(0.05),
                       head(102), Pause(0.3), answer(family, [f"for A {round_}"] if stream
                                                     else f"for A {round_}"))
        upstream.reply(answer(family, [f"for B {round_}"] if stream else f"for B {round_}"))
        assert ask(family, proxy.url, stream, key=KEYS[0]) == f"for A {round_}"
        # A stream's connection goes back to the pool just after the client has read the end;
        # B is sent once A's request is done, so that B may (and must) reuse it.
        proxy.wait_for_request_logs(2 * round_ + 1)
        assert ask(family, proxy.url, stream, key=KEYS[1]) == f"for B {round_}"
        proxy.wait_for_request_logs(2 * round_ + 2)
    received = upstream.wait_requests(6)
    assert len(upstream.requests) == 6                     # nothing was sent twice
    # The interim heads were consumed on the connection they came on, which stayed certain:
    # every request went over the one pooled connection.
    assert {r.connection for r in received} == {0}
    assert proxy.value("zai_proxy_upstream_errors_total") == 0


def test_an_interim_response_then_a_silent_upstream_is_not_an_empty_answer(
        inprocess_proxy, upstream):
    # Read as the final answer, a 103 looked like an empty 200 (truncated_response); it is
    # an interim one, and what follows is silence: the idle timeout.
    proxy = inprocess_proxy(upstream.url, **{**QUIET, "UPSTREAM_READ_TIMEOUT": "300ms",
                                              "MAX_RETRIES": "0"})
    upstream.reply(head(103, [("Link", "</hint>")]), Hold())
    answer = requests.post(proxy.url + PATHS["openai"], json=body("openai"), timeout=30)
    assert answer.status_code == 504 and answer.json()["error"]["code"] == "upstream_timeout"
    assert proxy.value("zai_proxy_upstream_errors_total", error_type="truncated_response") == 0


@pytest.mark.parametrize("family", FAMILIES)
def test_101_is_refused_as_502_not_retried_and_its_connection_closed(proxy, upstream, family):
    upstream.reply(head(101, [("Upgrade", "websocket"), ("Connection", "Upgrade")]),
                   b"\x81\x05hello", Hold())
    upstream.reply(whole_answer(family, "after"))
    answer = _post(proxy, family)
    assert answer.status_code == 502
    error = answer.json()["error"]
    assert "switched protocols (101)" in error["message"]
    assert proxy.value("zai_proxy_upstream_errors_total", error_type="upstream_protocol") == 1
    assert proxy.value("zai_proxy_retry_attempts_total") == 0
    assert upstream.wait_closed(0).closed_by == "client"   # never pooled
    assert ask(family, proxy.url, key=KEYS[0]) == "after"
    assert [r.connection for r in upstream.wait_requests(2)] == [0, 1]


def test_an_endless_series_of_interim_responses_is_refused(proxy, upstream):
    upstream.reply(*[head(102) for _ in range(25)], Hold())
    answer = _post(proxy, "openai")
    assert answer.status_code == 502
    assert "interim (1xx) responses" in answer.json()["error"]["message"]
    assert len(upstream.requests) == 1


# Statuses -----------------------------------------------------------------------------------------
def test_statuses_beyond_599_are_refused_and_every_status_label_is_bounded(proxy, upstream):
    for status_line in (b"HTTP/1.1 999 Weird", b"HTTP/1.1 600 Six", b"HTTP/1.1 742 Odd"):
        upstream.reply(status_line + b"\r\nContent-Type: application/json\r\n"
                       b"Content-Length: 2\r\n\r\n{}")
        answer = _post(proxy, "openai")
        assert answer.status_code == 502
        assert "outside 200-599" in answer.json()["error"]["message"]
    assert len(upstream.requests) == 3                     # answered: never sent again
    # Unusual but valid statuses are relayed, under their own label.
    upstream.reply(response(299, b'{"odd": true}', content_type="application/json"))
    upstream.reply(response(418, b'{"teapot": true}', content_type="application/json"))
    assert _post(proxy, "openai").status_code == 299
    assert _post(proxy, "openai").status_code == 418
    _counted(proxy, 5)
    assert _labels(proxy, "zai_proxy_upstream_errors_total", "error_type") == {
        "upstream_protocol", "418"}
    assert _labels(proxy, "zai_proxy_requests_total", "status_code") == {"502", "299", "418"}


# Header fields ------------------------------------------------------------------------------------
BAD_FIELDS = [(b"X-Control", b"a\x01b"), (b"X-Delete", b"a\x7fb"), (b"X-Nul", b"a\x00b"),
              (b"X(paren)", b"v"), (b"X@at", b"v"), (b"X-Escape", b"\x1b[31mred")]


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("family", FAMILIES)
def test_fields_the_server_cannot_write_are_dropped_and_the_rest_relayed(
        caplog, proxy, upstream, family, stream):
    fields = [(b"X-Kept", b"yes"), *BAD_FIELDS, (b"X-Folded", b"one\r\n two"),
              (b"X-Latin", b"caf\xe9")]
    payload = events(family, ["fine"]) if stream else whole(family, "fine")
    content_type = "text/event-stream" if stream else "application/json"
    upstream.reply(response(200, payload, fields, content_type=content_type))
    upstream.reply(response(200, payload, content_type=content_type))
    got = _post(proxy, family, stream)
    assert got.status_code == 200
    assert got.headers["X-Kept"] == "yes"
    assert got.headers["X-Folded"] == "one two"        # obsolete folding: one space
    assert got.headers["X-Latin"].encode("latin-1") == b"caf\xe9"
    for name, _ in BAD_FIELDS:
        assert name.decode() not in got.headers
    assert got.content == payload
    assert len(upstream.requests) == 1
    assert any("dropped 6 upstream header field(s)" in record.getMessage()
               for record in caplog.records)
    assert ask(family, proxy.url, stream, key=KEYS[0]) == "fine"      # the connection is still in order


@pytest.mark.parametrize("line", [b"X Bad: v", b"NoColon", b"X-CR: a\rb", b": no name",
                                  b"X-Sp : v", b"X-\xff: v"])
def test_a_header_block_with_a_line_that_is_no_field_is_a_502(proxy, upstream, line):
    # http.client stops reading fields at such a line (Content-Length included): the framing it
    # would use is unknown, so the answer is refused and its connection closed (nginx: 502
    # "upstream sent invalid header").
    upstream.reply(head(200, [(b"Content-Type", b"application/json")]).replace(
        b"\r\n\r\n", b"\r\n" + line + b"\r\nContent-Length: 2\r\n\r\n") + b"{}")
    upstream.reply(whole_answer("openai", "next"))
    answer = _post(proxy, "openai")
    assert answer.status_code == 502
    assert "not a header field" in answer.json()["error"]["message"]
    assert proxy.value("zai_proxy_retry_attempts_total") == 0
    assert upstream.wait_closed(0).closed_by == "client"
    assert ask("openai", proxy.url, key=KEYS[0]) == "next"


@pytest.mark.parametrize("fields", [
    [(b"Content-Length", b"2"), (b"Content-Length", b"3")],
    [(b"Content-Length", b"two")],
    [(b"Transfer-Encoding", b"gzip, chunked")],
], ids=["two lengths", "not a length", "not chunked alone"])
def test_invalid_framing_fields_are_a_502(proxy, upstream, fields):
    upstream.reply(head(200, fields + [(b"Content-Type", b"application/json")]), b"{}", Hold())
    answer = _post(proxy, "openai")
    assert answer.status_code == 502 and len(upstream.requests) == 1
    assert upstream.wait_closed(0).closed_by == "client"


def test_an_answer_with_both_length_and_chunked_framing_does_not_leave_its_connection_pooled(
        proxy, upstream):
    # RFC 9112 §6.3: chunked wins, and the message may be an attempt at response splitting:
    # the answer is read, and the connection is not used again.
    payload = whole("openai", "framed twice")
    upstream.reply(head(200, [("Content-Type", "application/json"), ("Content-Length", "5"),
                              ("Transfer-Encoding", "chunked")]),
                   b"%x\r\n%s\r\n0\r\n\r\n" % (len(payload), payload))
    upstream.reply(whole_answer("openai", "next"))
    assert ask("openai", proxy.url, key=KEYS[0]) == "framed twice"
    assert ask("openai", proxy.url, key=KEYS[0]) == "next"
    assert [r.connection for r in upstream.wait_requests(2)] == [0, 1]


@pytest.mark.parametrize("family", FAMILIES)
def test_repeated_fields_stay_repeated(proxy, upstream, family):
    upstream.reply(head(200, [("Set-Cookie", "a=1; Path=/"), ("Set-Cookie", "b=2; Path=/"),
                              ("X-Multi", "one"), ("X-Multi", "two"),
                              ("Content-Type", "application/json"),
                              ("Content-Length", str(len(whole(family, "x"))))]),
                   whole(family, "x"))
    connection = http.client.HTTPConnection("127.0.0.1", int(proxy.url.rsplit(":", 1)[1]),
                                            timeout=30)
    connection.request("POST", PATHS[family], json.dumps(body(family)),
                       {"Content-Type": "application/json", "x-api-key": KEYS[0]})
    answer = connection.getresponse()
    assert answer.status == 200
    assert answer.msg.get_all("Set-Cookie") == ["a=1; Path=/", "b=2; Path=/"]
    assert answer.msg.get_all("X-Multi") == ["one", "two"]
    connection.close()


def test_the_sdk_reads_an_answer_whose_head_carried_unwritable_fields(proxy, upstream):
    payload = whole("openai", "through")
    upstream.reply(head(200, [(b"X-Bad", b"\x07bell"), (b"Content-Type", b"application/json"),
                              (b"Content-Length", str(len(payload)).encode())]), payload)
    completion = openai_client(base_url=proxy.url + "/v1", api_key=KEYS[0], max_retries=0) \
        .chat.completions.with_raw_response.create(**body("openai"))
    assert completion.parse().choices[0].message.content == "through"
    assert "X-Bad" not in completion.headers
