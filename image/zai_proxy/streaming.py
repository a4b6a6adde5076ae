"""Relaying a streamed (SSE) answer to the client event by event, as it arrives.

Bytes are forwarded up to the last complete event boundary, so the client always receives whole
events: when the upstream fails mid-stream, the proxy can end the stream with a well-formed error
event in the family's format instead of a half event. How upstream reads become whole events is
the request's accountant's choice: `WholeEvents` cuts at the last boundary; with token counting
on, `AccountedEvents` also hands each event to the accountant, which may drop the usage-only
chunk the client did not ask for. A body in a coding the proxy does not decode is relayed as it
comes (`RawBytes`): its events cannot be seen.

A stream is complete only when its last event is its family's terminal event
(answers.stream_end): a close-delimited stream cut on an event boundary, or a chunked one that
ends cleanly too early, otherwise looks like a clean end. Such a stream, like one that breaks,
ends with an error event, is counted in `zai_proxy_upstream_errors_total` and logged with its
failure kind, and its usage is marked incomplete.

Cost: each byte is searched for an event boundary once (a search resumes where the previous one
stopped), so one very long event costs time linear in its size; an event longer than
`sse.DEFAULT_MAX_EVENT_BYTES` is released as it is, so memory stays bounded.
"""

from __future__ import annotations

import logging
import time

from . import answers, errors
from .errors import stream_error_event
from .sse import DEFAULT_MAX_EVENT_BYTES
from .upstream import TransportError

log = logging.getLogger("zai_proxy.streaming")

_BOUNDARIES = (b"\n\n", b"\r\n\r\n", b"\r\r")


def complete_prefix_length(buffer, start: int = 0) -> int:
    """Length of the longest prefix of `buffer` that ends on an SSE event boundary, looking for
    boundaries that end after `start` only (0 if there is none)."""
    end = 0
    for boundary in _BOUNDARIES:
        at = buffer.rfind(boundary, start)
        if at >= 0:
            end = max(end, at + len(boundary))
    return end


def plain_events(chunk: bytes) -> bool:
    """True when `chunk` is whole LF-terminated events that cannot carry usage or the model."""
    return (chunk[-2:] == b"\n\n" and b"\r" not in chunk and b'"usage"' not in chunk
            and b"message_start" not in chunk)


def through_accountant(parser, accountant, chunk: bytes) -> bytes:
    """The complete events of `chunk` the client gets, once the accountant has read them."""
    if parser.idle and plain_events(chunk):
        # The usual read: whole events of generated text. Nothing in them needs parsing now.
        accountant.on_plain_events(chunk)
        return chunk
    return b"".join(event.raw for event in parser.feed(chunk) if accountant.on_event(event))


class WholeEvents:
    """Upstream reads regrouped into whole events; a partial one waits for the next read.

    `scanned` counts the bytes searched for boundaries (each at most once, plus 3 bytes of
    overlap per read); `mid_event` is True while the client's stream stands inside an event that
    was too long to hold back."""

    __slots__ = ("pending", "scanned", "mid_event", "_max_event_bytes")

    def __init__(self, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES):
        self.pending = bytearray()
        self.scanned = 0
        self.mid_event = False
        self._max_event_bytes = max_event_bytes

    def feed(self, chunk: bytes) -> bytes:
        pending = self.pending
        if not pending:
            # The usual read: whole events, perhaps with the start of the next one.
            self.scanned += len(chunk)
            cut = complete_prefix_length(chunk)
            if cut == len(chunk):
                self.mid_event = False
                return chunk
            pending += memoryview(chunk)[cut:]
            return self._released(chunk[:cut]) if cut else self._overflow()
        # A boundary may begin in the last 3 bytes already held: search from there on only.
        start = max(0, len(pending) - 3)
        pending += chunk
        self.scanned += len(pending) - start
        cut = complete_prefix_length(pending, start)
        if not cut:
            return self._overflow()
        out = bytes(pending[:cut])
        del pending[:cut]
        return self._released(out)

    def _released(self, out: bytes) -> bytes:
        self.mid_event = False
        return out

    def _overflow(self) -> bytes:
        """No boundary yet: hold the event back, unless it has grown too long to hold."""
        if len(self.pending) <= self._max_event_bytes:
            return b""
        out = bytes(self.pending)
        self.pending.clear()
        self.mid_event = True
        return out

    def tail(self) -> bytes:
        out = bytes(self.pending)
        self.pending.clear()
        return out


