"""A raw-socket fake upstream: each test scripts the exact bytes, pauses and closes of the answer.

The aiohttp fake (`tools/fake_zai`) speaks correct HTTP; real upstreams and the intermediaries in
front of them do not always. This one sends whatever a test writes, byte for byte, so a test can
produce interim 1xx responses, any framing (Content-Length, chunked, close-delimited), bodies cut
short, stalls, invalid or repeated header fields, gzip, one endless SSE event... It records every
request it receives and on which connection, and keeps connections alive between answers, so a
test sees whether the proxy re-sent a request and whether it reused a connection.

    from tools.raw_upstream import RawUpstream, Pause, Close, Hold, response, head, chunked

    with RawUpstream() as upstream:                  # 127.0.0.1, a free port, one thread each
        upstream.reply(head(103, [("Link", "</x>")]),             # an interim response…
                       response(200, b'{"ok":1}', content_type="application/json"))
        upstream.reply(head(200, [("Content-Length", "100")]), b"short", Close())
        ... point the proxy at upstream.url and send requests ...
        first, second = upstream.wait_requests(2)   # method, target, headers, body, connection
        assert first.connection != second.connection
        assert upstream.connections[0].closed_by == "client"

Answers
  `reply(*steps)` queues one answer (first in, first out); `default(*steps)` is sent when the
  queue is empty (at first: 200 `{}` as JSON); `handler = fn(request) -> steps or None` decides
  per request (None falls back to the queue). A step is:
    bytes            sent as they are (one sendall)
    Pause(s)         sleep s seconds
    Wait(event)      wait until the test sets a threading.Event (deterministic ordering)
    Close()          close the connection (FIN) — ends a close-delimited body
    Reset()          close it with a TCP RST
    Hold()           send nothing more and keep the connection open until the client closes it
                     (or the server stops): an upstream that stalls forever
  Lists of steps are flattened, so helpers can return several. After an answer that does not end
  the connection, the next request is read from the same connection (keep-alive), unless the
  request said `Connection: close`.

Building answers
  head(status, headers)        status line and header block (values may be bytes: anything goes)
  response(status, body, …)    a whole answer: framing="length" | "chunked" | "close", gzip=True,
                               extra headers
  chunk(data), chunked(*parts) chunked transfer coding (`chunked` adds the last chunk)
  gzip_bytes(data)             gzip as a server would send it
  sse(*events)                 `data: …` events (dicts become JSON); openai_sse / anthropic_sse
                               build each family's stream of text deltas with its terminal event

What was received
  `requests`, `connections` (snapshots), `wait_requests(n)`, `wait_closed(connection_id)`.
  Request: connection (id, from 0), index (n-th request on that connection), method, target,
  headers (list of (name, value), in order, repeats kept), body (chunked bodies decoded), raw.
  Connection: id, opened_at, closed_at, closed_by ("client" when it closed first, "server"),
  requests.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import socket
import struct
import threading
import time
from typing import Callable, Iterable

MAX_HEAD = 1024 * 1024


# Steps -------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Pause:
    seconds: float


@dataclasses.dataclass(frozen=True)
class Wait:
    event: threading.Event
    timeout: float = 30.0


@dataclasses.dataclass(frozen=True)
class Close:
    pass


@dataclasses.dataclass(frozen=True)
class Reset:
    pass


@dataclasses.dataclass(frozen=True)
class Hold:
    pass


_ENDS_CONNECTION = (Close, Reset, Hold)


def _flatten(steps) -> list:
    out = []
    for step in steps:
        if isinstance(step, (list, tuple)):
            out.extend(_flatten(step))
        else:
            out.append(step)
    return out


# Building answers ----------------------------------------------------------------------------
def _latin1(value) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode("latin-1")


def head(status: int, headers: Iterable | dict = (), reason: str | None = None,
         version: str = "HTTP/1.1") -> bytes:
    """`HTTP/1.1 <status> <reason>` and the header block, ending with the blank line."""
    items = headers.items() if isinstance(headers, dict) else headers
    reason = _REASONS.get(status, "Status") if reason is None else reason
    lines = [f"{version} {status} {reason}".encode("latin-1")]
    lines += [_latin1(name) + b": " + _latin1(value) for name, value in items]
    return b"\r\n".join(lines) + b"\r\n\r\n"


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data) if data else b""


def chunked(*parts: bytes, last: bool = True) -> bytes:
    """The parts as chunks, then (unless last=False) the last chunk that ends the body."""
    return b"".join(chunk(p) for p in parts) + (b"0\r\n\r\n" if last else b"")


def gzip_bytes(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


def response(status: int = 200, body: bytes = b"", headers: Iterable | dict = (), *,
             content_type: str | None = None, framing: str = "length",
             gzip: bool = False) -> list:
    """A whole answer as steps: head, body framed as asked, and Close() when close-delimited."""
    body = body.encode() if isinstance(body, str) else body
    items = list(headers.items() if isinstance(headers, dict) else headers)
    if content_type:
        items.append(("Content-Type", content_type))
    if gzip:
        body = gzip_bytes(body)
        items.append(("Content-Encoding", "gzip"))
    if framing == "length":
        items.append(("Content-Length", str(len(body))))
        return [head(status, items), body]
    if framing == "chunked":
        items.append(("Transfer-Encoding", "chunked"))
        return [head(status, items), chunked(body)]
    if framing == "close":
        items.append(("Connection", "close"))
        return [head(status, items), body, Close()]
    raise ValueError(f"framing must be length, chunked or close, not {framing!r}")


def sse(*events) -> bytes:
    """Server-sent events: each a `data:` line (a dict becomes JSON), or bytes/str as they are."""
    out = []
    for event in events:
        if isinstance(event, dict):
            event = "data: " + json.dumps(event) + "\n\n"
        out.append(_latin1(event) if isinstance(event, bytes) else event.encode())
    return b"".join(out)


def openai_sse(texts: Iterable[str], model: str = "glm-4.7", done: bool = True) -> bytes:
    """An OpenAI chat stream of `texts`, a finish_reason chunk, then `data: [DONE]`."""
    base = {"id": "chatcmpl-raw", "object": "chat.completion.chunk", "created": 0,
            "model": model}
    events = [dict(base, choices=[{"index": 0, "delta": {"content": t}}]) for t in texts]
    events.append(dict(base, choices=[{"index": 0, "delta": {}, "finish_reason": "stop"}]))
    return sse(*events, *(["data: [DONE]\n\n"] if done else []))


def anthropic_sse(texts: Iterable[str], model: str = "glm-4.7", stop: bool = True) -> bytes:
    """An Anthropic messages stream of `texts`, ending with `message_stop` unless stop=False."""
    def event(name, payload):
        return f"event: {name}\ndata: {json.dumps(dict(payload, type=name))}\n\n"
    parts = [event("message_start", {"message": {
        "id": "msg_raw", "type": "message", "role": "assistant", "model": model, "content": [],
        "stop_reason": None, "usage": {"input_tokens": 1, "output_tokens": 0}}}),
        event("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}})]
    parts += [event("content_block_delta", {"index": 0, "delta": {"type": "text_delta",
                                                                  "text": t}}) for t in texts]
    parts += [event("content_block_stop", {"index": 0}),
              event("message_delta", {"delta": {"stop_reason": "end_turn"},
                                      "usage": {"output_tokens": 1}})]
    if stop:
        parts.append(event("message_stop", {}))
    return "".join(parts).encode()


_REASONS = {100: "Continue", 101: "Switching Protocols", 102: "Processing", 103: "Early Hints",
            200: "OK", 204: "No Content", 400: "Bad Request", 401: "Unauthorized",
            404: "Not Found", 429: "Too Many Requests", 500: "Internal Server Error",
            502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}


# What was received ---------------------------------------------------------------------------
@dataclasses.dataclass
class Request:
    connection: int
    index: int
    method: str
    target: str
    version: str
    headers: list[tuple[str, str]]
    body: bytes
    raw: bytes
    received_at: float

    def header(self, name: str, default: str | None = None) -> str | None:
        """The first value of a header field (case-insensitive name)."""
        values = self.headers_named(name)
        return values[0] if values else default

    def headers_named(self, name: str) -> list[str]:
        name = name.lower()
        return [v for n, v in self.headers if n.lower() == name]


@dataclasses.dataclass
class Connection:
    id: int
    opened_at: float
    closed_at: float | None = None
    closed_by: str | None = None          # "client" or "server"; None while open
    requests: int = 0


class _ClientClosed(Exception):
    pass


class _Stopped(Exception):
    """stop() was called, or the request head was absurdly large: the server ends it."""


class _Reader:
    """Buffered reads from one connection; raises _ClientClosed at EOF."""

    def __init__(self, sock: socket.socket, stopping: threading.Event):
        self.sock, self.stopping, self.buf = sock, stopping, b""

    def _more(self) -> None:
        while True:
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                if self.stopping.is_set():
                    raise _Stopped() from None
                continue
            except OSError:
                data = b""
            if not data:
                raise _Stopped() if self.stopping.is_set() else _ClientClosed()
            self.buf += data
            return

    def until(self, marker: bytes, limit: int = MAX_HEAD) -> bytes:
        while marker not in self.buf:
            if len(self.buf) > limit:
                raise _Stopped()
            self._more()
        out, _, self.buf = self.buf.partition(marker)
        return out + marker

    def exactly(self, size: int) -> bytes:
        while len(self.buf) < size:
            self._more()
        out, self.buf = self.buf[:size], self.buf[size:]
        return out


def _read_request(reader: _Reader) -> tuple[str, str, str, list, bytes, bytes]:
    raw = reader.until(b"\r\n\r\n")
    lines = raw[:-4].decode("latin-1").split("\r\n")
    while lines and not lines[0]:
        lines.pop(0)          # a client may send blank lines before a request line
    method, target, version = (lines[0].split(" ", 2) + ["", ""])[:3]
    headers = []
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.append((name.strip(), value.strip()))
    fields = {n.lower(): v for n, v in headers}
    body = b""
    if "chunked" in fields.get("transfer-encoding", "").lower():
        while True:
            size_line = reader.until(b"\r\n")
            raw += size_line
            size = int(size_line.split(b";")[0].strip() or b"0", 16)
            if size == 0:
                raw += reader.until(b"\r\n")      # (no trailers expected) the final CRLF
                break
            data = reader.exactly(size + 2)
            raw += data
            body += data[:-2]
    elif fields.get("content-length", "").strip().isdigit():
        body = reader.exactly(int(fields["content-length"]))
        raw += body
    return method, target, version, headers, body, raw


# The server ------------------------------------------------------------------------------------
class RawUpstream:
    def __init__(self, host: str = "127.0.0.1"):
        self._listener = socket.create_server((host, 0))
        self._listener.settimeout(0.2)
        self.port = self._listener.getsockname()[1]
        self.url = f"http://{host}:{self.port}"
        self.handler: Callable[[Request], list | None] | None = None
        self._queue: list[list] = []
        self._default = response(200, b"{}", content_type="application/json")
        self._requests: list[Request] = []
        self._connections: list[Connection] = []
        self._socks: dict[int, socket.socket] = {}
        self._changed = threading.Condition()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._acceptor = threading.Thread(target=self._accept_loop, name="raw-upstream",
                                          daemon=True)

    # Scripting
    def reply(self, *steps) -> None:
        """Queue the answer to one request (first in, first out)."""
        with self._changed:
            self._queue.append(_flatten(steps))

    def default(self, *steps) -> None:
        """The answer to requests when no queued answer is left."""
        with self._changed:
            self._default = _flatten(steps)

    # What was received
    @property
    def requests(self) -> list[Request]:
        with self._changed:
            return list(self._requests)

    @property
    def connections(self) -> list[Connection]:
        with self._changed:
            return [dataclasses.replace(c) for c in self._connections]

    def wait_requests(self, count: int, timeout: float = 10.0) -> list[Request]:
        """The requests received, once there are at least `count` of them."""
        with self._changed:
            if not self._changed.wait_for(lambda: len(self._requests) >= count, timeout):
                raise TimeoutError(f"{len(self._requests)} request(s) received in {timeout} s, "
                                   f"expected {count}")
            return list(self._requests)

    def wait_closed(self, connection: int, timeout: float = 10.0) -> Connection:
        """The connection's record once it has closed (by either side)."""
        def closed():
            return (connection < len(self._connections)
                    and self._connections[connection].closed_at is not None)
        with self._changed:
            if not self._changed.wait_for(closed, timeout):
                raise TimeoutError(f"connection {connection} still open after {timeout} s")
            return dataclasses.replace(self._connections[connection])

    def clear(self) -> None:
        """Forget what was received and the queued answers (connections stay open)."""
        with self._changed:
            self._requests.clear()
            self._queue.clear()

    # Life cycle
    def start(self) -> "RawUpstream":
        self._acceptor.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        try:
            self._listener.shutdown(socket.SHUT_RDWR)    # wakes a blocked accept() at once
        except OSError:
            pass
        self._acceptor.join(5)
        self._listener.close()
        with self._changed:
            socks = list(self._socks.values())
        for sock in socks:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for thread in self._threads:
            thread.join(5)

    def __enter__(self) -> "RawUpstream":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # Internals
    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                sock, _ = self._listener.accept()
            except (socket.timeout, OSError):
                continue
            with self._changed:
                record = Connection(len(self._connections), time.monotonic())
                self._connections.append(record)
                self._socks[record.id] = sock
                self._changed.notify_all()
            thread = threading.Thread(target=self._serve, args=(sock, record),
                                      name=f"raw-upstream-{record.id}", daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, sock: socket.socket, record: Connection) -> None:
        sock.settimeout(0.2)      # so that reads and holds notice stop()
        reader = _Reader(sock, self._stopping)
        closed_by = "server"
        try:
            while True:
                method, target, version, headers, body, raw = _read_request(reader)
                request = Request(record.id, record.requests, method, target, version, headers,
                                  body, raw, time.monotonic())
                steps = self.handler(request) if self.handler else None
                with self._changed:
                    record.requests += 1
                    self._requests.append(request)
                    if steps is None:
                        steps = self._queue.pop(0) if self._queue else self._default
                    self._changed.notify_all()
                if not self._play(sock, reader, _flatten(steps)):
                    break
                if (request.header("Connection") or "").lower() == "close":
                    break
        except _Stopped:
            pass
        except (_ClientClosed, OSError):
            # The client closed (or reset while we wrote), unless stop() shut the socket down:
            # that reads the same from this side.
            closed_by = "server" if self._stopping.is_set() else "client"
        finally:
            self._close(sock, record, closed_by)

    def _play(self, sock, reader: _Reader, steps: list) -> bool:
        """Send one answer; False when it ended the connection."""
        for step in steps:
            if isinstance(step, (bytes, bytearray)):
                sock.sendall(step)
            elif isinstance(step, Pause):
                if self._stopping.wait(step.seconds):
                    raise _Stopped()
            elif isinstance(step, Wait):
                step.event.wait(step.timeout)
            elif isinstance(step, Reset):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                return False
            elif isinstance(step, Close):
                return False
            elif isinstance(step, Hold):
                while True:
                    reader._more()          # until the client closes (raises) or we stop
            else:
                raise TypeError(f"not a step: {step!r}")
        return True

    def _close(self, sock, record: Connection, closed_by: str) -> None:
        try:
            sock.close()
        finally:
            with self._changed:
                record.closed_at = time.monotonic()
                record.closed_by = closed_by
                self._socks.pop(record.id, None)
                self._changed.notify_all()
