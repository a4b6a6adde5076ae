"""A hang-up (or the total deadline) cuts a request's upstream connection only while that
connection is the request's own. Once its answer has been read to the end, urllib3 hands the
connection back to the pool, where the next request, another client's, may already be using it.

The official openai SDK closes its connection as soon as it reads `data: [DONE]`, before the
proxy has read the upstream's last chunk, so this race meets every streaming OpenAI client. A
late hang-up notice must never reach the pooled connection.

The real Upstream, against the raw-socket upstream on loopback, which numbers its connections.
"""

from __future__ import annotations

import pytest

from tests.raw_proxy import FAMILIES, ask, events
from tools.raw_upstream import Pause, RawUpstream, chunk, head, response
from zai_proxy import config, upstream
from zai_proxy.disconnect import InFlight


@pytest.fixture
def raw():
    with RawUpstream() as server:
        yield server


@pytest.fixture
def client(raw):
    pool = upstream.Upstream(config.load({"ZAI_API_KEY": "k", "ZAI_BASE_URL": raw.url,
                                          "UPSTREAM_READ_TIMEOUT": "5s"}))
    yield pool
    pool.close()


def _ask(client, raw, inflight: InFlight) -> bytes:
    upstream.bind_inflight(inflight)
    try:
        answer = client.send("POST", raw.url + "/v1/chat/completions", {}, b"{}")
        return answer.read_all()
    finally:
        upstream.bind_inflight(None)


@pytest.mark.parametrize("late", ["hang-up", "deadline"])
def test_a_late_stop_never_cuts_a_connection_back_in_the_pool(client, raw, late):
    raw.reply(response(200, b'{"first": true}'))
    raw.reply(response(200, b'{"second": true}'))
    first = InFlight()
    assert _ask(client, raw, first) == b'{"first": true}'
    # The notice arrives after the body was read to its end: the connection is pooled already.
    first.abort() if late == "hang-up" else first.expire()
    assert first.stop.is_set()
    assert _ask(client, raw, InFlight()) == b'{"second": true}'
    # The second request went over the same connection, which the late notice left alone.
    assert [request.connection for request in raw.wait_requests(2)] == [0, 0]


def test_a_connection_stopped_before_it_is_handed_back_is_never_pooled(client, raw):
    """The stop lands first (the socket is shut down): the answer's end must not put that
    connection in the pool, where the next request would find it dead or half-read."""
    raw.reply(response(200, b'{"first": true}'))
    raw.reply(response(200, b'{"second": true}'))
    first = InFlight()
    upstream.bind_inflight(first)
    try:
        answer = client.send("POST", raw.url + "/v1/chat/completions", {}, b"{}")
        first.abort()                                        # before the body is read
        try:
            answer.read_all()
        except upstream.TransportError:
            pass                                             # cut: what a hang-up does
        answer.close()
    finally:
        upstream.bind_inflight(None)
    assert _ask(client, raw, InFlight()) == b'{"second": true}'
    assert [request.connection for request in raw.wait_requests(2)] == [0, 1]


@pytest.mark.parametrize("family", FAMILIES)
def test_a_client_that_hangs_up_on_the_terminal_event_got_the_whole_answer(inprocess_proxy, raw,
                                                                           family):
    """The openai SDK closes its connection on `data: [DONE]`; the upstream's last chunk comes
    half a second later. The client has every event: the request is `ok`, not a disconnect,
    and its usage is not marked incomplete."""
    proxy = inprocess_proxy(raw.url, RATE_LIMIT_ENABLED="false", UPSTREAM_READ_TIMEOUT="5s",
                            LOG_LEVEL="info", TOKEN_COUNTING_ENABLED="true")
    raw.reply(head(200, [("Content-Type", "text/event-stream"),
                         ("Transfer-Encoding", "chunked")]),
              chunk(events(family, ["Hel", "lo"])), Pause(0.5), b"0\r\n\r\n")
    assert ask(family, proxy.url, stream=True) == "Hello"
    [line] = proxy.wait_for_request_logs(1)
    assert line["outcome"] == "ok" and line["usage"]["incomplete"] is False
    assert proxy.value("zai_proxy_stream_disconnects_total") == 0
