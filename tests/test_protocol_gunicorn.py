"""What gunicorn itself does with what the upstream sends, and with `Expect: 100-continue`.

- Header fields the server cannot re-emit (control characters, invalid names, obsolete folding):
  gunicorn refuses to write such a head, which would leave the answer open, its MAX_WORKERS slot
  held and no log line or metric written (after MAX_WORKERS of them the pod would answer 503 to
  everything, and SIGTERM would wait out the whole graceful timeout). Such fields are dropped, and
  a request's accounting runs even when the server cannot write its answer at all.
- `100 Continue` is sent once the request has passed the authentication and size checks, never
  before: a rejected request never invites its body.

The real command (`gunicorn -c gunicorn.conf.py 'app:create_app()'`) for what gunicorn does; the
in-process app for the accounting when a server refuses an answer's head.
"""

from __future__ import annotations

import json
import socket
import time

import pytest
import requests
from werkzeug.test import EnvironBuilder

from tests.raw_proxy import FAMILIES, PATHS, ask, body, events, whole, whole_answer
from tools.proxy_process import ProxyProcess
from tools.raw_upstream import Hold, RawUpstream, chunk, head, response

KEY = "gunicorn-client-key-0123"
UNWRITABLE = [(b"X-Bell", b"ring\x07"), (b"X(name)", b"v"), (b"X-Nul", b"a\x00b"),
              (b"X-Folded", b"one\r\n two"), (b"X-Kept", b"yes")]


@pytest.fixture
def upstream():
    with RawUpstream() as server:
        yield server


def _unwritable(family: str, stream: bool, text: str) -> list:
    if stream:
        return response(200, events(family, [text]), UNWRITABLE, content_type="text/event-stream")
    return response(200, whole(family, text), UNWRITABLE, content_type="application/json")


def test_unwritable_header_fields_neither_leak_slots_nor_go_unaccounted(tmp_path, upstream):
    proxy = ProxyProcess(tmp_path, upstream.url, MAX_WORKERS="2", WEB_CONCURRENCY="1",
                         PROXY_API_KEYS=KEY, RATE_LIMIT_ENABLED="false",
                         GRACEFUL_TIMEOUT="120", LOG_LEVEL="info").start()
    try:
        # Twice MAX_WORKERS such answers, each family, whole and streamed.
        cases = [(family, stream) for family in FAMILIES for stream in (False, True)] * 1
        for round_ in range(2):
            for family, stream in cases:
                upstream.reply(_unwritable(family, stream, f"{family} {stream} {round_}"))
                answer = requests.post(proxy.url + PATHS[family], json=body(family, stream),
                                       headers={"x-api-key": KEY}, timeout=30)
                assert answer.status_code == 200
                assert answer.headers["X-Kept"] == "yes"
                assert answer.headers["X-Folded"] == "one two"
                assert "X-Bell" not in answer.headers and "X-Nul" not in answer.headers
                assert f"{family} {stream} {round_}".encode() in answer.content
        # The pod still serves, every request was counted and logged, no slot is held.
        upstream.reply(whole_answer("openai", "still serving"))
        assert ask("openai", proxy.url, key=KEY) == "still serving"
        deadline = time.monotonic() + 10
        while proxy.value("zai_proxy_requests_total", status_code="200") < 9:
            assert time.monotonic() < deadline, "requests were not counted"
            time.sleep(0.05)
        assert proxy.value("zai_proxy_concurrent_requests") == 0
        request_lines = [line for line in proxy.log_lines()
                         if line.get("logger") == "zai_proxy.request"]
        assert [line["status"] for line in request_lines] == [200] * 9
        assert all(line["outcome"] == "ok" for line in request_lines)
        # SIGTERM: nothing is in flight, so the worker stops at once instead of waiting out
        # GRACEFUL_TIMEOUT (120 s) for slots that leaked.
        started = time.monotonic()
        assert proxy.stop(timeout=60) == 0
        assert time.monotonic() - started < 60
        assert "draining 0 in-flight request(s)" in proxy.stdout()
    finally:
        proxy.stop()


