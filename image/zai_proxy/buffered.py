"""The client's answer when its body is whole in memory: an upstream answer read to its end, or
an error the proxy makes.

`BufferedResponse` sends exactly what werkzeug's Response sends for such a body (status line,
header fields in the same order, Content-Type and Content-Length as werkzeug sets them, no
body for HEAD) without building one: werkzeug's general machinery (header objects copied for
every call, iterable encoding, closing wrappers) was about a twentieth of the CPU of a proxied
request. The few answers werkzeug rewrites (a Location or Content-Location header, statuses
without a body) are handed to werkzeug itself, so they stay exactly as they were. Streams keep
werkzeug's Response.

It has the part of werkzeug's Response interface the pipeline uses: `status_code`, `headers`
(set, pop, membership), `is_streamed`, `calculate_content_length`, `call_on_close`, `close`, and
it is a WSGI application. `as_werkzeug` gives the same answer as a Flask response, for the
routes Flask serves.
"""

from __future__ import annotations

from flask import Response
from werkzeug.datastructures import Headers
from werkzeug.utils import get_content_type

# What a Flask Response without a type gets (its default_mimetype with its charset).
_DEFAULT_TYPE = get_content_type(Response.default_mimetype, "utf-8")
_REWRITTEN = frozenset({"location", "content-location"})
_STATUS_LINES: dict[int, str] = {}


def status_line(code: int) -> str:
    """werkzeug's status line for `code` ("200 OK", "499 UNKNOWN"), computed once per code."""
    line = _STATUS_LINES.get(code)
    if line is None:
        line = _STATUS_LINES[code] = Response(status=code).status
    return line


def _checked(value: str) -> str:
    if "\n" in value or "\r" in value:
        raise ValueError("Header values must not contain newline characters.")
    return value


class Fields(list):
    """Header fields as (name, value) pairs, with werkzeug Headers' rules for setting one (the
    first field of that name is replaced in place, later ones removed, else it is appended) and
    for popping one (every field of that name goes, the first value is returned)."""

    def __contains__(self, name) -> bool:
        name = name.lower()
        return any(key.lower() == name for key, _ in self)

    def get(self, name: str, default=None):
        name = name.lower()
        for key, value in self:
            if key.lower() == name:
                return value
        return default

    def __setitem__(self, name, value) -> None:
        if not isinstance(name, str):
            return super().__setitem__(name, value)
        value = _checked(str(value))
        lower = name.lower()
        for index, (key, _) in enumerate(self):
            if key.lower() == lower:
                self[index:] = [(name, value)] + [field for field in self[index + 1:]
                                                  if field[0].lower() != lower]
                return
        self.append((name, value))

    _missing = object()

    def pop(self, name=-1, default=_missing):
        if not isinstance(name, str):
            return super().pop(name)
        value = self.get(name, self._missing)
        if value is self._missing:
            if default is self._missing:
                raise KeyError(name)
            return default
        lower = name.lower()
        self[:] = [field for field in self if field[0].lower() != lower]
        return value


class BufferedResponse:
    """A whole answer: `body` with `status` and header `fields`; `content_type` as werkzeug's
    Response takes it (None: keep the fields' own, or werkzeug's default when they have none)."""

    is_streamed = False
    __slots__ = ("body", "status_code", "headers", "exchange", "_on_close", "_closed")

    def __init__(self, body: bytes, status: int, fields=(), content_type: str | None = None):
        self.body = body
        self.status_code = status
        self.headers = Fields((name, _checked(value)) for name, value in fields)
        if content_type is None and "content-type" not in self.headers:
            content_type = _DEFAULT_TYPE
        if content_type is not None:
            self.headers["Content-Type"] = content_type
        self.headers["Content-Length"] = str(len(body))
        self.exchange = None
        self._on_close: list = []
        self._closed = False

    def calculate_content_length(self) -> int:
        return len(self.body)

    def call_on_close(self, func) -> None:
        self._on_close.append(func)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for func in self._on_close:
            func()

    # WSGI ---------------------------------------------------------------------------------------
    def __call__(self, environ, start_response):
        status = self.status_code
        if 100 <= status < 200 or status in (204, 304) or any(
                key.lower() in _REWRITTEN for key, _ in self.headers):
            return self.as_werkzeug()(environ, start_response)
        start_response(status_line(status), list(self.headers))
        return _Body(() if environ["REQUEST_METHOD"] == "HEAD" else (self.body,), self)

    def as_werkzeug(self) -> Response:
        """The same answer as werkzeug's Response; closing it closes this one."""
        response = Response(self.body, status=self.status_code)
        response.headers = Headers(list(self.headers))
        response.call_on_close(self.close)
        return response


class _Body:
    """The WSGI iterable: the body, and the answer's close when the server is done."""

    __slots__ = ("_parts", "_response")

    def __init__(self, parts, response: BufferedResponse):
        self._parts = parts
        self._response = response

    def __iter__(self):
        return iter(self._parts)

    def close(self) -> None:
        self._response.close()
