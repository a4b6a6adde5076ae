"""Transport failures against real sockets: each cause is named once, at the upstream boundary,
then counted under its own `error_type`, logged with the operating system's words, answered in
the family's format, and retried only as far as retrying can help.

Listeners: a closed port, a name that cannot resolve (RFC 2606 `.invalid`), the plain-HTTP fake
spoken to in TLS, a TLS listener with a certificate nobody trusts, a listener that accepts and
says nothing, one whose accept queue is full, and raw sockets that answer garbage or half an
answer.
"""

from __future__ import annotations

import socket
import ssl
import threading

import pytest
import requests
import trustme

from zai_proxy import config as config_module
from zai_proxy import errors
from zai_proxy.upstream import TransportError, Upstream

CHAT = {"model": "glm-4.7", "messages": [{"role": "user", "content": "hi"}]}
QUICK = {"RATE_LIMIT_ENABLED": "false", "MAX_RETRIES": "3", "RETRY_BACKOFF_BASE": "1s",
         "UPSTREAM_CONNECT_TIMEOUT": "300ms", "UPSTREAM_READ_TIMEOUT": "300ms"}


# Listeners ------------------------------------------------------------------------------------
def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Raw:
    """A loopback listener that runs `behave(conn)` for each connection it accepts, or, with
    accept=False, never accepts at all (the kernel still completes TCP handshakes)."""

    def __init__(self, behave=None, accept: bool = True, backlog: int = 16, tls=None):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(backlog)
        self.port = self.sock.getsockname()[1]
        self.behave, self.tls = behave, tls
        self.conns: list[socket.socket] = []
        self._stop = threading.Event()
        if accept:
            threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        self.sock.settimeout(0.1)
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.conns.append(conn)
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn):
        try:
            if self.tls is not None:
                conn = self.tls.wrap_socket(conn, server_side=True)
            if self.behave is not None:
                self.behave(conn)
        except (OSError, ssl.SSLError):
            pass

    def close(self):
        self._stop.set()
        for conn in self.conns:
            conn.close()
        self.sock.close()


def _read_head(conn) -> None:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return
        data += chunk


def _answer_then_hold(payload: bytes):
    def behave(conn):
        _read_head(conn)
        conn.sendall(payload)
        threading.Event().wait(5)
    return behave


@pytest.fixture
def listeners():
    opened = []

    def open_(*args, **kwargs):
        raw = Raw(*args, **kwargs)
        opened.append(raw)
        return raw
    yield open_
    for raw in opened:
        raw.close()


@pytest.fixture
def untrusted_tls():
    ca = trustme.CA()   # a CA the proxy does not trust: certifi's bundle is what it trusts
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    return context


def _full_queue(listeners) -> Raw:
    """A listener whose accept queue is full: the kernel drops further SYNs, so a connect
    times out for real."""
    raw = listeners(accept=False, backlog=0)
    filler = socket.create_connection(("127.0.0.1", raw.port), timeout=2)
    raw.conns.append(filler)
    return raw


# The boundary alone ---------------------------------------------------------------------------
def _send(url: str, **env) -> TransportError:
    settings = {"ZAI_API_KEY": "k" * 16, "ZAI_BASE_URL": url, "UPSTREAM_CONNECT_TIMEOUT": "300ms",
                "UPSTREAM_READ_TIMEOUT": "300ms", "RATE_LIMIT_STATE_FILE": "", **env}
    upstream = Upstream(config_module.load(settings))
    try:
        with pytest.raises(TransportError) as caught:
            answer = upstream.send("POST", url + "/api/paas/v4/chat/completions",
                                   {"Content-Type": "application/json"}, b"{}")
            answer.read_all()
        return caught.value
    finally:
        upstream.close()


