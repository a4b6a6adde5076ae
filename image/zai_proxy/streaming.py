"""Relaying a streamed (SSE) answer to the client event by event, as it arrives.

Bytes are forwarded up to the last complete event boundary, so the client always receives whole
events: when the upstream fails mid-stream, the proxy can end the stream with a well-formed error
event in the family's format instead of a half event. How upstream reads become whole events is
the request's accountant's choice: `WholeEvents` cuts at the last boundary; with token counting
on, `AccountedEvents` also hands each event to the accountant, which may drop the usage-only
chunk the client did not ask for.
"""

from __future__ import annotations

import logging
import time

from . import answers, errors
from .errors import stream_error_event
from .upstream import TransportError

log = logging.getLogger("zai_proxy.streaming")

_BOUNDARIES = (b"\n\n", b"\r\n\r\n", b"\r\r")


def complete_prefix_length(buffer: bytes) -> int:
    """Length of the longest prefix of `buffer` that ends on an SSE event boundary."""
    end = 0
    for boundary in _BOUNDARIES:
        at = buffer.rfind(boundary)
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
    """Upstream reads regrouped into whole events; a partial one waits for the next read."""

    __slots__ = ("pending",)

    def __init__(self):
        self.pending = b""

    def feed(self, chunk: bytes) -> bytes:
        pending = self.pending + chunk if self.pending else chunk
        cut = complete_prefix_length(pending)
        self.pending = pending[cut:]
        return pending[:cut]

    def tail(self) -> bytes:
        return self.pending


class AccountedEvents:
    """Whole events, each read by the request's accountant on its way to the client."""

    __slots__ = ("parser", "accountant")

    def __init__(self, accountant):
        from .sse import SSEParser
        self.parser = SSEParser()
        self.accountant = accountant

    def feed(self, chunk: bytes) -> bytes:
        return through_accountant(self.parser, self.accountant, chunk)

    def tail(self) -> bytes:
        return self.parser.flush()


class StreamRelay:
    """The WSGI body iterator of one streamed answer; `exchange` records how it ended."""

    def __init__(self, exchange, answer, first_chunk: bytes):
        self.exchange = exchange
        self.answer = answer
        self.first_chunk = first_chunk
        self.events = exchange.accountant.stream_events()

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
            if not completed and exchange.outcome == "ok":
                # The generator was closed early: the client stopped reading.
                exchange.outcome = "client_gone"
            exchange.usage = exchange.accountant.finish(
                disconnected=exchange.outcome == "client_gone")

    def _pieces(self):
        """Upstream bytes regrouped into whole events; ends with an error event on failure."""
        events, chunk = self.events, self.first_chunk
        while True:
            yield events.feed(chunk)
            try:
                chunk = self.answer.read_some()
            except TransportError as failure:
                yield self._failed(failure.kind)
                return
            if not chunk:
                # The connection is back in urllib3's pool: it is no longer ours to cut.
                self.exchange.inflight.forget_upstream()
                tail = events.tail()
                failure = answers.stream_end(tail)
                yield self._failed(failure) if failure else tail
                return

    def _failed(self, kind: str) -> bytes:
        """Half an event is garbage to every SSE parser: what the upstream failed to finish is
        dropped, and the stream ends with an error event in the family's format."""
        exchange = self.exchange
        if kind != errors.TRUNCATED and exchange.inflight.cancel.is_set():
            exchange.outcome = "client_gone"
            return b""
        exchange.outcome = kind
        exchange.metrics.upstream_error(kind)
        if kind != errors.TRUNCATED:
            log.warning("upstream stream failed after %d bytes: %s", exchange.sent_bytes, kind)
        return stream_error_event(exchange.family, errors.stream_failure_message(kind), kind)
