"""The service loop (image/zai_proxy/service_loop.py): which heads it takes, what it answers,
and that a client which does not read its answer holds nothing."""

from __future__ import annotations

import socket
import time

import pytest

from zai_proxy.service_loop import ServiceLoop, parse_service_request, render


def _app(environ, start_response):
    body = f"{environ['REQUEST_METHOD']} {environ['PATH_INFO']}?{environ['QUERY_STRING']} " \
           f"accept={environ.get('HTTP_ACCEPT')}".encode()
    if environ["PATH_INFO"] == "/metrics":
        body *= 20_000        # a large answer
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body))),
                              ("Connection", "keep-alive")])
    return [body]


@pytest.mark.parametrize("head", [
    b"GET /livez HTTP/1.1\r\nHost: p\r\n\r\n",
    b"HEAD /readyz HTTP/1.0\r\n\r\n",
    b"GET /metrics?name[]=zai_proxy_requests_total HTTP/1.1\r\nAccept: text/plain\r\n"
    b"Content-Length: 0\r\n\r\n",
    b"GET /health HTTP/1.1\r\nUser-Agent: kube-probe/1.30\r\nConnection: close\r\n\r\n",
])
def test_takes_plain_probe_and_metrics_requests(head):
    assert parse_service_request(head) is not None


@pytest.mark.parametrize("head", [
    b"GET /v1/models HTTP/1.1\r\nHost: p\r\n\r\n",                   # not a service path
    b"POST /livez HTTP/1.1\r\nContent-Length: 2\r\n\r\n",            # a body
    b"GET /livez HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
    b"GET /livez HTTP/1.1\r\nExpect: 100-continue\r\n\r\n",
    b"GET /livez HTTP/1.1\r\n\r\nGET /livez HTTP/1.1\r\n\r\n",       # pipelined
    b"GET /livez HTTP/1.1\r\nX-Bad: a\x00b\r\n\r\n",                 # for gunicorn's parser
    b"GET /livez HTTP/1.1\r\nBad Name: x\r\n\r\n",
    b"GET /livez/ HTTP/1.1\r\n\r\n",
    b"GET /livez HTTP/2.0\r\n\r\n",
    b"GET /livez HTTP/1.1\n\n",                                        # bare LF: the parser decides
])
def test_leaves_everything_else_to_the_thread_pool(head):
    assert parse_service_request(head) is None


def test_render_answers_with_the_app_and_closes():
    request = parse_service_request(b"GET /livez?x=1 HTTP/1.1\r\nAccept: a\r\nAccept: b\r\n\r\n")
    answer = render(_app, request, ("127.0.0.1", 5), ("0.0.0.0", 8080))
    head, _, body = answer.partition(b"\r\n\r\n")
    assert body == b"GET /livez?x=1 accept=a,b"
    lines = head.decode().split("\r\n")
    assert lines[0] == "HTTP/1.1 200 OK"
    assert "Connection: close" in lines and "Connection: keep-alive" not in lines
    assert f"Content-Length: {len(body)}" in lines
    head_only = render(_app, parse_service_request(b"HEAD /livez HTTP/1.1\r\n\r\n"), None, None)
    length = len(b"HEAD /livez? accept=None")     # what the app says a GET would carry
    assert head_only.endswith(b"\r\n\r\n") and b"Content-Length: %d\r\n" % length in head_only


def test_render_answers_500_when_the_app_fails():
    def broken(environ, start_response):
        raise RuntimeError("boom")
    answer = render(broken, parse_service_request(b"GET /readyz HTTP/1.1\r\n\r\n"), None, None)
    assert answer.startswith(b"HTTP/1.1 500 ")


def _read_all(sock) -> bytes:
    data = b""
    while True:
        piece = sock.recv(65536)
        if not piece:
            return data
        data += piece


def test_answers_handed_over_connections_and_drops_those_that_do_not_read():
    timeouts = []
    loop = ServiceLoop(_app, lambda: timeouts.append(1), write_timeout=0.5)
    reader, served = socket.socketpair()
    loop.take(served, ("127.0.0.1", 1), None, parse_service_request(b"GET /livez HTTP/1.1\r\n\r\n"))
    reader.settimeout(5)
    assert _read_all(reader).endswith(b"GET /livez? accept=None")
    reader.close()

    # A 1 MB answer to a client that reads nothing: dropped after the write timeout.
    stalled, served = socket.socketpair()
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    loop.take(served, None, None, parse_service_request(b"GET /metrics HTTP/1.1\r\n\r\n"))
    deadline = time.monotonic() + 5
    while not timeouts and time.monotonic() < deadline:
        time.sleep(0.05)
    assert timeouts == [1]
    stalled.settimeout(5)
    data = _read_all(stalled)              # what was buffered, then the end of the connection
    assert 0 < len(data) < 1_000_000
    stalled.close()
