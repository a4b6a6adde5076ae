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


@dataclass(frozen=True, slots=True)
class Event:
    raw: bytes          # the exact bytes of the event, including its terminating blank line
    event: str | None   # the `event:` field
    data: str           # `data:` lines joined with "\n" (decoded UTF-8 with errors="replace")


def parse_fields(raw: bytes) -> Event:
    """Parse one complete event's bytes into its `event` and `data` fields."""
    if raw[:6] == b"data: " and raw.find(b"\n") == len(raw) - 2 and b"\r" not in raw:
        # One "data: …" line and its blank line: the shape of nearly every OpenAI chunk.
        return Event(raw, None, raw[6:-2].decode("utf-8", "replace"))
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
    return Event(raw, name, data[0] if len(data) == 1 else "\n".join(data))


class SSEParser:
    """Feed upstream chunks; get back the complete events, in order."""

    def __init__(self, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES):
        self._buffer = bytearray()
        self._scan_from = 0  # bytes before this offset are known to hold no event end
        self._max_event_bytes = max_event_bytes
        self._cr = False     # a CR was seen: line ends may be CR or CRLF from now on
        # True while an event too long to hold was released before its end: what follows
        # continues it.
        self.mid_event = False

    @property
    def idle(self) -> bool:
        """No partial event is buffered: the next chunk starts a new event."""
        return not self._buffer

    def feed(self, chunk: bytes) -> list[Event]:
        if not chunk:
            return []
        buffer = self._buffer
        if not buffer and chunk[-2:] == b"\n\n" and b"\r" not in chunk:
            # The usual read: whole LF-terminated events and nothing else; no buffer copies.
            return self._whole_events(bytes(chunk))
        buffer += chunk
        # Only the new bytes are looked at: scanning the whole buffer on every read would make
        # one long event cost time quadratic in its length.
        self._cr = self._cr or b"\r" in chunk
        if self._cr:
            ends = self._ends_any_eol(buffer)
        else:  # the usual stream: LF only, so every event ends at "\n\n" (memchr-fast)
            ends = []
            find = buffer.find
            at = find(b"\n\n", self._scan_from)
            while at >= 0:
                ends.append(at + 2)
                at = find(b"\n\n", at + 2)
        events = []
        start = 0
        for end in ends:
            events.append(parse_fields(bytes(buffer[start:end])))
            start = end
        if start:
            del buffer[:start]
            self.mid_event = False
        if len(buffer) > self._max_event_bytes:
            events.append(Event(bytes(buffer), None, ""))
            buffer.clear()
            self.mid_event = True
        # A match needs at most 4 bytes (CRLF CRLF): rescan only the last few next time.
        self._scan_from = max(0, len(buffer) - 4)
        return events

    def _whole_events(self, chunk: bytes) -> list[Event]:
        self.mid_event = False
        if chunk.find(b"\n\n") == len(chunk) - 2:
            return [parse_fields(chunk)]
        events = []
        start = 0
        find = chunk.find
        at = find(b"\n\n")
        while at >= 0:
            events.append(parse_fields(chunk[start:at + 2]))
            start = at + 2
            at = find(b"\n\n", start)
        if start < len(chunk):  # e.g. "\n\n\n": the last LF starts the next event
            self._buffer += chunk[start:]
            self._scan_from = max(0, len(self._buffer) - 4)
        return events

    def _ends_any_eol(self, buffer: bytearray) -> list[int]:
        ends = []
        search = _EVENT_END.search
        match = search(buffer, self._scan_from)
        while match is not None:
            end = match.end()
            if end == len(buffer) and buffer[end - 1] == 0x0D:
                break  # a trailing CR may be the first half of a CRLF: wait for the next byte
            ends.append(end)
            match = search(buffer, end)
        return ends

    def flush(self) -> bytes:
        """The incomplete tail at the end of the stream, to pass through unchanged."""
        tail = bytes(self._buffer)
        self._buffer.clear()
        self._scan_from = 0
        return tail
