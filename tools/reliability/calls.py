"""What a client sends in each API family, and the checks on what comes back.

Every check returns a short problem description, or "" when the answer is what was expected, so
runners can put it straight into the table's "observed" column.
"""

from __future__ import annotations

import dataclasses
import json
import time

import requests

OPENAI, ANTHROPIC = "openai", "anthropic"
FAMILIES = (OPENAI, ANTHROPIC)
PROXY_PATHS = {OPENAI: "/v1/chat/completions", ANTHROPIC: "/v1/messages"}
UPSTREAM_PATHS = {OPENAI: "/api/paas/v4/chat/completions",
                  ANTHROPIC: "/api/anthropic/v1/messages"}
# The Anthropic error type the proxy uses for each status it makes itself (errors.py's table).
ANTHROPIC_TYPES = {400: "invalid_request_error", 401: "authentication_error",
                   404: "not_found_error", 408: "invalid_request_error",
                   413: "request_too_large", 415: "invalid_request_error",
                   429: "rate_limit_error", 502: "api_error", 503: "overloaded_error",
                   504: "api_error"}


def body(family: str, stream: bool) -> dict:
    payload = {"model": "glm-4.7", "messages": [{"role": "user", "content": "hello"}],
               "stream": stream}
    if family == ANTHROPIC:
        payload["max_tokens"] = 64
    return payload


@dataclasses.dataclass
class Answer:
    status: int                 # 0: no HTTP answer at all (see `error`)
    headers: dict
    content: bytes
    seconds: float
    error: str = ""             # exception name when the exchange broke


def send(url: str, family: str, stream: bool, scenario: str | None = None,
         session: requests.Session | None = None, timeout: float = 60.0) -> Answer:
    """POST one request to the proxy (or the fake) and read the whole answer."""
    headers = {"X-Fake-Scenario": scenario} if scenario else {}
    started = time.monotonic()
    poster = session or requests
    try:
        response = poster.post(url + PROXY_PATHS[family], json=body(family, stream),
                               headers=headers, timeout=timeout)
    except requests.RequestException as exc:
        return Answer(0, {}, b"", time.monotonic() - started, type(exc).__name__)
    return Answer(response.status_code, dict(response.headers), response.content,
                  time.monotonic() - started)


def direct(fake_url: str, family: str, stream: bool, scenario: str | None) -> bytes:
    """What the upstream itself sends for this request (the byte-exact reference)."""
    headers = {"X-Fake-Scenario": scenario} if scenario else {}
    response = requests.post(fake_url + UPSTREAM_PATHS[family], json=body(family, stream),
                             headers=headers, timeout=60)
    return response.content


# Checks -------------------------------------------------------------------------------------
def family_error(answer: Answer, family: str, status: int, code: str | None = None) -> str:
    """A proxy-made error: `status` and a JSON body in the family's error format."""
    if answer.status != status:
        return _unexpected(answer, str(status))
    try:
        payload = json.loads(answer.content)
    except ValueError:
        return f"{status} but the body is not JSON: {answer.content[:60]!r}"
    error = payload.get("error") if isinstance(payload, dict) else None
    if not isinstance(error, dict) or not isinstance(error.get("message"), str):
        return f"{status} without an error object: {answer.content[:80]!r}"
    if family == ANTHROPIC:
        if payload.get("type") != "error" or not error.get("type"):
            return f"{status} not in the Anthropic format: {answer.content[:80]!r}"
        wanted = ANTHROPIC_TYPES.get(status)
        if wanted and error["type"] != wanted:
            return f"{status} with error.type {error['type']!r}, expected {wanted!r}"
    elif code is not None and error.get("code") != code:
        return f"{status} with code {error.get('code')!r}, expected {code!r}"
    elif not error.get("type"):
        return f"{status} without error.type: {answer.content[:80]!r}"
    return ""


def split_events(data: bytes) -> tuple[list[bytes], bytes]:
    """Complete SSE events (each with its blank-line terminator) and the unterminated tail."""
    events, start = [], 0
    while True:
        end = data.find(b"\n\n", start)
        if end < 0:
            return events, data[start:]
        events.append(data[start:end + 2])
        start = end + 2


def stream_error(answer: Answer, family: str, code: str, reference: bytes) -> str:
    """200, the upstream's own events unaltered, then one error event in the family's format and
    a clean end (no half event)."""
    if answer.status != 200:
        return _unexpected(answer, "200 then an error event")
    events, tail = split_events(answer.content)
    if tail:
        return f"stream ends inside an event: {tail[:50]!r}"
    if not events:
        return "empty stream"
    *relayed, last = events
    prefix = b"".join(relayed)
    if not reference.startswith(prefix):
        return "relayed events differ from the upstream's"
    text = last.decode("utf-8", "replace")
    if family == ANTHROPIC:
        if not text.startswith("event: error\ndata: "):
            return f"last event is not an Anthropic error event: {text[:60]!r}"
        payload = json.loads(text.split("data: ", 1)[1])
        if payload.get("type") != "error" or not payload["error"].get("message"):
            return f"malformed Anthropic error event: {text[:80]!r}"
    else:
        if not text.startswith("data: {"):
            return f"last event is not an OpenAI error event: {text[:60]!r}"
        payload = json.loads(text[len("data: "):])
        error = payload.get("error") or {}
        if error.get("code") != code or not error.get("message"):
            return f"error event with code {error.get('code')!r}, expected {code!r}"
    return ""


def _unexpected(answer: Answer, wanted: str) -> str:
    got = answer.status or answer.error
    return f"status {got}, expected {wanted} ({answer.content[:70]!r})"


def verbatim(answer: Answer, status: int, reference: bytes) -> str:
    if answer.status != status:
        return _unexpected(answer, str(status))
    if answer.content != reference:
        return (f"body differs from the upstream's ({len(answer.content)} vs "
                f"{len(reference)} bytes)")
    return ""