class AccountedEvents:
    """Whole events, each read by the request's accountant on its way to the client."""

    __slots__ = ("parser", "accountant")

    def __init__(self, accountant):
        from .sse import SSEParser
        self.parser = SSEParser()
        self.accountant = accountant

    @property
    def mid_event(self) -> bool:
        return self.parser.mid_event

    def feed(self, chunk: bytes) -> bytes:
        return through_accountant(self.parser, self.accountant, chunk)

    def tail(self) -> bytes:
        return self.parser.flush()


class RawBytes:
    """A body in a coding the proxy does not decode: relayed as it comes, events unseen."""

    __slots__ = ()
    mid_event = False

    def feed(self, chunk: bytes) -> bytes:
        return chunk

    def tail(self) -> bytes:
        return b""


class StreamRelay:
    """The WSGI body iterator of one streamed answer; `exchange` records how it ended."""

    def __init__(self, exchange, answer, first_chunk: bytes):
        self.exchange = exchange
        self.answer = answer
        self.first_chunk = first_chunk
        self.raw = answer.coding == answers.KEPT
        self.events = RawBytes() if self.raw else exchange.accountant.stream_events()
        self.last = b""               # the last non-empty piece relayed: where the end is judged
        self.incomplete = False
        # The terminal event is relayed: a client that hangs up now (the openai SDK closes on
        # `data: [DONE]`, before the upstream's last chunk is read) has the whole answer.
        self.ended = False

    def close(self) -> None:
        """The answer is dropped without being iterated (the server could not write its head):
        the upstream connection goes too."""
        self.answer.close()

    def __iter__(self):
        exchange = self.exchange
        completed = False
        try:
            for piece in self._pieces():
                if piece:
                    if exchange.first_byte_at is None:
                        exchange.first_byte_at = time.monotonic()
                    exchange.sent_bytes += len(piece)
                    yield piece
            completed = True
        finally:
            self.answer.close()
            if not completed and exchange.outcome == "ok" and not self.ended:
                # The generator was closed early: the client stopped reading.
                exchange.outcome = "client_gone"
            exchange.usage = exchange.accountant.finish(
                disconnected=exchange.outcome == "client_gone", incomplete=self.incomplete)

    def _pieces(self):
        """Upstream bytes regrouped into whole events; ends with an error event on failure."""
        events, chunk = self.events, self.first_chunk
        while True:
            piece = events.feed(chunk)
            if piece:
                self.last = piece
                if not self.raw and answers.ends_stream(self.exchange.family, piece):
                    self.ended = True
            yield piece
            try:
                chunk = self.answer.read_some()
            except TransportError as failure:
                yield self._failed(failure.kind)
                return
            if not chunk:
                tail = events.tail()
                end = None if self.raw else answers.stream_end(self.exchange.family,
                                                               self.last, tail)
                if end == answers.ENDED_EARLY:
                    if tail:     # a last line without its blank line: end its event first
                        tail += b"\n" if tail.endswith(b"\n") else b"\r\n"
                    yield tail + self._failed(errors.TRUNCATED, errors.no_terminal_event_message())
                elif end is not None:
                    yield self._failed(errors.TRUNCATED)
                else:
                    yield tail
                return

    def _failed(self, kind: str, message: str | None = None) -> bytes:
        """Half an event is garbage to every SSE parser: what the upstream failed to finish is
        dropped, and the stream ends with an error event in the family's format."""
        exchange = self.exchange
        if kind != errors.TRUNCATED and exchange.inflight.cancel.is_set():
            if not self.ended:
                exchange.outcome = "client_gone"
            return b""
        deadline = None
        if exchange.past_deadline():
            kind, deadline = errors.TIMEOUT, exchange.state.config.total_timeout
        self.incomplete = True
        exchange.outcome = kind
        exchange.metrics.upstream_error(kind)
        log.warning("upstream stream failed after %d bytes: %s", exchange.sent_bytes, kind,
                    extra={"fields": {"request_id": exchange.request_id, "error_type": kind}})
        if self.raw:
            return b""     # nothing can be added to a stream in a coding the proxy cannot write
        event = stream_error_event(exchange.family, message or errors.stream_failure_message(
            kind, deadline), kind)
        # After an event too long to hold back, the client's stream is inside it: end it first.
        return b"\n\n" + event if self.events.mid_event else event
