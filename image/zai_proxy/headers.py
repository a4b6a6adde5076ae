"""Which headers cross the proxy, in each direction."""

from __future__ import annotations

import re

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
# gunicorn sets its own Date/Server; the body length is re-framed by us. Content-Encoding goes
# with the body: it is dropped only when the body was decoded (answers.client_headers).
_DROP_RESPONSE = HOP_BY_HOP | frozenset({"content-length", "date", "server"})
# RFC 9110 §5.1 and §5.5: what a server may write (gunicorn refuses anything else).
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_FIELD_VALUE = re.compile(r"[ \t\x21-\x7e\x80-\xff]*")
_OBS_FOLD = re.compile(r"\r?\n[ \t]+")
# The environ keys of the body's framing fields: CONTENT_TYPE and CONTENT_LENGTH are the
# client's (when not empty); an HTTP_ copy of them is not a field of its own (PEP 3333).
_FRAMING = frozenset({"CONTENT_TYPE", "CONTENT_LENGTH"})
_HTTP_FRAMING = frozenset({"HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH"})


def _connection_listed(value: str) -> set[str]:
    return {token.strip().lower() for token in value.split(",") if token.strip()}


def upstream_request_headers(environ, family: str, config: Config,
                             request_id: str) -> dict[str, str]:
    """The fields sent upstream, from the client's request (its WSGI environ). Names are
    spelled as werkzeug's EnvironHeaders spells them ("X-Custom-Field"), read in one pass over
    the environ; a field is dropped by its lower-case name before it is spelled."""
    extra = _connection_listed(environ.get("HTTP_CONNECTION", ""))
    out = {}
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            if key in _HTTP_FRAMING:
                continue
            name = key[5:].replace("_", "-")
        elif key in _FRAMING and value:
            name = key.replace("_", "-")
        else:
            continue
        lower = name.lower()
        if lower in _DROP_REQUEST or lower in extra or lower.startswith("x-stainless-"):
            continue
        out[name.title()] = value
    out["User-Agent"] = f"zai-proxy/{config.version}"
    out["Accept-Encoding"] = "identity"  # bodies are inspected (usage, truncation)
    out["X-Request-Id"] = request_id
    if family == ANTHROPIC:
        out["x-api-key"] = config.zai_api_key
    else:
        out["Authorization"] = "Bearer " + config.zai_api_key
    return out


def client_response_headers(fields, connection: str = "",
                            drop=()) -> tuple[list[tuple[str, str]], list[str]]:
    """(the (name, value) `fields` of an upstream answer that are relayed to the client, the
    names of fields dropped because they cannot be relayed), given the answer's Connection
    header (the fields it lists are hop-by-hop too) and further lower-case names to `drop`.

    A field is relayed only as a valid HTTP field (RFC 9110 §5): a token for a name, and a value
    without control characters. Obsolete line folding is replaced by a space (RFC 9112 §5.2);
    a field that is still invalid is dropped, since the server would refuse to write it."""
    extra = _connection_listed(connection)
    kept, dropped = [], []
    for name, value in fields:
        lower = name.lower()
        if lower in _DROP_RESPONSE or lower in extra or lower in drop:
            continue
        if "\n" in value:
            value = _OBS_FOLD.sub(" ", value)
        if _TOKEN.fullmatch(name) and _FIELD_VALUE.fullmatch(value):
            kept.append((name, value.strip(" \t")))
        else:
            dropped.append(name)
    return kept, dropped
