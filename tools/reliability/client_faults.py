"""Client faults: hang-ups at every phase, oversized and malformed requests, path traversal.

Each case is one row. Every request carries its own X-Request-Id, which the proxy logs and sends
upstream, so a case finds its own log line and its own upstream record (if any). At the end,
the worker pids must be the ones we started with: nothing a client does may crash a worker.
Slow clients (slowloris) are in slow_clients.py.
"""

from __future__ import annotations

import json
import time
import uuid

import requests

from . import calls, rawhttp
from .calls import ANTHROPIC, FAMILIES, OPENAI, PROXY_PATHS
from .harness import Stack, metric_delta, wait_for, workers
from .table import Row, row

GROUP = "client"
GAUGE = "zai_proxy_concurrent_requests"
MAX_REQUEST_BYTES = 65536
F_GONE_MID_BODY = "F4"
F_GUNICORN_HTML = "F7"
F_BAD_FRAMING = "F9"


def proxy_env() -> dict:
    return dict(WEB_CONCURRENCY="2", MAX_WORKERS="8", RATE_LIMIT_ENABLED="false",
                TOKEN_COUNTING_ENABLED="true", MAX_REQUEST_BYTES=str(MAX_REQUEST_BYTES),
                MAX_RETRIES="2")


def admission_env() -> dict:
    # One request per 10 s: the second request waits for admission long enough to hang up.
    return dict(RATE_LIMIT_ENABLED="true", RATE_LIMIT_INITIAL="0.1", RATE_LIMIT_MIN="0.1",
                RATE_LIMIT_MAX="0.1", RATE_LIMIT_MAX_WAIT="30s", MAX_WORKERS="8")


def run(stack: Stack) -> list[Row]:
    proxy = stack.proxy(**proxy_env())
    gated = stack.proxy(**admission_env())
    pids = {id(p): workers(p) for p in (proxy, gated)}
    rows = []
    rows += disconnects(stack, proxy, gated)
    rows += oversized(stack, proxy)
    rows += malformed(stack, proxy)
    rows += traversal(stack, proxy)
    for name, p in (("main", proxy), ("admission", gated)):
        now = workers(p)
        problems = [] if now == pids[id(p)] else [f"worker pids {pids[id(p)]} → {now}"]
        rows.append(row(GROUP, f"no worker crashed ({name} proxy)", "same worker pids",
                        problems, f"workers {now} unchanged"))
        errors = [line for line in p.log_lines() if line.get("level") in ("error",
                                                                       "critical")]
        problems = [f"{len(errors)} error line(s), first: {errors[0].get('msg', '')[:70]}"
                    ] if errors else []
        rows.append(row(GROUP, f"no error logged ({name} proxy)",
                        "client faults are not the proxy's errors", problems, "none",
                        F_BAD_FRAMING))
    return rows


def _rid(tag: str) -> str:
    return f"rel-{tag}-{uuid.uuid4().hex[:10]}"


def _json_head(family: str, rid: str, length: int, scenario: str | None = None) -> bytes:
    headers = {"Content-Type": "application/json", "X-Request-Id": rid}
    if scenario:
        headers["X-Fake-Scenario"] = scenario
    return rawhttp.head("POST", PROXY_PATHS[family], headers, length)


def _log_line(proxy, rid: str, timeout: float = 5.0) -> dict | None:
    found: list[dict] = []

    def seen() -> bool:
        found[:] = [line for line in proxy.request_logs() if line.get("request_id") == rid]
        return bool(found)

    wait_for(seen, timeout)
    return found[0] if found else None


def _upstream_records(stack: Stack, rid: str) -> list:
    return [r for r in stack.fake.requests if r.headers.get("x-request-id") == rid]


