"""Incremental Server-Sent Events parsing that never changes a byte.

The relay forwards each event's `raw` bytes exactly as the upstream sent them (and `flush()`'s
tail at the end), so a client sees the upstream stream unchanged; the parsed `event`/`data`
fields only feed accounting. Chunk boundaries may fall anywhere, including between the CR and LF
of a CRLF or inside a multi-byte UTF-8 character: bytes are only decoded once a whole event is
known. Concatenating every `raw` and the final `flush()` always gives back the input.

Line endings follow the SSE spec: CRLF, LF or CR. A CR at the very end of the buffered bytes is
not taken as a line end until the next byte shows it is not the first half of a CRLF.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Two consecutive line ends = the blank line that ends an event. `\r(?!\n)` keeps a CRLF whole.
_EOL = rb"(?:\r\n|\r(?!\n)|\n)"
_EVENT_END = re.compile(_EOL + _EOL)
_LINE_SPLIT = re.compile(r"\r\n|\r|\n")

# An "event" that never ends (a misbehaving upstream) must not grow memory without bound: past
# this size the buffered bytes are released as an event with no fields, so they still flow.
DEFAULT_MAX_EVENT_BYTES = 1 << 20


@dataclass(frozen=True)
class Event:
    raw: bytes          # the exact bytes of the event, including its terminating blank line
    event: str | None   # the `event:` field
    data: str           # `data:` lines joined with "\n" (decoded UTF-8 with errors="replace")


def parse_fields(raw: bytes) -> Event:
    """Parse one complete event's bytes into its `event` and `data` fields."""
    text = raw.decode("utf-8", "replace")
    lines = text.split("\n") if "\r" not in text else _LINE_SPLIT.split(text)
    name = None
    data: list[str] = []
    for line in lines:
        if not line or line[0] == ":":
            continue
        field, colon, value = line.partition(":")
        if colon and value[:1] == " ":
            value = value[1:]
        if field == "data":
            data.append(value)
        elif field == "event":
            name = value
    return Event(raw=raw, event=name, data="\n".join(data))


class SSEParser:
    """Feed upstream chunks; get back the complete events, in order."""

    def __init__(self, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES):
        self._buffer = bytearray()
        self._scan_from = 0  # bytes before this offset are known to hold no event end
        self._max_event_bytes = max_event_bytes

    def feed(self, chunk: bytes) -> list[Event]:
        if not chunk:
            return []
        buffer = self._buffer
        buffer += chunk
        events = []
        start = 0
        search = _EVENT_END.search
        match = search(buffer, self._scan_from)
        while match is not None:
            end = match.end()
            if end == len(buffer) and buffer[end - 1] == 0x0D:
                break  # a trailing CR may be the first half of a CRLF: wait for the next byte
            events.append(parse_fields(bytes(buffer[start:end])))
            start = end
            match = search(buffer, end)
        if start:
            del buffer[:start]
        if len(buffer) > self._max_event_bytes:
            events.append(Event(raw=bytes(buffer), event=None, data=""))
            buffer.clear()
        # A match needs at most 4 bytes (CRLF CRLF): rescan only the last few next time.
        self._scan_from = max(0, len(buffer) - 4)
        return events

    def flush(self) -> bytes:
        """The incomplete tail at the end of the stream, to pass through unchanged."""
        tail = bytes(self._buffer)
        self._buffer.clear()
        self._scan_from = 0
        return tail
