"""The raw-socket fake upstream (tools/raw_upstream.py) sends exactly what a test scripts and
records exactly what it received, on which connection."""

from __future__ import annotations

import socket
import threading

import pytest
import requests

from tools.sdks import anthropic_client, openai_client
from tools.raw_upstream import (Close, Hold, Pause, RawUpstream, Reset, Wait, anthropic_sse, chunk,
                                chunked, head, openai_sse, response, sse)


@pytest.fixture
def upstream():
    with RawUpstream() as server:
        yield server


def _raw_exchange(upstream, request: bytes, until_close: bool = True) -> bytes:
    with socket.create_connection(("127.0.0.1", upstream.port), timeout=5) as sock:
        sock.sendall(request)
        data = b""
        while until_close:
            piece = sock.recv(65536)
            if not piece:
                break
            data += piece
        return data


def test_sends_the_scripted_bytes_exactly(upstream):
    steps = [head(103, [("Link", "</style.css>; rel=preload")]),
             b"HTTP/1.1 200 OK\r\nX-Odd: a\x01b\r\nX-Odd: again\r\n", Pause(0.01),
             b"Content-Length: 2\r\n\r\nok", Close()]
    upstream.reply(*steps)
    data = _raw_exchange(upstream, b"GET /x HTTP/1.1\r\nHost: u\r\n\r\n")
    assert data == (b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"
                    b"HTTP/1.1 200 OK\r\nX-Odd: a\x01b\r\nX-Odd: again\r\n"
                    b"Content-Length: 2\r\n\r\nok")


def test_records_requests_with_repeated_fields_and_decoded_chunked_bodies(upstream):
    request = (b"POST /api/paas/v4/chat/completions?a=1 HTTP/1.1\r\nHost: u\r\nX-Twice: 1\r\n"
               b"X-Twice: 2\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
               + chunked(b'{"model":', b'"glm-4.7"}'))
    _raw_exchange(upstream, request)
    [received] = upstream.wait_requests(1)
    assert (received.method, received.target, received.version) == (
        "POST", "/api/paas/v4/chat/completions?a=1", "HTTP/1.1")
    assert received.headers_named("x-twice") == ["1", "2"]
    assert received.header("X-TWICE") == "1"
    assert received.body == b'{"model":"glm-4.7"}'
    assert received.raw == request
    assert (received.connection, received.index) == (0, 0)
    assert upstream.wait_closed(0).closed_by == "server"   # it asked for Connection: close


def test_keeps_connections_alive_and_shows_which_request_used_which(upstream):
    upstream.reply(response(200, b"one"))
    upstream.reply(response(200, b"two", framing="close"))   # ends its connection
    upstream.reply(response(200, b"three"))
    with requests.Session() as session:
        answers = [session.post(upstream.url + "/p", data=b"x" * n).text for n in (1, 2, 3)]
    assert answers == ["one", "two", "three"]
    first, second, third = upstream.wait_requests(3)
    assert [(r.connection, r.index) for r in (first, second, third)] == [(0, 0), (0, 1), (1, 0)]
    assert [r.body for r in (first, second, third)] == [b"x", b"xx", b"xxx"]
    assert upstream.wait_closed(0).closed_by == "server"


@pytest.mark.parametrize("framing", ["length", "chunked", "close"])
@pytest.mark.parametrize("compressed", [False, True])
def test_framing_and_gzip_helpers_are_valid_http(upstream, framing, compressed):
    body = b'{"text": "' + b"word " * 2000 + b'"}'
    upstream.default(response(200, body, [("X-Id", "7")], content_type="application/json",
                              framing=framing, gzip=compressed))
    answer = requests.get(upstream.url + "/any", timeout=5)
    assert answer.status_code == 200 and answer.content == body
    assert answer.headers["X-Id"] == "7"
    assert (answer.headers.get("Content-Encoding") == "gzip") == compressed
    assert ("chunked" in answer.headers.get("Transfer-Encoding", "")) == (framing == "chunked")


def test_a_chunked_body_cut_before_its_last_chunk_is_incomplete_to_a_client(upstream):
    upstream.reply(head(200, [("Transfer-Encoding", "chunked")]), chunk(b"part"), Close())
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        requests.get(upstream.url + "/", timeout=5).content


def test_reset_hold_and_wait(upstream):
    upstream.reply(head(200, [("Content-Length", "10")]), b"12345", Reset())
    with pytest.raises(requests.exceptions.ChunkedEncodingError, match="reset by peer"):
        requests.get(upstream.url + "/reset", timeout=5).content

    upstream.reply(head(200, [("Content-Length", "10")]), Hold())
    with pytest.raises(requests.exceptions.ConnectionError, match="Read timed out"):
        requests.get(upstream.url + "/hold", timeout=0.5).content   # the body never comes
    held = upstream.wait_requests(2)[1].connection
    assert upstream.wait_closed(held).closed_by == "client"

    gate = threading.Event()
    upstream.reply(head(200, [("Content-Length", "4")]), b"ab", Wait(gate), b"cd")
    with socket.create_connection(("127.0.0.1", upstream.port), timeout=5) as sock:
        sock.sendall(b"GET /gate HTTP/1.1\r\nHost: u\r\n\r\n")
        data = b""
        while not data.endswith(b"ab"):
            data += sock.recv(100)
        sock.settimeout(0.2)
        with pytest.raises(socket.timeout):
            sock.recv(100)                        # nothing more until the test says so
        gate.set()
        sock.settimeout(5)
        assert sock.recv(100) == b"cd"


def test_handler_answers_by_request_and_stop_closes_held_connections():
    with RawUpstream() as upstream:
        def by_path(request):
            if request.target.endswith("/hold"):
                return [head(200, [("Content-Length", "1")]), Hold()]
            return response(404, b"nothing here")
        upstream.handler = by_path
        assert requests.get(upstream.url + "/other", timeout=5).status_code == 404
        sock = socket.create_connection(("127.0.0.1", upstream.port), timeout=5)
        sock.sendall(b"GET /hold HTTP/1.1\r\nHost: u\r\n\r\n")
        upstream.wait_requests(2)
    assert upstream.connections[-1].closed_by == "server"
    sock.close()


def test_sse_helpers_are_streams_the_official_sdks_read(upstream):
    upstream.reply(response(200, openai_sse(["Hel", "lo"]), content_type="text/event-stream",
                            framing="chunked"))
    upstream.reply(response(200, anthropic_sse(["Hel", "lo"]), content_type="text/event-stream",
                            framing="close"))
    client = openai_client(base_url=upstream.url + "/v1", api_key="k", max_retries=0)
    stream = client.chat.completions.create(model="glm-4.7", stream=True,
                                            messages=[{"role": "user", "content": "hi"}])
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "Hello"
    with anthropic_client(base_url=upstream.url, api_key="k", max_retries=0).messages.stream(
            model="glm-4.7", max_tokens=10, messages=[{"role": "user", "content": "hi"}]) as s:
        assert s.get_final_text() == "Hello"
    assert [r.target for r in upstream.wait_requests(2)] == ["/v1/chat/completions",
                                                             "/v1/messages"]
    assert sse({"a": 1}, "event: x\ndata: y\n\n") == b'data: {"a": 1}\n\nevent: x\ndata: y\n\n'
