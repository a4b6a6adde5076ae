"""An upstream answer's header block, read into the same object http.client builds, faster.

http.client reads the header lines itself (`_read_headers`: at most 100 lines of at most 64 KiB)
and hands them, decoded as ISO-8859-1, to the email package's feed parser, which builds an
`HTTPMessage`; every later lookup goes through the email policy again. Together that was the
largest single cost of reading an answer (`make bench`'s profile). Almost every upstream head
is a plain list of `name: value` lines; for those, `parse_headers` builds the message directly,
with exactly the items, order, defects and payload the email parser gives. Anything else (a
name that is not an RFC 9110 token, obsolete line folding, a stray CR, a block without its
blank line) goes to the email parser, so its rules for odd heads, which `answers.head_problem`
relies on, stay exactly as they are.

`Message` answers `get`/`get_all`/`items` from its list. The email policy's per-lookup step
(compat32's `header_fetch_parse`) only changes values that carry surrogate escapes, and text
decoded as ISO-8859-1 never does, so the answers are the same.
"""

from __future__ import annotations

import email.parser
import http.client
import re

# A field line: an RFC 9110 token, a colon, the value up to the line end. No CR inside the line:
# the email parser would split the line there.
_FIELD = re.compile(rb"([!#$%&'*+\-.^_`|~0-9A-Za-z]+):[ \t]*([^\r\n]*)\r?\n")
_ENDS = (b"\r\n", b"\n")


class Message(http.client.HTTPMessage):
    """An HTTPMessage whose lookups read its field list directly (see the module docstring)."""

    def get(self, name, failobj=None):
        name = name.lower()
        for key, value in self._headers:
            if key.lower() == name:
                return value
        return failobj

    def get_all(self, name, failobj=None):
        name = name.lower()
        values = [value for key, value in self._headers if key.lower() == name]
        return values or failobj

    def items(self):
        return list(self._headers)

    def values(self):
        return [value for _, value in self._headers]

    def __getitem__(self, name):
        return self.get(name)

    def __contains__(self, name):
        name = name.lower()
        return any(key.lower() == name for key, _ in self._headers)


def parse_headers(fp) -> http.client.HTTPMessage:
    """http.client.parse_headers(fp): the same limits, the same message."""
    lines = http.client._read_headers(fp)
    fields = _plain_fields(lines)
    if fields is None:
        return email.parser.Parser(_class=http.client.HTTPMessage).parsestr(
            b"".join(lines).decode("iso-8859-1"))
    message = Message()
    message._headers = fields
    message._payload = ""           # what the email parser leaves after a header block
    return message


def _plain_fields(lines: list[bytes]):
    """[(name, value)] when every line is a plain field line and the block ends with its blank
    line; else None."""
    if lines[-1] not in _ENDS:
        return None
    fields = []
    match = _FIELD.fullmatch
    for line in lines[:-1]:
        found = match(line)
        if found is None:
            return None
        fields.append((found[1].decode("iso-8859-1"), found[2].decode("iso-8859-1")))
    return fields


class Response(http.client.HTTPResponse):
    """http.client.HTTPResponse whose head is read by `parse_headers`. `begin` is http.client's
    (Python 3.11-3.13), line for line, except for that one call: the framing decisions (chunked,
    Content-Length, keep-alive) are the standard library's."""

    def begin(self):
        if self.headers is not None:
            return
        while True:
            version, status, reason = self._read_status()
            if status != http.client.CONTINUE:
                break
            http.client._read_headers(self.fp)
        self.code = self.status = status
        self.reason = reason.strip()
        if version in ("HTTP/1.0", "HTTP/0.9"):
            self.version = 10
        elif version.startswith("HTTP/1."):
            self.version = 11
        else:
            raise http.client.UnknownProtocol(version)
        self.headers = self.msg = parse_headers(self.fp)
        tr_enc = self.headers.get("transfer-encoding")
        if tr_enc and tr_enc.lower() == "chunked":
            self.chunked = True
            self.chunk_left = None
        else:
            self.chunked = False
        self.will_close = self._check_close()
        self.length = None
        length = self.headers.get("content-length")
        if length and not self.chunked:
            try:
                self.length = int(length)
            except ValueError:
                self.length = None
            else:
                if self.length < 0:
                    self.length = None
        else:
            self.length = None
        if (status == http.client.NO_CONTENT or status == http.client.NOT_MODIFIED
                or 100 <= status < 200 or self._method == "HEAD"):
            self.length = 0
        if not self.will_close and not self.chunked and self.length is None:
            self.will_close = True
