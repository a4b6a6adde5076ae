"""Compressed upstream answers (issue 10, item 7): the upstream may ignore `Accept-Encoding:
identity` (an intermediary in between compresses). A gzip or deflate body is decoded, then
accounted for and relayed without its Content-Encoding and with its length re-framed; a coding
the proxy cannot decode is relayed with its header intact. Never one without the other.

In-process proxy, raw-socket upstream (exact bytes: codings, framings, flush points), token
counting on (so "accounted for" is checked against the usage inside the compressed body), the
official SDKs as clients.
"""

from __future__ import annotations

import gzip
import json
import threading
import zlib

import pytest
import requests

from tests.raw_proxy import FAMILIES, PATHS, USAGE, ask, body, events, whole
from tools.raw_upstream import RawUpstream, Wait, chunk, head, response

SETTINGS = {"RATE_LIMIT_ENABLED": "false", "MAX_RETRIES": "2", "RETRY_BACKOFF_BASE": "10ms",
            "UPSTREAM_READ_TIMEOUT": "5s", "TOKEN_COUNTING_ENABLED": "true"}
ENCODERS = {
    "gzip": lambda data: gzip.compress(data, mtime=0),
    "x-gzip": lambda data: gzip.compress(data, mtime=0),
    "deflate": zlib.compress,                                   # RFC 1950, as specified
    "raw deflate": lambda data: zlib.compress(data)[2:-4],      # as some servers send it
}


@pytest.fixture
def upstream():
    with RawUpstream() as server:
        yield server


@pytest.fixture
def proxy(inprocess_proxy, upstream):
    return inprocess_proxy(upstream.url, **SETTINGS)


def _coded(status: int, payload: bytes, coding: str, content_type: str, framing: str = "length",
           extra=()) -> list:
    header = "deflate" if coding == "raw deflate" else coding
    return response(status, ENCODERS[coding](payload), [("Content-Encoding", header), *extra],
                    content_type=content_type, framing=framing)


def _post(proxy, family: str, stream: bool = False) -> requests.Response:
    return requests.post(proxy.url + PATHS[family], json=body(family, stream), timeout=30)


def _tokens(proxy, direction: str) -> tuple[float, float]:
    return (proxy.value("zai_proxy_tokens_total", direction=direction),
            proxy.value("zai_proxy_estimated_tokens_total", direction=direction))


def _sync_flushed_gzip(*parts: bytes) -> list[bytes]:
    """`parts` gzip-compressed as one stream, each piece decodable as soon as it arrives
    (Z_SYNC_FLUSH), the way a compressing server flushes an event stream."""
    compressor = zlib.compressobj(wbits=31)
    pieces = [compressor.compress(part) + compressor.flush(zlib.Z_SYNC_FLUSH) for part in parts]
    pieces[-1] += compressor.flush()
    return pieces


# Decoded ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("framing", ["length", "chunked", "close"])
@pytest.mark.parametrize("coding", list(ENCODERS))
@pytest.mark.parametrize("family", FAMILIES)
def test_a_compressed_json_answer_is_decoded_accounted_for_and_relayed(
        proxy, upstream, family, coding, framing):
    upstream.reply(_coded(200, whole(family, "squeezed"), coding, "application/json", framing))
    assert ask(family, proxy.url) == "squeezed"
    assert len(upstream.requests) == 1
    assert upstream.requests[0].header("Accept-Encoding") == "identity"
    # Accounted for from the decoded body: the upstream's usage, nothing estimated.
    assert _tokens(proxy, "output") == (USAGE["output"], 0)
    assert proxy.value("zai_proxy_upstream_errors_total") == 0


def test_the_decoded_answer_is_re_framed_without_its_coding(proxy, upstream):
    payload = whole("openai", "x" * 5000)
    upstream.reply(_coded(200, payload, "gzip", "application/json", "chunked"))
    answer = _post(proxy, "openai")
    assert answer.raw.headers.get("Content-Encoding") is None
    assert answer.headers["Content-Length"] == str(len(payload))
    assert answer.content == payload


@pytest.mark.parametrize("coding", ["gzip", "deflate"])
@pytest.mark.parametrize("family", FAMILIES)
def test_compressed_error_answers_reach_the_client_decoded(proxy, upstream, family, coding):
    error = {"error": {"code": "1214", "message": "bad parameter"}}
    upstream.reply(_coded(400, json.dumps(error).encode(), coding, "application/json"))
    answer = _post(proxy, family)
    assert answer.status_code == 400
    assert answer.raw.headers.get("Content-Encoding") is None
    assert answer.json() == error


def test_a_compressed_429_is_decoded_before_it_is_classified(proxy, upstream):
    # Z.AI's quota code is in the compressed body: classified from the decoded bytes
    # (a quota error is never retried, and says so in X-Zai-Error-Class).
    error = {"error": {"code": "1308", "message": "Usage limit reached"}}
    upstream.reply(_coded(429, json.dumps(error).encode(), "gzip", "application/json"))
    answer = _post(proxy, "openai")
    assert answer.status_code == 429 and answer.json() == error
    assert answer.headers["X-Zai-Error-Class"] == "quota"
    assert len(upstream.requests) == 1


