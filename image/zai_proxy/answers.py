"""What the upstream answered, judged in one place: its status, its head, its body's coding and
framing, its header fields, how its stream ended.

`judge()` sorts an answer into how the pipeline handles it; `complete()` says whether a whole 2xx
body is the answer it claims to be; `stream_end()` whether a relayed stream ended cleanly;
`client_headers()` which of its header fields the client gets. The rules the HTTP client applies
while reading a head (interim responses, status range, header block, framing: `interim()`,
`head_problem()`, `reusable()`) and the content coding (`body_coding()`) are decided here too;
`upstream.py` applies them. Anything the proxy must refuse or repair in an upstream answer
belongs here, next to these.
"""

from __future__ import annotations

import json

from . import codings, errors
from . import headers as hdrs
from .sse import SSEParser

# How an answer is handled:
CLASSIFIED = "classified"  # Z.AI's 429s and "overloaded" (503, and 529 on the Anthropic
#                            surface): the body is read and classified for a retry decision
VERBATIM = "verbatim"      # any other status ≥ 300, and HEAD: relayed whole, as it came
STREAM = "stream"          # a 2xx event stream: relayed event by event as it arrives
WHOLE = "whole"            # any other 2xx: read whole and checked complete before it is relayed

CLASSIFIED_STATUSES = frozenset({429, 503, 529})

# Interim responses (1xx) read before the final one, at most. Each is consumed whole; a longer
# series is not an answer.
MAX_INTERIM = 20
SKIP, REFUSE = "skip", "refuse"

# How a body's Content-Encoding is handled (Answer.coding):
IDENTITY = "identity"      # no coding: the body is what it is
DECODED = "decoded"        # decoded by the proxy; the client gets the body without the header
KEPT = "kept"              # a coding the proxy does not decode, or an answer without a body:
#                            body and header are relayed as they came
FAILED = "failed"          # announced as decodable, but did not decode: relayed as it came
#                            (an error answer), or refused (a 2xx the proxy must read)

# How a stream that is not complete ended (stream_end):
CUT = "cut"                  # in the middle of a line
ENDED_EARLY = "ended_early"  # after whole events, but before the family's terminal event

# How far back the last event of a stream is looked for. Terminal events are small; an upstream
# error event with a long message still fits.
_LAST_EVENT_WINDOW = 16384


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
    return field(headers, "Content-Type").startswith("text/event-stream")


def field(headers, name: str) -> str:
    """headers.get(name, ""), without the KeyError that urllib3's header dict raises and
    catches inside get() for every absent field (most of those asked for are absent)."""
    return headers[name] if name in headers else ""


# Reading the head ----------------------------------------------------------------------------
def interim(status: int) -> str:
    """What to do with a 1xx read where the final status was expected. RFC 9110 §15.2: a client
    parses any number of interim responses before the final one, on the same connection; `101`
    switches protocols, which the proxy never asked for."""
    return REFUSE if status == 101 else SKIP


def status_problem(status: int) -> str | None:
    """Why a final status is not acceptable (RFC 9110 §15: three digits, 100 to 599)."""
    if status == 101:
        return "it switched protocols (101), which the proxy never asks for"
    if not 200 <= status <= 599:
        return f"its status {status} is outside 200-599"
    return None


def head_problem(message) -> str | None:
    """Why a parsed header block (http.client's HTTPMessage) is not a valid HTTP head, or None.
    A line that is not a field, or a field without a name, makes the parser stop or skip
    lines, so the framing it found may be wrong: such an answer is refused (nginx: 502 "upstream
    sent invalid header"). Invalid framing fields are refused for the same reason."""
    if message.defects or message.get_payload():
        return "its header block has a line that is not a header field"
    lengths = message.get_all("Content-Length") or []
    values = {part.strip() for value in lengths for part in value.split(",")}
    if len(values) > 1 or any(not value.isdigit() for value in values):
        return "its Content-Length is not one valid length"
    codings_ = message.get_all("Transfer-Encoding") or []
    if codings_ and ",".join(codings_).strip().lower() != "chunked":
        return "its Transfer-Encoding is not chunked alone"
    return None