def test_each_cause_is_named_at_the_boundary(listeners, fake_zai, untrusted_tls):
    silent = listeners(accept=False)
    garbage = listeners(_answer_then_hold(b"HELLO\r\n\r\n"))
    closing = listeners(lambda conn: (_read_head(conn), conn.close()))
    cases = {
        "refused": (f"http://127.0.0.1:{_closed_port()}", errors.REFUSED, "refused"),
        "dns": ("http://zai-proxy-test.invalid", errors.DNS, ""),
        "tls to plain HTTP": (fake_zai.url.replace("http://", "https://"), errors.TLS,
                              "wrong version number"),
        "self-signed": (f"https://127.0.0.1:{listeners(tls=untrusted_tls).port}", errors.TLS,
                        "certificate verify failed"),
        "silent, plain HTTP": (f"http://127.0.0.1:{silent.port}", errors.TIMEOUT, "timed out"),
        "silent, TLS": (f"https://127.0.0.1:{silent.port}", errors.CONNECT_TIMEOUT,
                        "timed out"),
        "accept queue full": (f"http://127.0.0.1:{_full_queue(listeners).port}",
                              errors.CONNECT_TIMEOUT, "timed out"),
        # The peer closes after the head: with the body still unread by then, the kernel
        # answers the client with a reset instead of a plain close; both are a reset here.
        "closed before an answer": (f"http://127.0.0.1:{closing.port}", errors.RESET,
                                    ("without an answer", "reset by peer")),
        "not HTTP": (f"http://127.0.0.1:{garbage.port}", errors.PROTOCOL,
                     "not an HTTP status line"),
    }
    for name, (url, kind, words) in cases.items():
        failure = _send(url)
        assert (failure.kind, failure.answered) == (kind, False), name
        accepted = words if isinstance(words, tuple) else (words,)
        assert any(w.lower() in failure.detail.lower() for w in accepted), (name, failure.detail)
        assert "127.0.0.1" not in failure.detail and "/api/" not in failure.detail, name


def test_a_failure_after_the_status_line_says_the_upstream_answered(listeners):
    # Once a status line has arrived the request was received (and may be billing): whatever
    # breaks afterwards is reported as answered, for the retry decision to know.
    many_fields = b"HTTP/1.1 200 OK\r\n" + b"".join(b"X-F%d: v\r\n" % i for i in range(120))
    stalled_body = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"partial"
    cut_body = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"partial"
    cases = {
        "too many header fields": (_answer_then_hold(many_fields + b"\r\n"), errors.PROTOCOL),
        "head then silence": (_answer_then_hold(b"HTTP/1.1 200 OK\r\nX-A: 1\r\n"),
                              errors.TIMEOUT),
        "body then silence": (_answer_then_hold(stalled_body), errors.TIMEOUT),
        "body cut by a close": (lambda conn: (_read_head(conn), conn.sendall(cut_body),
                                              conn.close()), errors.READ_ERROR),
    }
    for name, (behave, kind) in cases.items():
        failure = _send(f"http://127.0.0.1:{listeners(behave).port}")
        assert (failure.kind, failure.answered) == (kind, True), name


# Through the proxy ----------------------------------------------------------------------------
def _post(proxy, path="/v1/chat/completions", body=CHAT, **kwargs):
    return requests.post(proxy.url + path, json=body, timeout=30, **kwargs)


def _request_lines(lines: list[dict]) -> list[dict]:
    return [line for line in lines if line.get("logger") == "zai_proxy.request"]


@pytest.mark.parametrize("family_path", ["/v1/chat/completions", "/v1/messages"])
def test_a_refused_connection_is_retried_quickly_counted_and_logged(inprocess_proxy,
                                                                    family_path):
    proxy = inprocess_proxy(f"http://127.0.0.1:{_closed_port()}", **QUICK, LOG_LEVEL="info")
    response = _post(proxy, family_path, body={**CHAT, "max_tokens": 8})
    assert response.status_code == 502
    error = response.json()["error"]
    assert "connection was refused" in error["message"]
    assert "Connection refused" in error["message"]
    if family_path == "/v1/chat/completions":
        assert error["code"] == "upstream_connection"
    else:
        assert error["type"] == "api_error"
    # Nothing was sent, so waiting a second or more would only delay the 502: 0.7 s in all.
    assert proxy.waits == [0.1, 0.2, 0.4]
    assert proxy.value("zai_proxy_upstream_errors_total", error_type="upstream_refused") == 4
    assert proxy.value("zai_proxy_upstream_errors_total", error_type="upstream_connection") == 0
    assert proxy.value("zai_proxy_retry_attempts_total", reason="network_error") == 3
    lines = proxy.wait_for_log_lines(until=_request_lines)
    failed = [line for line in lines if line.get("error_type") == "upstream_refused"]
    assert [line["attempt"] for line in failed] == [1, 2, 3, 4]
    assert all(line["level"] == "warning" and line["detail"] == "Connection refused"
               for line in failed)
    assert "retrying in 0.1 s" in failed[0]["msg"] and "giving up" in failed[-1]["msg"]
    [request_line] = _request_lines(lines)
    assert request_line["outcome"] == "upstream_refused" and request_line["attempts"] == 4