@pytest.mark.parametrize("family", FAMILIES)
def test_a_compressed_stream_is_decoded_event_by_event_as_it_arrives(proxy, upstream, family):
    stream = events(family, ["Hel", "lo"])
    first_event_end = stream.index(b"\n\n") + 2
    pieces = _sync_flushed_gzip(stream[:first_event_end], stream[first_event_end:])
    gate = threading.Event()
    upstream.reply(head(200, [("Content-Type", "text/event-stream"),
                              ("Content-Encoding", "gzip"), ("Transfer-Encoding", "chunked")]),
                   chunk(pieces[0]), Wait(gate), chunk(pieces[1]), b"0\r\n\r\n")
    with requests.post(proxy.url + PATHS[family], json=body(family, True), stream=True,
                       timeout=30) as answer:
        assert answer.raw.headers.get("Content-Encoding") is None
        pieces, received = answer.iter_content(None), b""
        while len(received) < first_event_end:
            received += next(pieces)
        # The first event, decoded, before the upstream has sent the rest.
        assert received[:first_event_end] == stream[:first_event_end] and not gate.is_set()
        gate.set()
        received += b"".join(pieces)
    assert received == stream
    # And an SDK reads such a stream whole; its usage is accounted for.
    upstream.reply(head(200, [("Content-Type", "text/event-stream"),
                              ("Content-Encoding", "gzip"), ("Transfer-Encoding", "chunked")]),
                   *[chunk(p) for p in _sync_flushed_gzip(*[bytes([b]) for b in stream])],
                   b"0\r\n\r\n")
    assert ask(family, proxy.url, stream=True) == "Hello"
    assert proxy.value("zai_proxy_upstream_errors_total") == 0


# Relayed with the coding intact ----------------------------------------------------------------------
@pytest.mark.parametrize("coding", ["br", "zstd", "compress", "gzip, br", "gzip, deflate"])
@pytest.mark.parametrize("status", [200, 400])
def test_a_coding_the_proxy_cannot_decode_is_relayed_with_its_header(proxy, upstream, coding,
                                                                     status):
    encoded = b"\x1b\x07\x00\xf8opaque bytes in " + coding.encode()
    upstream.reply(response(status, encoded, [("Content-Encoding", coding)],
                            content_type="application/json"))
    answer = requests.post(proxy.url + PATHS["openai"], json=body("openai"), timeout=30,
                           stream=True)
    assert answer.status_code == status
    assert answer.raw.headers["Content-Encoding"] == coding
    assert answer.raw.read(decode_content=False) == encoded
    assert len(upstream.requests) == 1


@pytest.mark.parametrize("family", FAMILIES)
def test_a_stream_in_a_coding_the_proxy_cannot_decode_is_relayed_as_it_came(proxy, upstream,
                                                                           family):
    encoded = b"brotli-ish \x00\x01\x02" * 50
    upstream.reply(response(200, encoded, [("Content-Encoding", "br")],
                            content_type="text/event-stream", framing="chunked"))
    answer = requests.post(proxy.url + PATHS[family], json=body(family, True), timeout=30,
                           stream=True)
    assert answer.status_code == 200 and answer.raw.headers["Content-Encoding"] == "br"
    assert answer.raw.read(decode_content=False) == encoded
    assert proxy.value("zai_proxy_upstream_errors_total") == 0


# Bodies that do not decode -------------------------------------------------------------------------
@pytest.mark.parametrize("family", FAMILIES)
def test_a_2xx_that_does_not_decode_is_a_502_and_is_not_sent_again(proxy, upstream, family):
    upstream.reply(response(200, b"this is not gzip at all", [("Content-Encoding", "gzip")],
                            content_type="application/json"))
    answer = _post(proxy, family)
    assert answer.status_code == 502
    assert "does not decode" in answer.json()["error"]["message"]
    assert len(upstream.requests) == 1
    assert proxy.value("zai_proxy_upstream_errors_total", error_type="bad_encoding") == 1


def test_a_2xx_that_decodes_to_more_than_the_proxy_buffers_is_refused(proxy, upstream):
    bomb = gzip.compress(b"0" * (65 << 20), compresslevel=9)     # 65 MiB from ~64 KiB
    upstream.reply(response(200, bomb, [("Content-Encoding", "gzip")],
                            content_type="application/json"))
    answer = _post(proxy, "openai")
    assert answer.status_code == 502 and answer.json()["error"]["code"] == "bad_encoding"


def test_an_error_answer_that_does_not_decode_is_relayed_as_it_came_with_its_header(
        proxy, upstream):
    upstream.reply(response(500, b"\x1f\x8b broken", [("Content-Encoding", "gzip")],
                            content_type="text/html"))
    answer = requests.post(proxy.url + PATHS["openai"], json=body("openai"), timeout=30,
                           stream=True)
    assert answer.status_code == 500
    assert answer.raw.headers["Content-Encoding"] == "gzip"
    assert answer.raw.read(decode_content=False) == b"\x1f\x8b broken"


@pytest.mark.parametrize("family", FAMILIES)
def test_a_stream_that_stops_decoding_ends_with_an_error_event(proxy, upstream, family):
    stream = events(family, ["Hel", "lo"])
    first_event_end = stream.index(b"\n\n") + 2
    [first, _] = _sync_flushed_gzip(stream[:first_event_end], stream[first_event_end:])
    upstream.reply(head(200, [("Content-Type", "text/event-stream"),
                              ("Content-Encoding", "gzip"), ("Transfer-Encoding", "chunked")]),
                   chunk(first), chunk(b"\xff" * 64), b"0\r\n\r\n")
    answer = _post(proxy, family, stream=True)
    assert answer.status_code == 200
    relayed, _, error_event = answer.content.rpartition(b"data: ")
    assert relayed.startswith(stream[:first_event_end])
    assert b"stopped decoding" in error_event
    assert proxy.value("zai_proxy_upstream_errors_total", error_type="bad_encoding") == 1