# Hang-ups ------------------------------------------------------------------------------------
def _after_hangup(stack, proxy, rid, upstream: str, before: dict, gone_at: float,
                  logged_status: int = 499) -> tuple[list[str], str]:
    """Checks once the client has gone. upstream: "none" (never called), "once" (called once,
    not again) or "cancelled" (the upstream call is abandoned: the fake records the proxy
    leaving, status 499)."""
    problems = []
    if not wait_for(lambda: proxy.value(GAUGE) == 0, 5):
        problems.append(f"slot not freed (gauge {proxy.value(GAUGE):g})")
    freed_after = time.monotonic() - gone_at
    if freed_after > 3:
        problems.append(f"slot freed only {freed_after:.1f} s after the hang-up")
    line = _log_line(proxy, rid)
    if line is None:
        problems.append("no request log line")
    elif (line["status"], line["outcome"]) != (logged_status, "client_gone"):
        problems.append(f"logged as {line['status']} {line['outcome']}, not "
                        f"{logged_status} client_gone")
    records = _upstream_records(stack, rid)
    if upstream == "none" and records:
        problems.append(f"a request the client abandoned was sent upstream ({len(records)}×)")
    if upstream == "once" and len(records) != 1:
        problems.append(f"{len(records)} upstream calls, expected 1")
    if upstream == "cancelled":
        if not records:
            problems.append("never reached the upstream")
        elif not wait_for(lambda: all(r.disconnected for r in _upstream_records(stack, rid)),
                          5):
            problems.append("upstream call not cancelled")
    gone = metric_delta(before, proxy.metrics(), "zai_proxy_stream_disconnects_total")
    if gone != 1:
        problems.append(f"stream_disconnects_total +{gone:g}, expected +1")
    return problems, f"freed {freed_after:.2f} s after the hang-up"


def _hangup_case(stack, proxy, case, expected, upstream, family, scenario, body, length,
                 ready, finding="", logged_status=499) -> Row:
    """Send `body` (of a declared `length`), wait until `ready(rid, sock)` says the phase is
    reached, then close the connection."""
    rid = _rid("gone")
    before = proxy.metrics()
    sock = rawhttp.connect(proxy.port)
    try:
        sock.sendall(_json_head(family, rid, length, scenario) + body)
        reached = ready(rid, sock)
    finally:
        sock.close()
    gone_at = time.monotonic()
    problems = [] if reached else ["the phase was never reached"]
    more, summary = _after_hangup(stack, proxy, rid, upstream, before, gone_at, logged_status)
    return row(GROUP, case, expected, problems + more, summary, finding)


def disconnects(stack: Stack, proxy, gated) -> list[Row]:
    rows = []
    full = json.dumps(calls.body(OPENAI, False)).encode()
    def pause(rid, sock):
        return time.sleep(0.3) or True
    for label, sent in (("invalid JSON so far", full[:20]), ("valid JSON so far", full)):
        rows.append(_hangup_case(
            stack, proxy, f"hang-up while sending the body ({label})",
            "499 client_gone logged; nothing sent upstream; slot freed", "none", OPENAI, None,
            sent, len(full) + 500, pause, F_GONE_MID_BODY))

    def upstream_waiting(rid, sock):
        return wait_for(lambda: bool(_upstream_records(stack, rid)), 5)

    for family in FAMILIES:
        payload = json.dumps(calls.body(family, False)).encode()
        rows.append(_hangup_case(
            stack, proxy, f"hang-up waiting for the upstream's headers · {family}",
            "upstream call cancelled; 499 logged; slot freed", "cancelled", family, "hang",
            payload, len(payload), upstream_waiting))

    def streaming(rid, sock):
        answer = sock.recv(4096)
        return answer.startswith(b"HTTP/1.1 200")

    for family in FAMILIES:
        payload = json.dumps(calls.body(family, True)).encode()
        rows.append(_hangup_case(
            stack, proxy, f"hang-up mid-stream · {family}",
            "upstream call cancelled; 200 client_gone logged; slot freed", "cancelled", family,
            "ok;chunks=400;interval_ms=50", payload, len(payload), streaming,
            logged_status=200))

    def retry_waiting(rid, sock):
        return wait_for(lambda: len(_upstream_records(stack, rid)) == 1, 5) and \
            not time.sleep(0.3)

    payload = json.dumps(calls.body(ANTHROPIC, False)).encode()
    rows.append(_hangup_case(
        stack, proxy, "hang-up during a retry wait (1302, Retry-After 20)",
        "wait abandoned at once; one upstream call; 499 logged", "once",
        ANTHROPIC, "error;code=1302;retry_after=20", payload, len(payload), retry_waiting))
    rows.append(_admission_hangup(stack, gated))
    return rows


def _admission_hangup(stack: Stack, gated) -> Row:
    """A request queued for admission leaves: its place is freed and nothing goes upstream."""
    first = calls.send(gated.url, OPENAI, False, timeout=30)
    rid = _rid("queued")
    before = gated.metrics()
    payload = json.dumps(calls.body(OPENAI, False)).encode()
    sock = rawhttp.connect(gated.port)
    try:
        sock.sendall(_json_head(OPENAI, rid, len(payload)) + payload)
        queued = wait_for(lambda: _queued(gated) == 1, 5)
    finally:
        sock.close()
    gone_at = time.monotonic()
    problems = [] if first.status == 200 else [f"first request {first.status or first.error}"]
    if not queued:
        problems.append("the request never queued for admission")
    if not wait_for(lambda: _queued(gated) == 0, 5):
        problems.append("its place in the admission queue was not freed")
    more, summary = _after_hangup(stack, gated, rid, "none", before, gone_at)
    return row(GROUP, "hang-up while queued for admission",
               "queue place freed; nothing sent upstream; 499 logged", problems + more,
               summary)


