"""What the upstream answered, judged in one place: its status, its headers, its body's framing.

`judge()` sorts an answer into how the pipeline handles it; `complete()` says whether a whole 2xx
body is the answer it claims to be; `stream_end()` whether a relayed stream ended cleanly;
`client_headers()` which of its header fields the client gets. Anything the proxy must refuse
or repair in an upstream answer belongs here, next to these.
"""

from __future__ import annotations

import json

from . import errors
from . import headers as hdrs

# How an answer is handled:
CLASSIFIED = "classified"  # Z.AI's 429s and "overloaded" (503, and 529 on the Anthropic
#                            surface): the body is read and classified for a retry decision
VERBATIM = "verbatim"      # any other status ≥ 300, and HEAD: relayed whole, as it came
STREAM = "stream"          # a 2xx event stream: relayed event by event as it arrives
WHOLE = "whole"            # any other 2xx: read whole and checked complete before it is relayed

CLASSIFIED_STATUSES = frozenset({429, 503, 529})


def judge(answer, method: str) -> str:
    status = answer.status
    if status in CLASSIFIED_STATUSES:
        return CLASSIFIED
    if status >= 300 or method == "HEAD":
        return VERBATIM
    if is_event_stream(answer.headers):
        return STREAM
    return WHOLE


def is_event_stream(headers) -> bool:
    return headers.get("Content-Type", "").startswith("text/event-stream")


def complete(headers, raw: bytes) -> tuple[bool, object]:
    """Whether a 2xx body is the answer it claims to be (not empty and, when it says it is JSON,
    parses), and the parsed JSON when it was parsed (None otherwise), so that nothing after this
    parses it again."""
    if not raw:
        return False, None
    if "json" in headers.get("Content-Type", ""):
        try:
            return True, json.loads(raw)
        except ValueError:
            return False, None
    return True, None


def stream_end(tail: bytes) -> str | None:
    """How a stream's last bytes end it: None when cleanly, else the failure kind. A last event
    without its blank line is passed on as it is (byte exactness); half a line is not."""
    if tail and not tail.endswith((b"\n", b"\r")):
        return errors.TRUNCATED
    return None


def client_headers(upstream_headers) -> list[tuple[str, str]]:
    """The upstream's header fields that the client receives (hop-by-hop and re-framed ones
    are dropped; see headers.py). A repeated field reaches the client as one, its values
    joined with ", "."""
    return hdrs.client_response_headers(upstream_headers.itermerged(),
                                        upstream_headers.get("Connection", ""))
