"""Upstream faults at the byte level, for the fault matrix: what the raw-socket upstream
(tools/raw_upstream.py) sends for each, and what the client must then receive.

The fake Z.AI speaks correct HTTP; these are what real upstreams and the intermediaries in front
of them also send: interim responses, a switch of protocols, statuses beyond 599, header fields a
server cannot write, header blocks that are not HTTP, compressed bodies, streams that end early
whatever their framing. `RawFaults.handler` answers each request by its `X-Fake-Scenario`
header (the proxy forwards it), for the request's family and streaming mode.
"""

from __future__ import annotations

import json
import zlib

from tools.raw_upstream import (Hold, RawUpstream, anthropic_sse, chunked, gzip_bytes, head,
                                openai_sse, response)

OPENAI, ANTHROPIC = "openai", "anthropic"
JSON, SSE = "application/json", "text/event-stream"


def _whole(family: str) -> bytes:
    if family == ANTHROPIC:
        return json.dumps({"id": "msg_raw", "type": "message", "role": "assistant",
                           "model": "glm-4.7", "content": [{"type": "text", "text": "raw ok"}],
                           "stop_reason": "end_turn", "stop_sequence": None,
                           "usage": {"input_tokens": 3, "output_tokens": 2}}).encode()
    return json.dumps({"id": "chatcmpl-raw", "object": "chat.completion", "created": 0,
                       "model": "glm-4.7", "choices": [{"index": 0, "finish_reason": "stop",
                                                        "message": {"role": "assistant",
                                                                    "content": "raw ok"}}],
                       "usage": {"prompt_tokens": 3, "completion_tokens": 2,
                                 "total_tokens": 5}}).encode()


def _events(family: str, terminal: bool = True) -> bytes:
    texts = ["raw ", "stream ", "ok"]
    return anthropic_sse(texts, stop=terminal) if family == ANTHROPIC \
        else openai_sse(texts, done=terminal)


def _body(family: str, stream: bool) -> tuple[bytes, str]:
    return (_events(family), SSE) if stream else (_whole(family), JSON)


def _ends_early(framing: str):
    """A stream without its terminal event, or a JSON body cut in half, complete as HTTP."""
    def script(family: str, stream: bool):
        if stream:
            events = _events(family, terminal=False)
            return response(200, events, content_type=SSE, framing=framing), events
        whole = _whole(family)
        return response(200, whole[:len(whole) // 2], content_type=JSON, framing=framing), b""
    return script


def _interim(family, stream):
    payload, content_type = _body(family, stream)
    return [head(103, [("Link", "</hint>; rel=preload")]), head(102),
            response(200, payload, content_type=content_type)], payload


def _switch(family, stream):
    return [head(101, [("Upgrade", "websocket"), ("Connection", "Upgrade")]), Hold()], b""


def _status_999(family, stream):
    payload, content_type = _body(family, stream)
    return response(999, payload, content_type=content_type), b""


def _unwritable_fields(family, stream):
    payload, content_type = _body(family, stream)
    fields = [(b"X-Bell", b"ring\x07"), (b"X(name)", b"v"), (b"X-Folded", b"one\r\n two")]
    return response(200, payload, fields, content_type=content_type), payload


def _not_a_field(family, stream):
    payload, content_type = _body(family, stream)
    block = head(200, [("Content-Type", content_type)])
    return [block.replace(b"\r\n\r\n", b"\r\nX Bad: v\r\n"
                          + b"Content-Length: %d\r\n\r\n" % len(payload)) + payload], b""


def _too_many_fields(family, stream):
    payload, content_type = _body(family, stream)
    fields = [(f"X-Field-{i}", "v") for i in range(120)]
    return response(200, payload, fields, content_type=content_type), b""


def _gzip(family, stream):
    payload, content_type = _body(family, stream)
    if stream:     # flushed per event, as a compressing server sends a stream
        compressor = zlib.compressobj(wbits=31)
        parts = [compressor.compress(event + b"\n\n") + compressor.flush(zlib.Z_SYNC_FLUSH)
                 for event in payload.split(b"\n\n") if event]
        parts[-1] += compressor.flush()
        return [head(200, [("Content-Type", content_type), ("Content-Encoding", "gzip"),
                           ("Transfer-Encoding", "chunked")]), chunked(*parts)], payload
    return [head(200, [("Content-Type", content_type), ("Content-Encoding", "gzip"),
                       ("Content-Length", str(len(gzip_bytes(payload))))]),
            gzip_bytes(payload)], payload


# name → script(family, stream) → (steps, the bytes the client must receive: the reference)
SCRIPTS = {
    "raw_interim": _interim,
    "raw_switch": _switch,
    "raw_status_999": _status_999,
    "raw_unwritable_fields": _unwritable_fields,
    "raw_not_a_field": _not_a_field,
    "raw_too_many_fields": _too_many_fields,
    "raw_gzip": _gzip,
    "raw_ends_early_close": _ends_early("close"),
    "raw_ends_early_chunked": _ends_early("chunked"),
}


def script_for(name: str, family: str, stream: bool) -> tuple[list, bytes]:
    return SCRIPTS[name](family, stream)


class RawFaults:
    """One raw-socket upstream answering every request with the script its scenario names."""

    def __init__(self):
        self.upstream = RawUpstream()
        self.upstream.handler = self.handler

    @property
    def url(self) -> str:
        return self.upstream.url

    @staticmethod
    def handler(request):
        family = ANTHROPIC if request.target.startswith("/api/anthropic") else OPENAI
        try:
            stream = bool(json.loads(request.body or b"{}").get("stream"))
        except ValueError:
            stream = False
        name = request.header("X-Fake-Scenario") or ""
        if name not in SCRIPTS:
            payload, content_type = _body(family, stream)
            return response(200, payload, content_type=content_type)
        return script_for(name, family, stream)[0]

    def start(self) -> "RawFaults":
        self.upstream.start()
        return self

    def stop(self) -> None:
        self.upstream.stop()
