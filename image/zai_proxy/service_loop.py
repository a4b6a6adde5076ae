"""Probes and metrics answered by their own thread, never queued behind client connections.

The worker's main loop reads every request head without a pool thread (worker.py). A head that
asks for one of SERVICE_PATHS — a plain GET or HEAD with no body, alone on its connection — is
handed over here instead of to the pool: this thread renders the answer with the same Flask app
(so /metrics and the probes say exactly what they say anywhere else), then writes it with
non-blocking sends and closes the connection. Nothing a client does to the pool (slow heads,
slow bodies, answers it does not read, connection storms) can delay a probe, and a client that
does not read a probe's answer is dropped after WRITE_TIMEOUT without holding anything.

Several /metrics requests that arrive together are answered with one rendering.
"""

from __future__ import annotations

import collections
import dataclasses
import io
import logging
import os
import selectors
import socket
import sys
import threading
import time
from typing import Callable

log = logging.getLogger("zai_proxy.service_loop")

SERVICE_PATHS = frozenset({b"/livez", b"/readyz", b"/health", b"/metrics"})
WRITE_TIMEOUT = 5.0          # a probe's answer is small: a client that cannot take it is gone
LINGER = 1.0                 # after the answer, how long to wait for the client's close
MAX_CONNECTIONS = 256        # beyond, service requests go to the thread pool like any other
_FORBIDDEN = (b"content-length", b"transfer-encoding", b"expect", b"upgrade")
_HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "content-length"})


@dataclasses.dataclass(frozen=True)
class ServiceRequest:
    method: str
    path: str
    query: str
    version: str
    headers: tuple[tuple[str, str], ...]


def parse_service_request(head: bytes) -> ServiceRequest | None:
    """The request, if `head` is exactly one complete, body-less GET/HEAD of a service path.

    Anything else (another path, a body, pipelined bytes, an unusual byte) returns None and
    is served by the thread pool, whose parser has the last word on what is valid."""
    block, separator, rest = head.partition(b"\r\n\r\n")
    if not separator or rest:
        return None
    lines = block.split(b"\r\n")
    parts = lines[0].split(b" ")
    if len(parts) != 3:
        return None
    method, target, version = parts
    if method not in (b"GET", b"HEAD") or version not in (b"HTTP/1.1", b"HTTP/1.0"):
        return None
    path, _, query = target.partition(b"?")
    if path not in SERVICE_PATHS:
        return None
    headers = []
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if not colon or not name or not name.isascii() or b" " in name or b"\t" in name:
            return None
        value = value.strip(b" \t")
        if any(byte < 0x20 and byte != 0x09 or byte == 0x7f for byte in value):
            return None
        if name.lower() in _FORBIDDEN and not (name.lower() == b"content-length"
                                               and value == b"0"):
            return None
        headers.append((name.decode("ascii"), value.decode("latin-1")))
    if any(byte < 0x21 or byte > 0x7e for byte in query):
        return None
    return ServiceRequest(method.decode(), path.decode(), query.decode("ascii"),
                          version.decode(), tuple(headers))


def render(app, request: ServiceRequest, client: tuple | None, server: tuple | None) -> bytes:
    """The whole HTTP answer of the WSGI `app` to `request`, closing the connection."""
    environ = {
        "REQUEST_METHOD": request.method, "SCRIPT_NAME": "", "PATH_INFO": request.path,
        "QUERY_STRING": request.query, "SERVER_PROTOCOL": request.version,
        "SERVER_NAME": str(server[0]) if server else "localhost",
        "SERVER_PORT": str(server[1]) if server else "80",
        "REMOTE_ADDR": str(client[0]) if client else "", "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(b""), "wsgi.errors": sys.stderr,
        "wsgi.multithread": True, "wsgi.multiprocess": True, "wsgi.run_once": False,
    }
    for name, value in request.headers:
        key = "HTTP_" + name.upper().replace("-", "_")
        environ[key] = f"{environ[key]},{value}" if key in environ else value
    answer: dict = {}

    def start_response(status, headers, exc_info=None):
        answer["status"], answer["headers"] = status, headers

    try:
        pieces = app(environ, start_response)
        try:
            body = b"".join(pieces)
        finally:
            close = getattr(pieces, "close", None)
            if close is not None:
                close()
    except Exception:  # noqa: BLE001 - a probe must get an answer, even a 500
        log.exception("service endpoint %s failed", request.path)
        answer = {"status": "500 Internal Server Error",
                  "headers": [("Content-Type", "application/json")]}
        body = b'{"status": "error"}'
    lines = [f"HTTP/1.1 {answer['status']}"]
    lines += [f"{name}: {value}" for name, value in answer["headers"]
              if name.lower() not in _HOP_BY_HOP]
    if request.method == "HEAD":     # the length a GET would have, as the app says it
        lines += [f"{name}: {value}" for name, value in answer["headers"]
                  if name.lower() == "content-length"]
        body = b""
    else:
        lines.append(f"Content-Length: {len(body)}")
    lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class _Conn:
    __slots__ = ("sock", "out", "due", "lingering")

    def __init__(self, sock, out: bytes, due: float):
        self.sock = sock
        self.out = memoryview(out)
        self.due = due
        self.lingering = False