def _queued(proxy) -> int:
    try:
        return requests.get(proxy.url + "/health", timeout=5).json()["rate_limit"]["queued"]
    except requests.RequestException:
        return -1


# Oversized -----------------------------------------------------------------------------------
def _as_answer(raw: rawhttp.RawAnswer) -> calls.Answer:
    return calls.Answer(raw.status, raw.headers, raw.body, raw.seconds)


def _shared_json_error(raw: rawhttp.RawAnswer, status: int) -> str:
    """An error from before the request is parsed (so before its family is known): JSON that
    both SDKs read, i.e. an `error` object with a `message`."""
    if raw.status != status:
        return f"status {raw.status}, expected {status}"
    try:
        error = json.loads(raw.body)["error"]
        assert isinstance(error["message"], str)
    except (ValueError, KeyError, TypeError, AssertionError):
        kind = raw.headers.get("content-type", "?")
        return f"{status} with a {kind} body, not a JSON error: {raw.body[:40]!r}"
    return ""


def oversized(stack: Stack, proxy) -> list[Row]:
    rows = []
    for family in FAMILIES:
        rid = _rid("big")
        raw = rawhttp.exchange(proxy.port, _json_head(family, rid, 10 ** 9))
        problems = [calls.family_error(_as_answer(raw), family, 413, "request_too_large")]
        if raw.seconds > 2:
            problems.append(f"answered after {raw.seconds:.1f} s: the body was being read")
        if _upstream_records(stack, rid):
            problems.append("sent upstream")
        rows.append(row(GROUP, f"declared body of 1 GB · {family}",
                        "413 in the family format at once, from the header", problems,
                        f"413 in {raw.seconds * 1000:.0f} ms"))
    chunked = rawhttp.head("POST", PROXY_PATHS[ANTHROPIC], {
        "Content-Type": "application/json", "Transfer-Encoding": "chunked"})
    piece = b"x" * 8192
    body = b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for _ in range(20)) + b"0\r\n\r\n"
    raw = rawhttp.exchange(proxy.port, chunked + body)
    rows.append(row(GROUP, "chunked body over MAX_REQUEST_BYTES · anthropic",
                    "413 in the family format",
                    [calls.family_error(_as_answer(raw), ANTHROPIC, 413)]))
    cases = [
        ("one 10 KB header", rawhttp.head("GET", "/v1/models", {"X-Big": "a" * 10_000}), 431),
        ("101 headers", rawhttp.head("GET", "/v1/models",
                                     [(f"X-H{i}", "v") for i in range(101)]), 431),
        ("request line of 5 KB", rawhttp.head("GET", "/v1/models?q=" + "a" * 5000), 414),
    ]
    for name, request, status in cases:
        raw = rawhttp.exchange(proxy.port, request)
        rows.append(row(GROUP, name, f"{status} with a JSON error body",
                        [_shared_json_error(raw, status)], f"{status} JSON",
                        F_GUNICORN_HTML))
    # Framing errors in a chunked body surface while the proxy reads it: the client's fault.
    bad = rawhttp.head("POST", PROXY_PATHS[OPENAI], {
        "Content-Type": "application/json", "Transfer-Encoding": "chunked"}) + \
        b"zz\r\n{}\r\n0\r\n\r\n"
    raw = rawhttp.exchange(proxy.port, bad)
    rows.append(row(GROUP, "bad chunked framing · openai", "400 in the family format",
                    [calls.family_error(_as_answer(raw), OPENAI, 400)], "400",
                    F_BAD_FRAMING))
    return rows