def reusable(message) -> bool:
    """Whether the connection may serve another request once this answer is read: not when both
    Transfer-Encoding and Content-Length came (RFC 9112 §6.3: a sign of response splitting)."""
    return not (message.get("Transfer-Encoding") and message.get("Content-Length"))


# The body's coding ---------------------------------------------------------------------------
def body_coding(headers, status: int, method: str) -> tuple[str, codings.Decoder | None]:
    """(how the body's Content-Encoding is handled, the decoder when the proxy decodes it)."""
    value = field(headers, "Content-Encoding")
    if not codings.codings(value):
        return IDENTITY, None
    if method == "HEAD" or status in (204, 304):
        return KEPT, None                   # no body: the header describes what a GET would get
    decoder = codings.decoder_for(value)
    return (DECODED, decoder) if decoder is not None else (KEPT, None)


# Judging bodies ------------------------------------------------------------------------------
def complete(answer, raw: bytes) -> tuple[bool, object]:
    """Whether a 2xx body is the answer it claims to be (not empty and, when it says it is JSON,
    parses), and the parsed JSON when it was parsed (None otherwise), so that nothing after this
    parses it again. A body in a coding the proxy does not decode can only be checked for
    bytes."""
    if not raw:
        return False, None
    if answer.coding == KEPT:
        return True, None
    if "json" in field(answer.headers, "Content-Type"):
        try:
            return True, json.loads(raw)
        except ValueError:
            return False, None
    return True, None


def stream_end(family: str, last: bytes, tail: bytes) -> str | None:
    """How a stream ends, given the last piece relayed (`last`, whole events) and the bytes left
    after the last event boundary (`tail`): None when cleanly, CUT in the middle of a line,
    ENDED_EARLY after a line but before the family's terminal event. Both are counted as
    errors.TRUNCATED.

    A last event without its blank line is passed on as it is, for byte exactness; half a line
    is not. A stream whose last event is not its family's terminal event ended early, whatever
    the framing said: an SSE stream of either family ends with `data: [DONE]` (OpenAI) or
    `message_stop` (Anthropic), or with the upstream's own error event."""
    if tail and not tail.endswith((b"\n", b"\r")):
        return CUT
    if not is_terminal(family, last_event(last[-_LAST_EVENT_WINDOW:] + tail)):
        return ENDED_EARLY
    return None


def ends_stream(family: str, piece: bytes) -> bool:
    """Whether `piece` (whole events) ends with the family's terminal event: from then on the
    client has the whole answer, whatever becomes of the connection."""
    window = piece[-_LAST_EVENT_WINDOW:]
    marker = b"message_stop" if family == errors.ANTHROPIC else b"[DONE]"
    return marker in window and is_terminal(family, last_event(window))


def last_event(data: bytes):
    """The last event in `data` that has a field (comments and empty events do not count)."""
    events = SSEParser().feed(data + b"\n\n")
    for event in reversed(events):
        if event.event is not None or event.data:
            return event
    return None


def is_terminal(family: str, event) -> bool:
    if event is None:
        return False
    if family == errors.ANTHROPIC:
        if event.event in ("message_stop", "error"):
            return True
        return event.event is None and _data_type(event.data) in ("message_stop", "error")
    if event.data.strip() == "[DONE]":
        return True
    payload = _json(event.data)
    return isinstance(payload, dict) and "error" in payload


def _data_type(data: str):
    payload = _json(data)
    return payload.get("type") if isinstance(payload, dict) else None


def _json(data: str):
    try:
        return json.loads(data)
    except ValueError:
        return None


# Header fields -------------------------------------------------------------------------------
def client_headers(answer) -> tuple[list[tuple[str, str]], list[str]]:
    """(the upstream's header fields that the client receives, the names of those dropped
    because they cannot be relayed). Hop-by-hop and re-framed fields are left out (headers.py),
    Content-Encoding too when the proxy decoded the body; repeated fields stay repeated."""
    upstream_headers = answer.headers
    drop = {"content-encoding"} if answer.coding == DECODED else ()
    return hdrs.client_response_headers(upstream_headers.items(),
                                        field(upstream_headers, "Connection"), drop)