class ServiceLoop:
    """One thread per worker process that answers service requests handed over to it."""

    def __init__(self, app, on_write_timeout: Callable[[], None],
                 write_timeout: float = WRITE_TIMEOUT):
        self._app = app
        self._on_write_timeout = on_write_timeout
        self._write_timeout = write_timeout
        self._inbox: collections.deque = collections.deque()
        self._conns: dict[int, _Conn] = {}
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        threading.Thread(target=self._run, name="service-loop", daemon=True).start()

    def accepts(self) -> bool:
        return len(self._conns) + len(self._inbox) < MAX_CONNECTIONS

    def take(self, sock: socket.socket, client, server, request: ServiceRequest) -> None:
        """Hand over a connection whose complete head is `request` (from the main loop)."""
        self._inbox.append((sock, client, server, request))
        try:
            os.write(self._wake_w, b"x")
        except BlockingIOError:
            pass   # a wake-up is already pending

    # The thread ------------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            timeout = 1.0
            if self._conns:
                timeout = max(0.0, min(min(c.due for c in self._conns.values())
                                       - time.monotonic(), 1.0))
            for key, _ in self._selector.select(timeout):
                if key.data is None:
                    try:
                        while os.read(self._wake_r, 4096):
                            pass
                    except BlockingIOError:
                        pass
                else:
                    self._on_ready(key.data)
            self._answer_new()
            self._expire()

    def _answer_new(self) -> None:
        rendered: dict = {}      # one rendering per distinct request in this batch
        while self._inbox:
            sock, client, server, request = self._inbox.popleft()
            key = (request.method, request.path, request.query, request.headers)
            if key not in rendered:
                rendered[key] = render(self._app, request, client, server)
            sock.setblocking(False)
            conn = _Conn(sock, rendered[key], time.monotonic() + self._write_timeout)
            self._conns[sock.fileno()] = conn
            self._selector.register(sock, selectors.EVENT_WRITE, conn)
            self._on_ready(conn)

    def _on_ready(self, conn: _Conn) -> None:
        if conn.lingering:
            try:
                while conn.sock.recv(65536):
                    pass
            except BlockingIOError:
                return        # more may come; wait for the close
            except OSError:
                pass
            self._close(conn)
            return
        try:
            while conn.out:
                sent = conn.sock.send(conn.out)
                conn.out = conn.out[sent:]
        except BlockingIOError:
            return
        except OSError:
            self._close(conn)
            return
        # All sent: half-close, then wait briefly for the client's close so that the kernel
        # does not reset the connection under an answer not yet read.
        try:
            conn.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self._close(conn)
            return
        conn.lingering = True
        conn.due = time.monotonic() + LINGER
        self._selector.modify(conn.sock, selectors.EVENT_READ, conn)

    def _expire(self) -> None:
        now = time.monotonic()
        for conn in [c for c in self._conns.values() if c.due <= now]:
            if not conn.lingering:
                self._on_write_timeout()
            self._close(conn)

    def _close(self, conn: _Conn) -> None:
        self._conns.pop(conn.sock.fileno(), None)
        try:
            self._selector.unregister(conn.sock)
        except (KeyError, ValueError):
            pass
        conn.sock.close()
