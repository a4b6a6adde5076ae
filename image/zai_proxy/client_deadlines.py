"""Total deadlines for what a worker thread waits on a client for: the rest of a request head,
the request body, and each write of the answer.

A thread serving a connection blocks in recv() or send() for as long as the client likes: a body
sent one byte per second, or an answer the client never reads, would hold the thread (and, for a
stream, a MAX_WORKERS slot and an upstream connection) indefinitely. A per-pause socket timeout
does not help against a client that keeps trickling. So every phase gets a total deadline:

  head   the head is normally read by the worker's main loop before a thread is involved; this
         covers the rare head a thread has to finish reading (CLIENT_HEADER_TIMEOUT)
  body   from the moment the application is called until it has read the body to its end or
         starts answering (CLIENT_BODY_TIMEOUT)
  write  each write of the answer — one piece of a stream, or a whole buffered answer, head
         included — must be taken by the client within CLIENT_WRITE_TIMEOUT; time the
         application spends producing the next piece does not count

One thread per worker process checks the deadlines. When one passes it records which
(`Deadline.expired`) and shuts the socket down. For the head and the body, the reading side: the
blocked recv() returns at once and the request is answered 408 (`proxy._read_body` reads
`expired`). For a write, both sides, and the close that follows resets the connection (a FIN
would wait behind the bytes the client does not read): the blocked send() fails, the answer's
iterator is closed, which closes an upstream stream without returning its connection to the
pool, and the request is logged with outcome `write_timeout`. Each cut is counted in
`zai_proxy_client_timeouts_total{phase}`.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from typing import Callable

ENVIRON_KEY = "zai_proxy.client_deadline"
_current = threading.local()


class Deadline:
    """The deadlines of the request a thread is serving on one client connection."""

    __slots__ = ("sock", "req", "head_due", "body_due", "write_due", "expired", "body_done")

    def __init__(self, sock, head_due: float | None):
        self.sock = sock
        self.req = None               # gunicorn's request, once its head is parsed
        self.head_due = head_due
        self.body_due: float | None = None
        self.write_due: float | None = None
        self.expired: str | None = None  # "head", "body" or "write" once one has passed
        self.body_done = True


def expired(environ) -> str | None:
    """Which deadline of this request has passed, if any (None outside gunicorn)."""
    deadline = environ.get(ENVIRON_KEY)
    return deadline.expired if deadline is not None else None


class ClientDeadlines:
    def __init__(self, body_timeout: float, write_timeout: float,
                 on_expired: Callable[[str], None], tick: float = 0.1):
        self.body_timeout = body_timeout
        self.write_timeout = write_timeout
        self._on_expired = on_expired
        self._tick = tick
        self._lock = threading.Lock()
        self._active: set[Deadline] = set()
        threading.Thread(target=self._run, name="client-deadlines", daemon=True).start()

    # The worker thread's side ---------------------------------------------------------------
    def begin(self, sock, head_due: float | None) -> Deadline:
        """This thread starts serving a connection (a head may still be incomplete)."""
        deadline = Deadline(sock, head_due)
        with self._lock:
            self._active.add(deadline)
        _current.deadline = deadline
        return deadline

    def head_done(self, req) -> None:
        deadline = getattr(_current, "deadline", None)
        if deadline is not None:
            deadline.head_due = None
            deadline.req = req

    def end(self, deadline: Deadline) -> None:
        # Under the lock: once this returns, the checker thread never touches the socket again
        # (the connection may go on to serve another request, or be closed and its fd reused).
        with self._lock:
            self._active.discard(deadline)
        _current.deadline = None

    def wrap(self, app):
        """The WSGI application with this thread's deadlines applied to its body and answer."""
        def timed_app(environ, start_response):
            deadline = getattr(_current, "deadline", None)
            if deadline is None:
                return app(environ, start_response)
            environ[ENVIRON_KEY] = deadline
            length = _content_length(environ)
            if length or "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower():
                deadline.body_done = False
                deadline.body_due = time.monotonic() + self.body_timeout
                invite = (environ.get("gunicorn.socket")
                          if getattr(deadline.req, "continue_on_read", False) else None)
                environ["wsgi.input"] = _TimedInput(environ["wsgi.input"], deadline, length,
                                                    invite)

            def timed_start_response(status, headers, exc_info=None):
                deadline.body_due = None      # answering: the application reads no more
                closing = any(name.lower() == "connection" and value.lower() == "close"
                              for name, value in headers)
                if (closing or not deadline.body_done) and deadline.req is not None:
                    # gunicorn drops a Connection header the application sets, and would then
                    # drain an unread body on this thread; the client is told to reconnect.
                    deadline.req.must_close = True
                return start_response(status, headers, exc_info)

            return _TimedAnswer(app(environ, timed_start_response), deadline, self.write_timeout)
        return timed_app

    # The checker thread ----------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            time.sleep(self._tick)
            now = time.monotonic()
            cut = []
            with self._lock:
                for deadline in self._active:
                    phase = _passed(deadline, now)
                    if phase is not None and deadline.expired is None:
                        deadline.expired = phase
                        _cut(deadline.sock, phase)
                        cut.append(phase)
            for phase in cut:
                self._on_expired(phase)


