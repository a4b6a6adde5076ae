"""Notice clients that have gone, without a thread per request.

One watcher thread per process polls the client sockets of in-flight requests. A socket that
turns readable with EOF (or an error) means the client hung up: the request's `cancel` event is
set and its upstream socket shut down, so a blocked upstream read returns at once and Z.AI stops
generating tokens nobody will read. Without this, a gone client is only noticed at the next
write, which for a silent upstream can be minutes later.
"""

from __future__ import annotations

import logging
import os
import selectors
import socket
import threading

log = logging.getLogger("zai_proxy.disconnect")

# Where WSGI servers put the client connection's socket in the environ: gunicorn (the image)
# and werkzeug's server (`flask run`, the in-process test server). The pipeline reads it through
# client_socket() so that hang-up watching and body deadlines work under either.
_SOCKET_KEYS = ("gunicorn.socket", "werkzeug.socket")


def client_socket(environ) -> socket.socket | None:
    """The client connection's socket, or None under a server that does not expose it (then a
    hang-up is noticed at the next write, and a request body has no idle deadline)."""
    for key in _SOCKET_KEYS:
        sock = environ.get(key)
        if sock is not None:
            return sock
    return None


class InFlight:
    """What stops one request: its cancel flag (the client went away), its total deadline
    (`expired`), and its upstream socket, which either cuts. `stop` is set by both: waits
    (admission, retry backoff) wait on it."""

    __slots__ = ("cancel", "stop", "expired", "upstream_sock", "_lock", "_done")

    def __init__(self):
        self.cancel = threading.Event()
        self.stop = threading.Event()
        self.expired = False
        self.upstream_sock: socket.socket | None = None
        self._lock = threading.Lock()
        self._done = False

    def forget_upstream(self) -> None:
        """The upstream body was read to its end: urllib3 has put the connection back in its
        pool, where it may already serve another request, so it must never be shut down."""
        with self._lock:
            self.upstream_sock = None

    def finish(self) -> None:
        """The request is over: a late hang-up notice must not touch anything."""
        with self._lock:
            self._done = True
            self.upstream_sock = None

    def set_upstream_socket(self, sock) -> None:
        with self._lock:
            self.upstream_sock = sock
            if self.stop.is_set():
                _shutdown(sock)

    def abort(self) -> None:
        """The client went away."""
        with self._lock:
            if self._done:
                return
            self.cancel.set()
            self._stop()

    def expire(self) -> None:
        """The request's total deadline passed (total_deadline.py)."""
        with self._lock:
            if self._done:
                return
            self.expired = True
            self._stop()

    def _stop(self) -> None:
        self.stop.set()
        if self.upstream_sock is not None:
            _shutdown(self.upstream_sock)


def _shutdown(sock) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


class DisconnectWatcher:
    _closed = False

    def __init__(self):
        self._selector = selectors.DefaultSelector()
        self._lock = threading.Lock()
        self._pending: list[tuple[str, int, tuple | None]] = []
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._thread = threading.Thread(target=self._run, name="disconnect-watcher", daemon=True)
        self._thread.start()

    def watch(self, client_sock, inflight: InFlight) -> int:
        """Start watching; returns the descriptor to pass to unwatch()."""
        fd = client_sock.fileno()
        self._queue("add", fd, (client_sock, inflight))
        return fd

    def unwatch(self, fd: int) -> None:
        # By descriptor number: the socket may already be closed when this is applied.
        self._queue("remove", fd, None)

    def _queue(self, op, fd, data) -> None:
        with self._lock:
            if self._closed:
                return   # the pipe may be closed, and its descriptor number reused
            self._pending.append((op, fd, data))
            self._wake()

    def _wake(self) -> None:
        try:
            os.write(self._wake_w, b"x")
        except BlockingIOError:
            pass  # a wake-up is already pending

    def _apply_pending(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, []
        for op, fd, data in pending:
            try:
                if op == "add":
                    self._selector.register(fd, selectors.EVENT_READ, data)
                else:
                    self._selector.unregister(fd)
            except (KeyError, ValueError, OSError):
                pass  # already gone or closed: nothing to watch

    def close(self) -> None:
        """Stop the thread and release its descriptors (an app built and dropped in one
        process, as tests do, would otherwise leave them behind)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._wake()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._closed:
            try:
                events = self._selector.select(timeout=5.0)
            except OSError:
                continue
            for key, _ in events:
                if key.data is None:
                    try:
                        while os.read(self._wake_r, 4096):
                            pass
                    except BlockingIOError:
                        pass
                    continue
                self._check(key.fd, *key.data)
            self._apply_pending()
        with self._lock:
            self._selector.close()
            os.close(self._wake_r)
            os.close(self._wake_w)

    def _check(self, fd, sock, inflight: InFlight) -> None:
        try:
            data = sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        try:
            self._selector.unregister(fd)
        except (KeyError, ValueError):
            pass
        if data == b"":
            inflight.abort()
        # Data means the client sent more (a pipelined request): not a hang-up. We stop watching
        # rather than spin on a readable socket.