# Malformed bodies ----------------------------------------------------------------------------
MALFORMED = [
    # name, content type, body, status, OpenAI code
    ("malformed JSON", "application/json", b'{"model": "glm-4.7", "messages": [', 400,
     "invalid_json"),
    ("empty body", "application/json", b"", 400, "invalid_json"),
    ("plain text body", "application/json", b"hello there", 400, "invalid_json"),
    ("JSON array body", "application/json", b"[1, 2]", 400, "invalid_json"),
    ("invalid UTF-8 body", "application/json", b'{"model": "glm-4.7", "x": "\xff\xfe"}', 400,
     "invalid_json"),
    ("text/plain content type", "text/plain", b'{"model": "glm-4.7"}', 415,
     "unsupported_media_type"),
    ("multipart content type", "multipart/form-data; boundary=x",
     b'--x\r\nContent-Disposition: form-data; name="a"\r\n\r\n1\r\n--x--\r\n', 415,
     "unsupported_media_type"),
]


def malformed(stack: Stack, proxy) -> list[Row]:
    rows = []
    for name, content_type, body, status, code in MALFORMED:
        for family in FAMILIES:
            rid = _rid("bad")
            answer = _post(proxy.url + PROXY_PATHS[family], body,
                           {"Content-Type": content_type, "X-Request-Id": rid})
            problems = [calls.family_error(answer, family, status, code)]
            if _upstream_records(stack, rid):
                problems.append("sent upstream")
            rows.append(row(GROUP, f"{name} · {family}",
                            f"{status} {code} in the family format; not sent upstream",
                            problems, f"{status} in the family format"))
    # Lone surrogates are valid JSON escapes but not encodable text: the token counter sees
    # them before the request goes upstream, and must not fail.
    body = b'{"model": "glm-4.7", "max_tokens": 8, "messages": [{"role": "user", ' \
           b'"content": "a\\ud800b\\udfff"}]}'
    for family in FAMILIES:
        answer = _post(proxy.url + PROXY_PATHS[family], body,
                       {"Content-Type": "application/json"})
        problems = [] if answer.status == 200 else [
            f"status {answer.status or answer.error}: {answer.content[:80]!r}"]
        rows.append(row(GROUP, f"lone surrogate escapes in JSON · {family}",
                        "200: proxied (valid JSON), token counting survives", problems,
                        "200"))
    return rows


def _post(url: str, body: bytes, headers: dict) -> calls.Answer:
    try:
        response = requests.post(url, data=body, headers=headers, timeout=30)
    except requests.RequestException as exc:
        return calls.Answer(0, {}, b"", 0.0, type(exc).__name__)
    return calls.Answer(response.status_code, dict(response.headers), response.content, 0.0)


# Path traversal ------------------------------------------------------------------------------
REFUSED_PATHS = [
    "/api/paas/v4/../../admin/reset-rate-limit",
    "/api/anthropic/%2e%2e/%2e%2e/etc/passwd",
    "/api/paas/v4/chat/completions/..%2f..%2fadmin",
    "/api/anthropic/v1/..\\messages",
    "/api/paas/v4/./chat/completions",
    "/v1/../admin/reset-rate-limit",
    "/v1/messages/%2e%2e/%2e%2e/api/paas/v4/chat/completions",
]
# Encoded once more: after the one decoding every server does, no `.` or `..` segment is left,
# so the path may go upstream, but only with its dots still encoded.
FORWARDED_PATHS = ["/api/paas/v4/%252e%252e/%252e%252e/admin"]


def traversal(stack: Stack, proxy) -> list[Row]:
    rows = []
    for path in REFUSED_PATHS:
        rid = _rid("path")
        request = rawhttp.head("POST", path, {"Content-Type": "application/json",
                                             "X-Request-Id": rid}, 2) + b"{}"
        raw = rawhttp.exchange(proxy.port, request)
        family = ANTHROPIC if "/anthropic" in path or path.startswith("/v1/messages") \
            else OPENAI
        problems = [calls.family_error(_as_answer(raw), family, 400,
                                       None if family == ANTHROPIC else "invalid_path")]
        if _upstream_records(stack, rid):
            problems.append("sent upstream")
        rows.append(row(GROUP, f"path {path}", "400 invalid_path in the family format; "
                        "not sent upstream", problems, "400, not sent upstream"))
    for path in FORWARDED_PATHS:
        rid = _rid("path")
        request = rawhttp.head("GET", path, {"X-Request-Id": rid})
        raw = rawhttp.exchange(proxy.port, request)
        records = _upstream_records(stack, rid)
        problems = []
        if records and any(seg in ("..", ".") for seg in records[0].path.split("/")):
            problems.append(f"upstream saw a dot segment: {records[0].path}")
        if raw.status == 0:
            problems.append("no answer")
        seen = records[0].path if records else "not sent"
        rows.append(row(GROUP, f"path {path}", "no `..` segment ever reaches the upstream",
                        problems, f"{raw.status}; upstream path {seen}"))
    return rows
