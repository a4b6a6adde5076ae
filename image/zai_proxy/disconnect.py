"""Notice clients that have gone, without a thread per request.

One watcher thread per process polls the client sockets of in-flight requests. A socket whose
peer closed its side (or that failed) means the client hung up: the request's `cancel` event is
set and its upstream socket shut down, so a blocked upstream read returns at once and Z.AI stops
generating tokens nobody will read. Without this, a gone client is only noticed at the next
write, which for a silent upstream can be minutes later.
"""

from __future__ import annotations

import logging
import os
import select
import socket
import threading

log = logging.getLogger("zai_proxy.disconnect")

# Where WSGI servers put the client connection's socket in the environ: gunicorn (the image)
# and werkzeug's server (`flask run`, the in-process test server). The pipeline reads it through
# client_socket() so that hang-up watching and body deadlines work under either.
_SOCKET_KEYS = ("gunicorn.socket", "werkzeug.socket")
_HANG_UP = select.EPOLLRDHUP


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

    __slots__ = ("cancel", "stop", "expired", "upstream_sock", "upstream_cut", "_lock",
                 "_done")

    def __init__(self):
        self.cancel = threading.Event()
        self.stop = threading.Event()
        self.expired = False
        self.upstream_sock: socket.socket | None = None
        self.upstream_cut = False
        self._lock = threading.Lock()
        self._done = False

    def hand_back_upstream(self) -> bool:
        """From now on no hang-up or deadline may shut the upstream connection down: urllib3 is
        about to put it back in its pool (its answer was read to the end), where another
        request may take it at once, or the client already has the whole answer. False when
        one already has cut it: such a connection is never pooled."""
        with self._lock:
            self.upstream_sock = None
            return not self.upstream_cut

    def finish(self) -> None:
        """The request is over: a late hang-up notice must not touch anything."""
        with self._lock:
            self._done = True
            self.upstream_sock = None

    def set_upstream_socket(self, sock) -> None:
        with self._lock:
            self.upstream_sock = sock
            if self.stop.is_set():
                self._cut()

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
            self._cut()

    def _cut(self) -> None:
        _shutdown(self.upstream_sock)
        self.upstream_cut = True


def _shutdown(sock) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


class DisconnectWatcher:
    """One thread and one epoll set for the client sockets of every in-flight request.

    `watch` and `unwatch` change the set themselves (epoll_ctl is safe while the thread waits
    in epoll_wait), so a request costs two system calls and never wakes the thread. A socket is
    watched for EPOLLRDHUP, the peer closing its side (errors and resets are always reported),
    not for readability: a kept-alive client that sends its next request as soon as it has
    read an answer does not wake the thread either."""

    _closed = False

    def __init__(self):
        self._epoll = select.epoll()
        self._lock = threading.Lock()
        self._watched: dict[int, tuple] = {}        # fd -> (socket, InFlight)
        self._wake_r, self._wake_w = os.pipe()     # only to stop the thread
        self._epoll.register(self._wake_r, select.EPOLLIN)
        self._thread = threading.Thread(target=self._run, name="disconnect-watcher", daemon=True)
        self._thread.start()

    def watch(self, client_sock, inflight: InFlight) -> int:
        """Start watching; returns the descriptor to pass to unwatch()."""
        fd = client_sock.fileno()
        with self._lock:
            if self._closed:
                return fd
            self._watched[fd] = (client_sock, inflight)
            try:
                self._epoll.register(fd, _HANG_UP)
            except FileExistsError:
                self._epoll.modify(fd, _HANG_UP)
            except OSError:
                del self._watched[fd]               # closed already: nothing to watch
        return fd

    def unwatch(self, fd: int) -> None:
        with self._lock:
            if self._closed or self._watched.pop(fd, None) is None:
                return              # never watched, or already dropped by _check
            try:
                self._epoll.unregister(fd)
            except OSError:
                pass                # closed already: the kernel forgot it with the socket

    def close(self) -> None:
        """Stop the thread and release its descriptors (an app built and dropped in one
        process, as tests do, would otherwise leave them behind)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            os.write(self._wake_w, b"x")
        self._thread.join(5)

    def _run(self) -> None:
        while not self._closed:
            try:
                events = self._epoll.poll(5.0)
            except OSError:
                continue
            for fd, _ in events:
                if fd != self._wake_r:
                    self._check(fd)
        with self._lock:
            self._epoll.close()
            os.close(self._wake_r)
            os.close(self._wake_w)

    def _check(self, fd: int) -> None:
        with self._lock:
            entry = self._watched.get(fd)
        if entry is None:
            return                  # unwatched since the event
        sock, inflight = entry
        try:
            data = sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except BlockingIOError:
            return                  # an event about a socket this descriptor no longer is
        except OSError:
            data = b""
        with self._lock:
            if self._watched.get(fd) is entry:
                del self._watched[fd]
                try:
                    self._epoll.unregister(fd)
                except OSError:
                    pass
        if data == b"":
            inflight.abort()
        # Data before the end means the client sent more (a pipelined request) and then closed
        # its side: not a hang-up while this answer is owed. Watching stops either way.
