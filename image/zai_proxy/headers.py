"""Which headers cross the proxy, in each direction."""

from __future__ import annotations

from .config import Config
from .errors import ANTHROPIC

HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
    "trailers", "transfer-encoding", "upgrade", "proxy-connection",
})
# Client credentials and identity never go upstream: Z.AI sees the proxy's key and the proxy's
# User-Agent (SDK identity headers were reported to draw extra 429s). Forwarding headers would
# leak the cluster's topology.
_DROP_REQUEST = HOP_BY_HOP | frozenset({
    "host", "content-length", "authorization", "x-api-key", "api-key", "user-agent",
    "accept-encoding", "cookie", "forwarded", "x-forwarded-for", "x-forwarded-host",
    "x-forwarded-proto", "x-forwarded-port", "x-real-ip", "x-request-id", "expect",
})
# gunicorn sets its own Date/Server; the body length is re-framed by us.
_DROP_RESPONSE = HOP_BY_HOP | frozenset({"content-length", "date", "server", "content-encoding"})


def _connection_listed(headers) -> set[str]:
    listed = headers.get("Connection", "")
    return {token.strip().lower() for token in listed.split(",") if token.strip()}


def upstream_request_headers(client_headers, family: str, config: Config,
                             request_id: str) -> dict[str, str]:
    extra = _connection_listed(client_headers)
    out = {}
    for name, value in client_headers.items():
        lower = name.lower()
        if lower in _DROP_REQUEST or lower in extra or lower.startswith("x-stainless-"):
            continue
        out[name] = value
    out["User-Agent"] = f"zai-proxy/{config.version}"
    out["Accept-Encoding"] = "identity"  # bodies are inspected (usage, truncation)
    out["X-Request-Id"] = request_id
    if family == ANTHROPIC:
        out["x-api-key"] = config.zai_api_key
    else:
        out["Authorization"] = "Bearer " + config.zai_api_key
    return out


def client_response_headers(fields, connection: str = "") -> list[tuple[str, str]]:
    """The (name, value) `fields` of an upstream answer that are relayed to the client, given
    the answer's Connection header (the fields it lists are hop-by-hop too)."""
    extra = {token.strip().lower() for token in connection.split(",") if token.strip()}
    return [(name, value) for name, value in fields
            if name.lower() not in _DROP_RESPONSE and name.lower() not in extra]
