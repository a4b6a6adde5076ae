"""heads.py reads an upstream head into the message http.client would build: the same fields in
the same order, the same defects and payload (which answers.head_problem judges), the same
lookups, the same bytes left for the body, and the same framing decisions."""

from __future__ import annotations

import http.client
import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zai_proxy import heads

# Lines of every kind the email parser treats differently: plain fields, odd names, empty
# names, values with spaces, tabs, control and Latin-1 bytes, folded lines, stray CRs, lines
# without a colon, bare LF endings.
_NAME = st.sampled_from([b"Content-Type", b"content-length", b"X-A", b"Set-Cookie", b"x_y",
                         b"A(b", b"", b"From ", b"Na me", b"\xe9t\xe9", b"Connection"])
_VALUE = st.binary(max_size=12).map(lambda v: v.replace(b"\n", b"")) | st.sampled_from(
    [b"", b" x", b"\tx", b"a, b", b"chunked", b"12", b"close", b"v\r", b"\xff\x85", b" "])
_END = st.sampled_from([b"\r\n", b"\n"])
_LINE = (st.tuples(_NAME, st.sampled_from([b":", b": ", b":\t", b" :"]), _VALUE, _END)
         .map(b"".join)
         | st.tuples(st.sampled_from([b" folded", b"\tfolded", b"no colon", b"\x00"]), _END)
         .map(b"".join))
_BLOCK = st.tuples(st.lists(_LINE, max_size=8),
                   st.sampled_from([b"\r\n", b"\n", b""]),
                   st.sampled_from([b"", b"body bytes", b"\r\nmore"])).map(
    lambda parts: b"".join(parts[0]) + parts[1] + parts[2])


def _both(block: bytes):
    ours, theirs = io.BytesIO(block), io.BytesIO(block)
    return (heads.parse_headers(ours), ours), (http.client.parse_headers(theirs), theirs)


def _same(ours, theirs) -> None:
    assert ours.items() == theirs.items()
    assert [type(d) for d in ours.defects] == [type(d) for d in theirs.defects]
    assert ours.get_payload() == theirs.get_payload()
    assert ours.is_multipart() == theirs.is_multipart()
    assert ours.keys() == theirs.keys()
    assert ours.values() == theirs.values()
    for name in {key for key, _ in theirs.items()} | {"content-length", "Missing"}:
        for variant in (name, name.lower(), name.upper()):
            assert ours.get(variant) == theirs.get(variant)
            assert ours.get(variant, "none") == theirs.get(variant, "none")
            assert ours.get_all(variant) == theirs.get_all(variant)
            assert ours[variant] == theirs[variant]
            assert (variant in ours) == (variant in theirs)


@settings(max_examples=300, deadline=None)
@given(_BLOCK)
def test_any_header_block_reads_as_http_client_reads_it(block):
    (ours, our_fp), (theirs, their_fp) = _both(block)
    _same(ours, theirs)
    assert our_fp.read() == their_fp.read()      # the body starts at the same byte


@pytest.mark.parametrize("block", [
    b"Content-Type: application/json\r\nContent-Length: 12\r\nX-A:  b \r\n\r\n",
    b"Set-Cookie: a\r\nset-cookie: b\r\nSET-COOKIE: c\r\n\r\n",
    b"X-Folded: a\r\n b\r\n\r\n",             # obsolete folding: the email parser's business
    b"Bad Name: a\r\n\r\n",                   # not a field: a defect the proxy refuses
    b" leading: a\r\n\r\n",
    b"X-CR: a\rb\r\n\r\n",
    b"X-A: a\r\n",                            # no blank line
    b"\r\n",
])
def test_typical_and_odd_blocks(block):
    (ours, _), (theirs, _) = _both(block)
    _same(ours, theirs)


def test_plain_blocks_take_the_fast_path_and_odd_ones_the_email_parser():
    plain, _ = _both(b"A: b\r\nC: d\r\n\r\n")[0]
    folded, _ = _both(b"A: b\r\n c\r\n\r\n")[0]
    assert type(plain) is heads.Message
    assert type(folded) is http.client.HTTPMessage


def test_http_clients_limits_still_apply():
    many = b"".join(b"X-%d: v\r\n" % i for i in range(120)) + b"\r\n"
    with pytest.raises(http.client.HTTPException, match="more than 100 headers"):
        heads.parse_headers(io.BytesIO(many))
    with pytest.raises(http.client.LineTooLong):
        heads.parse_headers(io.BytesIO(b"X: " + b"v" * 70000 + b"\r\n\r\n"))


class _Sock:
    def __init__(self, data: bytes):
        self._data = data

    def makefile(self, mode):
        return io.BytesIO(self._data)


@pytest.mark.parametrize("head", [
    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 5\r\n\r\n",
    b"HTTP/1.1 200 OK\r\n\r\n",
    b"HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\n",
    b"HTTP/1.0 200 OK\r\nKeep-Alive: timeout=5\r\nContent-Length: 5\r\n\r\n",
    b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 5\r\n\r\n",
    b"HTTP/1.1 204 No Content\r\n\r\n",
    b"HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: -3\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
    b"HTTP/1.1 100 Continue\r\nA: b\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n folded\r\n\r\n",
])
@pytest.mark.parametrize("method", ["POST", "HEAD"])
def test_framing_decisions_are_http_clients(head, method):
    ours = heads.Response(_Sock(head + b"hello"), method=method)
    theirs = http.client.HTTPResponse(_Sock(head + b"hello"), method=method)
    ours.begin()
    theirs.begin()
    for attribute in ("status", "reason", "version", "chunked", "length", "will_close"):
        assert getattr(ours, attribute) == getattr(theirs, attribute), attribute
    assert ours.msg.items() == theirs.msg.items()
    assert ours.fp.read() == theirs.fp.read()


def test_an_unknown_protocol_is_refused_as_http_client_refuses_it():
    with pytest.raises(http.client.BadStatusLine):
        heads.Response(_Sock(b"SPDY/3 200 OK\r\n\r\n")).begin()
