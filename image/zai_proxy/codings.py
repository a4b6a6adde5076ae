"""Content codings of upstream answers: which ones the proxy can decode, and decoding them.

The proxy asks the upstream for `Accept-Encoding: identity`, but intermediaries in between may
compress anyway. `Content-Encoding` describes the body as sent, so a body and its header travel
together: either the body is decoded and the header removed (what `decoder_for` makes possible),
or both are relayed untouched. Only a single `gzip` (`x-gzip`) or `deflate` coding is decoded;
any other coding, or several applied in turn, is relayed as it came.

Decoding is incremental (streams are decoded event by event as they arrive) and bounded: one
call never produces more than `limit` bytes, whatever the compression ratio, so a small
compressed read cannot turn into a huge allocation; a whole answer stops at `MAX_DECODED_BYTES`.
"""

from __future__ import annotations

import zlib

IDENTITY = "identity"
DECODABLE = frozenset({"gzip", "x-gzip", "deflate"})
# A whole (buffered) answer larger than this once decoded is refused: the proxy holds whole
# answers in memory, and compression lets 1 MB on the wire become 1 GB.
MAX_DECODED_BYTES = 64 << 20
_GZIP_WBITS = 16 + zlib.MAX_WBITS


class DecodeError(Exception):
    """The body does not decode with the coding its Content-Encoding names."""


def codings(content_encoding: str) -> list[str]:
    """The codings of a Content-Encoding value, in the order they were applied, without
    `identity` (which changes nothing)."""
    names = [name.strip().lower() for name in content_encoding.split(",")]
    return [name for name in names if name and name != IDENTITY]


def decoder_for(content_encoding: str) -> "Decoder | None":
    """A decoder for the coding named by `content_encoding`, or None when the proxy cannot decode
    it (the body and its header are then relayed as they came). Raises ValueError when there is
    nothing to decode (no coding, or only `identity`)."""
    names = codings(content_encoding)
    if not names:
        raise ValueError("no content coding")
    if len(names) == 1 and names[0] in DECODABLE:
        return Decoder(names[0])
    return None


def _zlib_header(data: bytes) -> bool:
    """Whether `data` starts with a zlib header (RFC 1950): method 8, and a check sum."""
    return data[0] & 0x0F == 8 and (data[0] << 8 | data[1]) % 31 == 0


class Decoder:
    """Decodes one gzip or deflate body, fed in pieces as they arrive."""

    __slots__ = ("name", "_inflate", "_started", "_pending", "_done")

    def __init__(self, name: str):
        self.name = name
        self._inflate = zlib.decompressobj(_GZIP_WBITS if "gzip" in name else zlib.MAX_WBITS)
        self._started = False
        self._pending = b""         # compressed input not yet decoded (held back by `limit`)
        self._done = False          # the compressed stream ended (every gzip member, if several)

    @property
    def has_pending(self) -> bool:
        """Decoded output can be produced without reading more input."""
        return bool(self._pending) and self._started

    def feed(self, data: bytes, limit: int = 1 << 20) -> bytes:
        """At most `limit` decoded bytes from what was fed so far (`data` included); the rest
        of the input waits for the next call (`has_pending`)."""
        data = self._pending + data if self._pending else data
        self._pending = b""
        out = []
        size = 0
        if not self._started and self.name == "deflate":
            if len(data) < 2:
                self._pending = data        # the first two bytes tell which deflate it is;
                return b""                  # `has_pending` stays False until they are here
            if not _zlib_header(data):
                # Servers label raw deflate (no zlib header) as `deflate` too; browsers accept it.
                self._inflate = zlib.decompressobj(-zlib.MAX_WBITS)
        self._started = True
        while data and size < limit:
            if self._done:
                data = self._next_member(data)
            try:
                piece = self._inflate.decompress(data, limit - size)
            except zlib.error as exc:
                raise DecodeError(f"{self.name}: {exc}") from None
            out.append(piece)
            size += len(piece)
            if self._inflate.eof:
                # What follows the end is in unused_data (CPython may leave a copy of it in
                # unconsumed_tail too, so that one is not read here).
                self._done = True
                data = self._inflate.unused_data
            else:
                data = self._inflate.unconsumed_tail
        self._pending = data
        return b"".join(out)

    def _next_member(self, data: bytes) -> bytes:
        """After a complete gzip member: another member may follow (RFC 1952 allows several);
        anything else is not gzip."""
        if "gzip" not in self.name:
            raise DecodeError(f"{self.name}: data after the end of the compressed stream")
        self._inflate = zlib.decompressobj(_GZIP_WBITS)
        self._done = False
        return data

    def complete(self) -> bool:
        """Whether the compressed stream ended properly (False: it was cut short)."""
        return self._done and not self._pending


def decode_whole(content_encoding: str, body: bytes, limit: int = MAX_DECODED_BYTES) -> bytes:
    """The decoded body of a whole answer; DecodeError if it does not decode, is cut short, or
    exceeds `limit` once decoded."""
    decoder = decoder_for(content_encoding)
    if decoder is None:
        raise DecodeError(f"{content_encoding!r} is not a coding the proxy decodes")
    out = [decoder.feed(body, limit + 1)]
    size = len(out[0])
    while decoder.has_pending and size <= limit:
        piece = decoder.feed(b"", limit + 1 - size)
        if not piece:
            break
        out.append(piece)
        size += len(piece)
    if size > limit:
        raise DecodeError(f"larger than {limit} bytes once decoded")
    if not decoder.complete():
        raise DecodeError(f"{decoder.name}: the compressed body is cut short")
    return b"".join(out)
