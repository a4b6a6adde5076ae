"""buffered.BufferedResponse sends what werkzeug's Response sends for a whole body: the same
status line, header fields in the same order, body, and close callbacks, for every status,
method and header edit the pipeline makes."""

from __future__ import annotations

import itertools

import pytest
from flask import Response

from zai_proxy.buffered import BufferedResponse, Fields

FIELDS = {
    "json": [("Content-Type", "application/json"), ("X-Upstream", "a")],
    "untyped": [("X-Upstream", "a"), ("Set-Cookie", "a=1"), ("set-cookie", "b=2")],
    "location": [("Content-Type", "text/html"), ("Location", "/caf\u00e9?x=\u00fc")],
    "content-location": [("Content-Location", "/r\u00e9sum\u00e9")],
    "none": [],
}
# The edits the pipeline makes after building an answer (proxy.handle, attempt._buffered).
EDITS = {
    "request id": lambda h: h.__setitem__("X-Request-Id", "abc"),
    "drop type": lambda h: h.pop("Content-Type", None),
    "retry headers": lambda h: (h.__setitem__("x-should-retry", "false"),
                                h.__setitem__("Retry-After", "3"),
                                h.__setitem__("set-cookie", "c=3")),
    "none": lambda h: None,
}


def _send(response, method: str):
    seen = {}

    def start_response(status, headers, exc_info=None):
        seen["status"], seen["headers"] = status, list(headers)

    closed = []
    response.call_on_close(lambda: closed.append(True))
    iterable = response({"REQUEST_METHOD": method, "SERVER_NAME": "proxy", "SERVER_PORT": "80",
                         "wsgi.url_scheme": "http", "PATH_INFO": "/v1/x"}, start_response)
    body = b"".join(iterable)
    assert not closed
    iterable.close()
    return seen["status"], seen["headers"], body, closed


@pytest.mark.parametrize("status", [200, 204, 304, 429, 499, 520])
@pytest.mark.parametrize("method", ["POST", "GET", "HEAD"])
@pytest.mark.parametrize("fields,edit,content_type", list(itertools.product(
    FIELDS, EDITS, [None, "application/json"])))
def test_the_same_answer_as_werkzeugs(status, method, fields, edit, content_type):
    theirs = Response(b'{"a": 1}', status=status, headers=FIELDS[fields],
                      content_type=content_type)
    ours = BufferedResponse(b'{"a": 1}', status, FIELDS[fields], content_type=content_type)
    EDITS[edit](theirs.headers)
    EDITS[edit](ours.headers)
    assert ours.status_code == theirs.status_code
    assert ours.calculate_content_length() == theirs.calculate_content_length()
    assert ours.is_streamed == theirs.is_streamed
    assert _send(ours, method) == _send(theirs, method)


def test_as_werkzeug_is_the_same_answer_and_closes_the_original():
    ours = BufferedResponse(b"{}", 404, FIELDS["untyped"], content_type="application/json")
    ours.headers["X-Request-Id"] = "r"
    ours.headers.pop("X-Upstream")
    original_closed = []
    ours.call_on_close(lambda: original_closed.append(True))
    converted = ours.as_werkzeug()
    theirs = Response(b"{}", status=404, headers=FIELDS["untyped"],
                      content_type="application/json")
    theirs.headers["X-Request-Id"] = "r"
    theirs.headers.pop("X-Upstream")
    assert _send(converted, "GET")[:3] == _send(theirs, "GET")[:3]
    assert original_closed == [True]


def test_a_value_with_a_line_break_is_refused_as_werkzeug_refuses_it():
    with pytest.raises(ValueError):
        Response(b"", headers=[("X-A", "a\r\nb")])
    with pytest.raises(ValueError):
        BufferedResponse(b"", 200, [("X-A", "a\r\nb")])
    with pytest.raises(ValueError):
        BufferedResponse(b"", 200).headers["X-A"] = "a\nb"


def test_fields_pop_and_membership_ignore_case():
    fields = Fields([("A", "1"), ("b", "2"), ("a", "3")])
    assert "a" in fields and "B" in fields and "c" not in fields
    assert fields.pop("a") == "1" and fields == [("b", "2")]
    assert fields.pop("zz", "d") == "d"
    with pytest.raises(KeyError):
        fields.pop("zz")