def _passed(deadline: Deadline, now: float) -> str | None:
    for phase, due in (("head", deadline.head_due), ("body", deadline.body_due),
                       ("write", deadline.write_due)):
        if due is not None and due <= now:
            return phase
    return None


def _cut(sock, phase: str) -> None:
    try:
        if phase == "write":
            # The client reads nothing, so a FIN would wait behind the unsent bytes forever:
            # the close that follows resets the connection and drops them.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.shutdown(socket.SHUT_RDWR)
        else:
            sock.shutdown(socket.SHUT_RD)
    except OSError:
        pass


def _content_length(environ) -> int | None:
    try:
        return int(environ.get("CONTENT_LENGTH") or 0) or None
    except ValueError:
        return None


class _TimedInput:
    """wsgi.input that notices when the body has been read to its end. With `invite` (the
    client's socket, for a request that sent `Expect: 100-continue`), the first read sends
    `100 Continue` first: the client sends its body only once the application asks for it."""

    def __init__(self, stream, deadline: Deadline, length: int | None, invite=None):
        self._stream = stream
        self._deadline = deadline
        self._left = length
        self._invite = invite

    def _send_continue(self) -> None:
        sock, self._invite = self._invite, None
        try:
            sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        except OSError:
            pass          # the client is gone: the read that follows says so

    def _account(self, data: bytes, short: bool) -> bytes:
        if self._left is not None:
            self._left -= len(data)
        if not data or short or (self._left is not None and self._left <= 0):
            self._deadline.body_done = True
            self._deadline.body_due = None
        return data

    def read(self, size=None):
        if self._invite is not None:
            self._send_continue()
        data = self._stream.read(size)
        # gunicorn's Body.read returns less than asked only at the end of the body.
        return self._account(data, size is None or (size >= 0 and len(data) < size))

    def readline(self, size=None):
        if self._invite is not None:
            self._send_continue()
        return self._account(self._stream.readline(size), False)

    def readlines(self, hint=None):
        if self._invite is not None:
            self._send_continue()
        lines = self._stream.readlines(hint)
        self._account(b"".join(lines), True)
        return lines

    def __iter__(self):
        while True:
            line = self.readline()
            if not line:
                return
            yield line


class _TimedAnswer:
    """The answer's iterable: a write deadline runs while gunicorn writes each piece."""

    def __init__(self, inner, deadline: Deadline, timeout: float):
        self._inner = inner
        self._pieces = iter(inner)
        self._deadline = deadline
        self._timeout = timeout

    def __iter__(self):
        return self

    def __next__(self):
        deadline = self._deadline
        deadline.write_due = None         # the previous piece has been written
        try:
            piece = next(self._pieces)
        except StopIteration:
            # gunicorn still writes the head of an empty answer, or the last chunk, on close.
            deadline.write_due = time.monotonic() + self._timeout
            raise
        deadline.write_due = time.monotonic() + self._timeout
        return piece

    def close(self):
        self._deadline.write_due = None
        close = getattr(self._inner, "close", None)
        if close is not None:
            close()
