"""Errors the proxy makes itself, in the caller's API family format, and every message they carry.

Upstream error bodies are never built here: they pass through unchanged. These bodies are for
what only the proxy can know (bad JSON, too large, at capacity, upstream unreachable…), so the
client's SDK parses them like any other API error and the message tells a person what to do.
Every message the proxy writes to a client is in this module, so wording stays consistent and
each one names the setting that decides it.

Errors a retry can fix (at capacity, draining, rate limited) say `x-should-retry: true` with the
wait; errors no retry can fix (an exhausted quota, a TLS mismatch, the upstream refusing the
proxy's own key) say `x-should-retry: false`, which the official SDKs obey over their defaults.
"""

from __future__ import annotations

import json
import math
import time
from datetime import datetime, timezone

OPENAI = "openai"
ANTHROPIC = "anthropic"

# status → (OpenAI error type, Anthropic error type)
_TYPES = {
    400: ("invalid_request_error", "invalid_request_error"),
    401: ("authentication_error", "authentication_error"),
    403: ("permission_error", "permission_error"),
    404: ("not_found_error", "not_found_error"),
    405: ("invalid_request_error", "invalid_request_error"),
    408: ("invalid_request_error", "invalid_request_error"),
    409: ("invalid_request_error", "invalid_request_error"),
    413: ("invalid_request_error", "request_too_large"),
    415: ("invalid_request_error", "invalid_request_error"),
    429: ("rate_limit_error", "rate_limit_error"),
    500: ("api_error", "api_error"),
    502: ("api_error", "api_error"),
    503: ("api_error", "overloaded_error"),
    504: ("api_error", "api_error"),
}

# Why an attempt got no answer from the upstream: the `error_type` label of
# zai_proxy_upstream_errors_total and the `outcome` of the request's log line. The first five
# fail while connecting, so the request was never sent.
REFUSED = "upstream_refused"                  # nothing listens on the port (ECONNREFUSED)
DNS = "upstream_dns"                          # the host name does not resolve
TLS = "upstream_tls"                          # certificate, protocol version, or not TLS at all
CONNECT_TIMEOUT = "upstream_connect_timeout"  # no connection within UPSTREAM_CONNECT_TIMEOUT
UNREACHABLE = "upstream_unreachable"          # no route to the host or its network
RESET = "upstream_reset"                      # closed or reset after the request was sent
PROTOCOL = "upstream_protocol"                # bytes came back, but not a valid HTTP answer
TIMEOUT = "upstream_timeout"                  # silent for UPSTREAM_READ_TIMEOUT
CONNECTION = "upstream_connection"            # any other connection failure
CONNECT_PHASE = frozenset({REFUSED, DNS, TLS, CONNECT_TIMEOUT, UNREACHABLE})
TRANSPORT_KINDS = CONNECT_PHASE | {RESET, PROTOCOL, TIMEOUT, CONNECTION}
# Failures once the upstream had answered: its body broke off, or is not what it claims.
READ_ERROR = "read_error"                     # an answer relayed as it came, or a stream, broke
TRUNCATED = "truncated_response"              # a 2xx body that is empty, cut, or not its JSON;
#                                               a stream without its family's terminal event
EMPTY_STREAM = "empty_streaming"              # a 2xx event stream with no first byte
BAD_ENCODING = "bad_encoding"                 # a body that does not decode as its
#                                               Content-Encoding (gzip, deflate) says
# The answer could not be written to the client (the server refused what the proxy handed it):
# the request line's outcome.
WRITE_ERROR = "write_error"

_CAUSES = {
    REFUSED: "the connection was refused",
    DNS: "its host name did not resolve",
    TLS: "the TLS handshake failed",
    CONNECT_TIMEOUT: "no connection within UPSTREAM_CONNECT_TIMEOUT",
    UNREACHABLE: "there is no route to it",
    RESET: "the connection was closed before an answer",
    PROTOCOL: "its answer was not valid HTTP",
    CONNECTION: "the connection failed",
}


def error_body(family: str, status: int, message: str, code: str) -> bytes:
    openai_type, anthropic_type = _TYPES.get(status, ("api_error", "api_error"))
    if family == ANTHROPIC:
        payload = {"type": "error", "error": {"type": anthropic_type, "message": message}}
    else:
        payload = {"error": {"message": message, "type": openai_type, "code": code}}
    return json.dumps(payload, separators=(",", ":")).encode()


def stream_error_event(family: str, message: str, code: str) -> bytes:
    """The last event of a stream that failed after bytes had reached the client."""
    if family == ANTHROPIC:
        payload = {"type": "error", "error": {"type": "api_error", "message": message}}
        return b"event: error\ndata: " + json.dumps(payload).encode() + b"\n\n"
    payload = {"error": {"message": message, "type": "api_error", "code": code}}
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


