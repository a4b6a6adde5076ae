"""Where a client URL goes upstream, which API family it speaks, and its bounded `path` label."""

from __future__ import annotations

import dataclasses
import re
from urllib.parse import quote

from . import errors
from .config import Config
from .errors import ANTHROPIC, OPENAI

# Route templates used as the `path` label; anything else is "other" so that random paths
# cannot grow the series count.
_OPENAI_ENDPOINTS = ("chat/completions", "completions", "embeddings", "models",
                     "images/generations", "audio/transcriptions", "audio/speech",
                     "moderations", "files", "batches", "tokenizer")
_ANTHROPIC_ENDPOINTS = ("v1/messages", "v1/messages/count_tokens")
KNOWN_PATHS = frozenset(
    ["/v1/" + e for e in _OPENAI_ENDPOINTS]
    + ["/" + e for e in _ANTHROPIC_ENDPOINTS]
    + ["/api/paas/v4/" + e for e in _OPENAI_ENDPOINTS]
    + ["/api/coding/paas/v4/" + e for e in _OPENAI_ENDPOINTS]
    + ["/api/anthropic/" + e for e in _ANTHROPIC_ENDPOINTS]
)
# Endpoints whose request body must be a JSON object.
JSON_ENDPOINTS = ("chat/completions", "completions", "embeddings", "messages",
                  "messages/count_tokens", "moderations", "tokenizer")

_UNSAFE_SEGMENT = re.compile(r"(^|/)\.{1,2}(/|$)")
_SAFE_CHARS = "/:@!$&'()*+,;=-._~"


@dataclasses.dataclass(frozen=True)
class Route:
    family: str
    upstream_url: str     # without the query string
    path_label: str
    expects_json: bool


def path_label(path: str) -> str:
    return path if path in KNOWN_PATHS else "other"


def family_for_path(path: str) -> str:
    """The family of a client path, also for 404s: errors must be in the caller's format."""
    if path.startswith("/v1/messages") or path.startswith("/api/anthropic"):
        return ANTHROPIC
    return OPENAI


def _check_segments(rest: str) -> None:
    if _UNSAFE_SEGMENT.search(rest) or "\\" in rest or any(ord(c) < 0x20 for c in rest):
        raise errors.invalid_path()


def resolve(config: Config, path: str) -> Route:
    """Map a client path (PATH_INFO) to its upstream. Raises ProxyError(404/400)."""
    if path.startswith("/v1/"):
        rest = path[len("/v1/"):]
        _check_segments(rest)
        if rest == "messages" or rest.startswith("messages/"):
            url = config.anthropic_base + "/v1/" + quote(rest, safe=_SAFE_CHARS)
            return Route(ANTHROPIC, url, path_label(path), rest in JSON_ENDPOINTS)
        url = config.openai_base + "/" + quote(rest, safe=_SAFE_CHARS)
        return Route(OPENAI, url, path_label(path), rest in JSON_ENDPOINTS)
    if path.startswith("/api/"):
        rest = path[len("/api/"):]
        _check_segments(rest)
        family = ANTHROPIC if rest.startswith("anthropic/") or rest == "anthropic" else OPENAI
        url = config.zai_base_url + "/api/" + quote(rest, safe=_SAFE_CHARS)
        endpoint_tail = rest.split("/v4/", 1)[-1] if family == OPENAI else rest.split("/v1/", 1)[-1]
        return Route(family, url, path_label(path), endpoint_tail in JSON_ENDPOINTS)
    raise errors.unknown_route(path)