# The accounting when the server cannot write the answer -------------------------------------------------
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("family", FAMILIES)
def test_a_request_is_counted_logged_and_its_slot_freed_when_the_server_cannot_write_it(
        capsys, inprocess_proxy, upstream, family, stream):
    proxy = inprocess_proxy(upstream.url, RATE_LIMIT_ENABLED="false", LOG_LEVEL="info")
    if stream:    # a stream whose upstream is still sending: its connection must be let go
        stream_start = events(family, ["Hel"], terminal=False)
        upstream.reply(head(200, [("Content-Type", "text/event-stream"),
                                  ("Transfer-Encoding", "chunked")]), chunk(stream_start), Hold())
    else:
        upstream.reply(whole_answer(family, "never written"))
    environ = EnvironBuilder(path=PATHS[family], method="POST",
                             json=body(family, stream)).get_environ()

    def refusing_start_response(status, headers, exc_info=None):
        # What gunicorn does with a head it will not write (InvalidResponseHeader): it raises.
        raise ValueError("invalid response header")

    with pytest.raises(ValueError):
        proxy.app.wsgi_app(environ, refusing_start_response)
    assert proxy.value("zai_proxy_concurrent_requests") == 0
    assert proxy.value("zai_proxy_requests_total", status_code="500") == 1
    lines = [json.loads(text) for text in capsys.readouterr().out.splitlines()
             if text.startswith("{")]
    [request_line] = [line for line in lines if line.get("logger") == "zai_proxy.request"]
    assert request_line["outcome"] == "write_error" and request_line["status"] == 500
    if stream:
        assert upstream.wait_closed(0, timeout=5).closed_by == "client"


# 100 Continue ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def continue_proxy(tmp_path_factory):
    with RawUpstream() as upstream:
        upstream.default(whole_answer("openai", "invited"))
        proxy = ProxyProcess(tmp_path_factory.mktemp("continue"), upstream.url,
                             PROXY_API_KEYS=KEY, MAX_REQUEST_BYTES="4096",
                             RATE_LIMIT_ENABLED="false", GRACEFUL_TIMEOUT="5").start()
        try:
            yield proxy, upstream
        finally:
            proxy.stop()


def _expect_continue(proxy, path: str, key: str, length: int) -> tuple[socket.socket, bytes]:
    """Send a head with `Expect: 100-continue` and no body; return what the proxy answered
    first (a whole head)."""
    sock = socket.create_connection(("127.0.0.1", proxy.port), timeout=10)
    sock.sendall((f"POST {path} HTTP/1.1\r\nHost: proxy\r\nContent-Type: application/json\r\n"
                  f"Content-Length: {length}\r\nExpect: 100-continue\r\nx-api-key: {key}\r\n"
                  "\r\n").encode())
    data = b""
    while b"\r\n\r\n" not in data:
        piece = sock.recv(65536)
        assert piece, f"closed without an answer after {data!r}"
        data += piece
    return sock, data


@pytest.mark.parametrize("family", FAMILIES)
def test_a_request_refused_for_its_key_never_invites_its_body(continue_proxy, family):
    proxy, upstream = continue_proxy
    sock, first = _expect_continue(proxy, PATHS[family], "not-the-key", 100)
    with sock:
        assert first.startswith(b"HTTP/1.1 401 "), first
    assert not [r for r in upstream.requests if r.target.endswith(PATHS[family][3:])]


@pytest.mark.parametrize("family", FAMILIES)
def test_a_request_refused_for_its_size_never_invites_its_body(continue_proxy, family):
    proxy, _ = continue_proxy
    sock, first = _expect_continue(proxy, PATHS[family], KEY, 1_000_000)
    with sock:
        assert first.startswith(b"HTTP/1.1 413 "), first


@pytest.mark.parametrize("family", FAMILIES)
def test_an_accepted_request_is_invited_then_served(continue_proxy, family):
    proxy, upstream = continue_proxy
    payload = json.dumps(body(family)).encode()
    sock, first = _expect_continue(proxy, PATHS[family], KEY, len(payload))
    with sock:
        assert first.startswith(b"HTTP/1.1 100 Continue\r\n\r\n"), first
        rest = first[len(b"HTTP/1.1 100 Continue\r\n\r\n"):]
        sock.sendall(payload)
        while b"invited" not in rest:
            piece = sock.recv(65536)
            assert piece, rest
            rest += piece
        assert rest.startswith(b"HTTP/1.1 200 ")
    assert upstream.requests[-1].body == payload