class ProxyError(Exception):
    """Raised inside the pipeline to answer with a proxy-made error.

    `code` is what the client's body says; `outcome` what the log line says, when it is more
    precise than the code (an upstream failure's cause)."""

    def __init__(self, status: int, message: str, code: str, headers: dict | None = None,
                 outcome: str | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.headers = headers or {}
        self.outcome = outcome or code


class ClientGone(Exception):
    """The client hung up while we waited; nobody is left to answer."""


# The request ---------------------------------------------------------------------------------
def unknown_route(path: str | None = None) -> ProxyError:
    where = f"for {path!r}" if path is not None else "for this path"
    return ProxyError(404, f"No route {where}. Use /v1/chat/completions (OpenAI), /v1/messages "
                      "(Anthropic) or Z.AI's own /api/... paths.", "unknown_route")


def method_not_allowed(method: str, path: str) -> ProxyError:
    return ProxyError(405, f"Method {method} is not allowed on {path}.", "method_not_allowed")


def invalid_path() -> ProxyError:
    return ProxyError(400, "The request path contains '.', '..', a backslash or a control "
                      "character; such paths are refused.", "invalid_path")


def invalid_api_key() -> ProxyError:
    return ProxyError(401, "Missing or invalid proxy API key: send it as "
                      "'Authorization: Bearer <key>' or 'x-api-key: <key>'.", "invalid_api_key",
                      {"WWW-Authenticate": "Bearer"})


def too_large(limit: int) -> ProxyError:
    return ProxyError(413, f"The request body is larger than MAX_REQUEST_BYTES ({limit} bytes).",
                      "request_too_large")


def body_timeout(seconds: float) -> ProxyError:
    return ProxyError(408, f"The request body did not arrive within {seconds:g} s "
                      "(CLIENT_BODY_TIMEOUT).", "request_timeout", {"Connection": "close"})


def invalid_chunking() -> ProxyError:
    return ProxyError(400, "The request body's chunked transfer encoding is invalid.",
                      "invalid_body", {"Connection": "close"})


def unsupported_media_type(content_type: str) -> ProxyError:
    return ProxyError(415, f"Content-Type {content_type!r} is not supported here: send the body "
                      "as JSON with 'Content-Type: application/json'.", "unsupported_media_type")


def not_utf8() -> ProxyError:
    return ProxyError(400, "The request body is not valid UTF-8 JSON.", "invalid_json")


def invalid_json(detail: str) -> ProxyError:
    return ProxyError(400, f"The request body is not valid JSON ({detail}).", "invalid_json")


def not_an_object() -> ProxyError:
    return ProxyError(400, "The request body must be a JSON object.", "invalid_json")


# The proxy's own limits ----------------------------------------------------------------------
def retry_in(seconds: float) -> dict:
    """A retry is worth it after `seconds`: whole seconds for any client, milliseconds for the
    SDKs (they read `retry-after-ms` first)."""
    return {"x-should-retry": "true", "Retry-After": str(max(1, math.ceil(round(seconds, 6)))),
            "retry-after-ms": str(max(1, math.ceil(round(seconds * 1000, 6))))}


NOT_RETRIED = {"x-should-retry": "false"}


def draining() -> ProxyError:
    return ProxyError(503, "The proxy is shutting down; retry on another instance.", "draining",
                      {**retry_in(1), "Connection": "close"})


def at_capacity(max_workers: int) -> ProxyError:
    return ProxyError(503, f"The proxy is at capacity ({max_workers} requests in flight, "
                      "MAX_WORKERS); retry shortly.", "at_capacity", retry_in(1))


def rate_limited(retry_after: float) -> ProxyError:
    return ProxyError(429, "The proxy's adaptive rate limit is saturated (waiting would exceed "
                      "RATE_LIMIT_MAX_WAIT); retry after the indicated time.", "rate_limited",
                      retry_in(retry_after))


def quota_exhausted(reset_in: float) -> ProxyError:
    """Enforcement: no request reaches Z.AI until the window resets, so retrying cannot help; the
    reset instant is in X-Zai-Rate-Limit-Reset (an SDK told to wait would wait hours)."""
    reset_at = datetime.fromtimestamp(time.time() + reset_in, timezone.utc)
    return ProxyError(429, f"The Z.AI quota window is exhausted; it resets in {int(reset_in)} s.",
                      "quota_exhausted", {**NOT_RETRIED, "X-Zai-Error-Class": "quota",
                                          "X-Zai-Rate-Limit-Reset":
                                              reset_at.strftime("%Y-%m-%dT%H:%M:%SZ")})


def unexpected() -> ProxyError:
    return ProxyError(500, "The proxy failed unexpectedly; the request id is in the logs.",
                      "proxy_error")


# The upstream --------------------------------------------------------------------------------
def no_answer(kind: str, origin: str, detail: str = "") -> ProxyError:
    """No answer from the upstream, for the transport failure `kind` (one of TRANSPORT_KINDS).
    The client's code stays `upstream_connection` or `upstream_timeout`; the cause is in the
    message and in the log line's outcome."""
    if kind == TIMEOUT:
        return ProxyError(504, "The upstream did not answer within UPSTREAM_READ_TIMEOUT.", TIMEOUT)
    cause = _CAUSES.get(kind, _CAUSES[CONNECTION])
    message = f"The upstream could not be reached ({origin}): {cause}"
    if detail:
        message += f" ({detail})"
    # A certificate or protocol mismatch does not heal: the proxy never retries it, nor should
    # the client.
    headers = dict(NOT_RETRIED) if kind == TLS else None
    return ProxyError(502, message + ".", CONNECTION, headers, outcome=kind)


UPSTREAM_AUTH_FAILED = "upstream_auth_failed"


def upstream_auth_failed(status: int, code: str | None) -> ProxyError:
    """Z.AI refused the proxy's own key (ZAI_API_KEY), not the client's: a gateway failure
    (502), so that no client mistakes it for its own bad proxy key (401 invalid_api_key)."""
    said = f"HTTP {status}" + (f", code {code}" if code else "")
    headers = {**NOT_RETRIED, "X-Zai-Error-Class": "auth"}
    if code:
        headers["X-Zai-Error-Code"] = code
    return ProxyError(502, f"Z.AI refused the proxy's own credentials ({said}): the operator must "
                      "fix ZAI_API_KEY. Your request and your proxy key are not at fault; "
                      "retrying will not help.", UPSTREAM_AUTH_FAILED, headers)


def answer_broke(kind: str) -> ProxyError:
    """The upstream's answer, relayed as it came, broke off (`read_error`) or fell silent."""
    if kind == TIMEOUT:
        return stalled()
    return ProxyError(502, "The upstream connection broke while sending its answer.", READ_ERROR)


def stalled() -> ProxyError:
    return ProxyError(504, "The upstream stopped sending for longer than UPSTREAM_READ_TIMEOUT.",
                      TIMEOUT)


def past_deadline(seconds: float) -> ProxyError:
    """The request's total deadline passed before its answer was complete."""
    return ProxyError(504, f"The upstream's answer was not complete within {seconds:g} s "
                      "(UPSTREAM_TOTAL_TIMEOUT).", TIMEOUT)


def bad_success(kind: str) -> ProxyError:
    """A 2xx whose body is empty, cut, not the JSON it claims, or not decodable (`kind`:
    TRUNCATED, EMPTY_STREAM or BAD_ENCODING); a silent one is `stalled()`."""
    if kind == TIMEOUT:
        return stalled()
    if kind == BAD_ENCODING:
        return ProxyError(502, "The upstream answered 200 with a body that does not decode as "
                          "its Content-Encoding says.", kind)
    return ProxyError(502, f"The upstream answered 200 with an empty or cut body ({kind}).", kind)


def stream_failure_message(kind: str, deadline: float | None = None) -> str:
    """The message of the error event that ends a stream the upstream broke off (`kind`), or
    whose total deadline (`deadline` seconds) passed."""
    if deadline is not None:
        return (f"The upstream's answer was not complete within {deadline:g} s "
                "(UPSTREAM_TOTAL_TIMEOUT).")
    if kind == TIMEOUT:
        return "The upstream stopped sending for longer than UPSTREAM_READ_TIMEOUT."
    if kind == TRUNCATED:
        return "The upstream ended the stream in the middle of an event."
    if kind == BAD_ENCODING:
        return "The upstream's compressed stream stopped decoding."
    return "The upstream connection broke in the middle of the stream."


def no_terminal_event_message() -> str:
    """The message of the error event that ends a stream the upstream ended early. (It never
    quotes the terminal event itself: a client that looks for `[DONE]` in a line would take the
    error for the end.)"""
    return "The upstream ended the stream before its last event: the answer is cut."


# Service endpoints ---------------------------------------------------------------------------
def admin_disabled() -> ProxyError:
    return ProxyError(404, "The admin endpoint is disabled: set ADMIN_TOKEN to enable it.",
                      "admin_disabled")


def invalid_admin_token() -> ProxyError:
    return ProxyError(401, "Missing or invalid admin token (Authorization: Bearer <ADMIN_TOKEN>).",
                      "invalid_admin_token")


def rate_limit_disabled() -> ProxyError:
    return ProxyError(409, "Rate limiting is disabled (RATE_LIMIT_ENABLED=false).",
                      "rate_limit_disabled")