def test_an_unresolvable_name_is_a_dns_failure(inprocess_proxy):
    proxy = inprocess_proxy("http://zai-proxy-test.invalid", **QUICK)
    response = _post(proxy)
    assert response.status_code == 502
    assert "did not resolve" in response.json()["error"]["message"]
    assert proxy.waits == [0.1, 0.2, 0.4]
    assert proxy.value("zai_proxy_upstream_errors_total", error_type="upstream_dns") == 4
    assert {line.get("error_type") for line in proxy.wait_for_log_lines()} >= {"upstream_dns"}


@pytest.mark.parametrize("listener", ["plain HTTP", "self-signed"])
def test_a_tls_failure_is_never_retried(inprocess_proxy, fake_zai, listeners, untrusted_tls, listener):
    url = (fake_zai.url.replace("http://", "https://") if listener == "plain HTTP"
           else f"https://127.0.0.1:{listeners(tls=untrusted_tls).port}")
    proxy = inprocess_proxy(url, **QUICK)
    response = _post(proxy)
    assert response.status_code == 502
    message = response.json()["error"]["message"]
    assert "TLS handshake failed" in message
    assert proxy.waits == []                       # a certificate does not heal in a second
    assert proxy.value("zai_proxy_upstream_errors_total", error_type="upstream_tls") == 1
    assert proxy.value("zai_proxy_retry_attempts_total") == 0
    [line] = [line for line in proxy.wait_for_log_lines()
              if line.get("error_type") == "upstream_tls"]
    expected = "wrong version number" if listener == "plain HTTP" else "certificate verify failed"
    assert expected in line["detail"] and expected in message
    assert fake_zai.requests == []


def test_a_silent_listener_is_a_timeout(inprocess_proxy, listeners):
    silent = listeners(accept=False)
    proxy = inprocess_proxy(f"http://127.0.0.1:{silent.port}", **{**QUICK, "MAX_RETRIES": "1"})
    response = _post(proxy)
    assert response.status_code == 504
    assert response.json()["error"]["code"] == "upstream_timeout"
    assert proxy.waits == [1.0]                    # the request was sent: the usual backoff
    assert proxy.value("zai_proxy_upstream_errors_total", error_type="upstream_timeout") == 2
    # The same listener spoken to in TLS never completes the handshake: a connect timeout.
    proxy = inprocess_proxy(f"https://127.0.0.1:{silent.port}", **{**QUICK, "MAX_RETRIES": "1"})
    response = _post(proxy)
    assert response.status_code == 502
    assert "no connection within UPSTREAM_CONNECT_TIMEOUT" in response.json()["error"]["message"]
    assert proxy.waits == [0.1]
    assert proxy.value("zai_proxy_upstream_errors_total",
                       error_type="upstream_connect_timeout") == 2


def test_a_full_accept_queue_is_a_connect_timeout(inprocess_proxy, listeners):
    proxy = inprocess_proxy(f"http://127.0.0.1:{_full_queue(listeners).port}",
                            **{**QUICK, "MAX_RETRIES": "1"})
    response = _post(proxy)
    assert response.status_code == 502
    assert proxy.value("zai_proxy_upstream_errors_total",
                       error_type="upstream_connect_timeout") == 2
    assert proxy.waits == [0.1]


def test_a_connection_closed_before_an_answer_is_a_reset(inprocess_proxy, fake_zai):
    proxy = inprocess_proxy(**QUICK)
    response = _post(proxy, headers={"X-Fake-Scenario": "reset_before"})
    assert response.status_code == 502
    assert response.json()["error"]["code"] == "upstream_connection"
    assert proxy.waits == [1.0, 2.0, 4.0]          # it was sent: the usual backoff
    assert proxy.value("zai_proxy_upstream_errors_total", error_type="upstream_reset") == 4
    assert len(fake_zai.requests) == 4
