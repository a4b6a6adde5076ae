"""Relaying a streamed (SSE) answer to the client event by event, as it arrives.

Bytes are forwarded up to the last complete event boundary, so the client always receives whole
events: when the upstream fails mid-stream, the proxy can end the stream with a well-formed error
event in the family's format instead of a half event. With token counting on, each event also
goes through the accountant, which may drop the usage-only chunk the client did not ask for.
"""

from __future__ import annotations

import logging
import time

from requests.exceptions import RequestException
from urllib3.exceptions import HTTPError as Urllib3Error
from urllib3.exceptions import ReadTimeoutError

from . import upstream
from .errors import stream_error_event

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


class StreamRelay:
    """The WSGI body iterator of one streamed answer; `exchange` records how it ended."""

    def __init__(self, exchange, response, first_chunk: bytes, accountant=None, parser=None):
        self.exchange = exchange
        self.response = response
        self.first_chunk = first_chunk
        self.accountant = accountant
        self.parser = parser

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
            self.response.close()
            if not completed and exchange.outcome == "ok":
                # The generator was closed early: the client stopped reading.
                exchange.outcome = "client_gone"
            if self.accountant is not None:
                exchange.usage = self.accountant.finish(
                    disconnected=exchange.outcome == "client_gone")

    def _pieces(self):
        """Upstream bytes regrouped into whole events; ends with an error event on failure."""
        pending = self.first_chunk
        chunk = self.first_chunk
        while True:
            if self.parser is not None:
                out = through_accountant(self.parser, self.accountant, chunk)
            else:
                cut = complete_prefix_length(pending)
                out, pending = pending[:cut], pending[cut:]
            yield out
            try:
                chunk = upstream.read_some(self.response)
            except (ReadTimeoutError, Urllib3Error, RequestException, OSError) as exc:
                yield self._failed(exc)
                return
            if not chunk:
                # The connection is back in urllib3's pool: it is no longer ours to cut.
                self.exchange.inflight.forget_upstream()
                tail = self.parser.flush() if self.parser is not None else pending
                if tail and not tail.endswith((b"\n", b"\r")):
                    yield self._cut()     # the upstream stopped in the middle of a line
                    return
                # A last event without its blank line is passed on as it is (byte exactness).
                yield tail
                return
            if self.parser is None:
                pending += chunk

    def _cut(self) -> bytes:
        """Half an event is garbage to every SSE parser: drop it and end with an error event."""
        exchange = self.exchange
        exchange.outcome = "truncated_response"
        exchange.metrics.upstream_error("truncated_response")
        return stream_error_event(exchange.family, "The upstream ended the stream in the middle "
                                  "of an event.", "truncated_response")

    def _failed(self, exc) -> bytes:
        exchange = self.exchange
        if exchange.inflight.cancel.is_set():
            exchange.outcome = "client_gone"
            return b""
        timed_out = isinstance(exc, ReadTimeoutError) or "timed out" in str(exc)
        kind = "upstream_timeout" if timed_out else "read_error"
        exchange.outcome = kind
        exchange.metrics.upstream_error(kind)
        log.warning("upstream stream failed after %d bytes: %s", exchange.sent_bytes, kind)
        message = ("The upstream stopped sending for longer than UPSTREAM_READ_TIMEOUT."
                   if timed_out else "The upstream connection broke in the middle of the stream.")
        return stream_error_event(exchange.family, message, kind)
