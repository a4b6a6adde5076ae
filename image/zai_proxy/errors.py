"""Errors the proxy makes itself, in the caller's API family format.

Upstream error bodies are never built here: they pass through unchanged. These bodies are for
what only the proxy can know (bad JSON, too large, at capacity, upstream unreachable…), so the
client's SDK parses them like any other API error and the message tells a person what to do.
"""

from __future__ import annotations

import json

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
    413: ("invalid_request_error", "request_too_large"),
    415: ("invalid_request_error", "invalid_request_error"),
    429: ("rate_limit_error", "rate_limit_error"),
    500: ("api_error", "api_error"),
    502: ("api_error", "api_error"),
    503: ("api_error", "overloaded_error"),
    504: ("api_error", "api_error"),
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
    """Raised inside the pipeline to answer with a proxy-made error."""

    def __init__(self, status: int, message: str, code: str, headers: dict | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.headers = headers or {}
