"""Z.AI error answers: business-code classification, Retry-After and reset-time parsing.

Z.AI answers 429 for concurrency, frequency, balance and quota alike; the business code in the
body says which. `classify()` reads the three envelopes seen in the wild:

    {"error": {"code": "1302", "message": "..."}}                 (OpenAI surface)
    {"code": 1302, "msg": "...", "success": false}                (flat)
    {"type": "error", "error": {"type": "...", "code": "1303"}}   (Anthropic surface)

and never raises, whatever the bytes: a body it cannot read classifies by HTTP status alone.
Unknown codes keep a safe class (by status) so a new code never turns into a retry storm.

`ZaiError.message` is the provider's text: it may name the account, so it belongs in the
response to the client only, never in logs or metric labels.
"""

from __future__ import annotations

import dataclasses
import email.utils
import json
import math
import re
from datetime import datetime, timedelta, timezone
from typing import Mapping

# Z.AI's naive wall-clock stamps are Beijing time: UTC+8 all year (no DST), so a fixed offset is
# right and needs no time-zone database.
BEIJING = timezone(timedelta(hours=8))

MAX_BODY_BYTES = 64 * 1024          # error bodies are tiny; never parse an unbounded one
MAX_MESSAGE_CHARS = 2000
MAX_RETRY_AFTER = 7 * 24 * 3600.0   # no Z.AI window is longer than a week
# Believable reset instants: 2001 … ~2600. Anything else is treated as absent, because an
# invented reset would tell clients to wait until the wrong time.
_EPOCH_MIN, _EPOCH_MAX = 1e9, 2e10

RESET_KEYS = ("reset_time", "resetTime", "reset_at", "resetAt", "next_reset_time",
              "nextResetTime")
RETRY_AFTER_KEYS = ("retry_after", "retryAfter")

ERROR_CLASSES = ("concurrency", "frequency", "quota", "congestion", "auth", "account",
                 "bad_request", "content", "daily_limit", "overloaded", "server", "unknown")

_EXACT_CODES = {
    "1301": "content",
    "1302": "concurrency",
    "1303": "frequency",
    "1304": "daily_limit",
    "1305": "frequency",     # "rate limit / may be temporarily overloaded": short retry, slow down
    "1308": "quota",         # five-hour window used up
    "1309": "account",       # Coding Plan expired
    "1310": "quota",         # weekly/monthly window used up
    "1311": "account",       # plan does not include the model
    "1312": "congestion",    # model overloaded, try again or another model
    "1313": "frequency",     # fair-use throttling: back off
}
_CODE_RANGES = ((1000, 1099, "auth"), (1100, 1199, "account"), (1200, 1299, "bad_request"))

_STAMP = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2})?")
_LEADING_CODE = re.compile(r"^\s*(\d{4})\b")


@dataclasses.dataclass(frozen=True)
class ZaiError:
    error_class: str
    code: str | None
    message: str | None
    retry_after: float | None   # seconds: max of the Retry-After header and the body's retry_after
    reset_at: float | None      # unix seconds when the exhausted window resets


def code_class(code: str | None) -> str | None:
    """The class of a known business code, None for codes this table does not know."""
    if not code:
        return None
    if code in _EXACT_CODES:
        return _EXACT_CODES[code]
    try:
        number = int(code)
    except ValueError:
        return None
    for low, high, name in _CODE_RANGES:
        if low <= number <= high:
            return name
    return None


def status_class(status: int) -> str:
    """The fallback class when the body names no code this module knows."""
    if status == 429:
        return "unknown"
    if status in (401, 403):
        return "auth"
    if status in (503, 529):
        return "overloaded"
    if status >= 500:
        return "server"
    if 400 <= status < 500:
        return "bad_request"
    return "unknown"


def classify(status: int, body: bytes, headers: Mapping[str, str], now: float) -> ZaiError:
    """Classify one error answer. Never raises."""
    try:
        header_wait = parse_retry_after(_header(headers, "Retry-After"), now)
    except Exception:   # a hostile header must not break error handling
        header_wait = None
    try:
        return _classify(status, body, header_wait, now)
    except Exception:
        return ZaiError(status_class(status), None, None, header_wait, None)


def _classify(status, body, header_wait, now) -> ZaiError:
    inner, outer = _envelope(body)
    code = _code(_lookup(inner, outer, ("code",)))
    message = _lookup(inner, outer, ("message", "msg"))
    message = message[:MAX_MESSAGE_CHARS] if isinstance(message, str) else None
    if code is None and message:
        # Some endpoints put the code at the front of the text ("1302: ..."); only a code this
        # module knows is believed, so a number in prose never becomes a code.
        match = _LEADING_CODE.match(message)
        if match and code_class(match.group(1)):
            code = match.group(1)
    error_class = code_class(code)
    if error_class is None:
        error_class = status_class(status)
        if error_class == "unknown" and _anthropic_type(inner) == "overloaded_error":
            error_class = "overloaded"

    body_wait = _seconds(_lookup(inner, outer, RETRY_AFTER_KEYS))
    waits = [w for w in (header_wait, body_wait) if w is not None]
    reset_at = reset_time(_lookup(inner, outer, RESET_KEYS))
    if reset_at is None and message:
        reset_at = reset_from_text(message)
    return ZaiError(error_class, code, message, max(waits) if waits else None, reset_at)


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a Retry-After value: delta-seconds or an HTTP-date (RFC 9110)."""
    if value is None:
        return None
    text = str(value).strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        seconds = None
    if seconds is not None:
        if not math.isfinite(seconds) or seconds < 0:
            return None
        return min(seconds, MAX_RETRY_AFTER)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:   # RFC 9110 dates are GMT
        when = when.replace(tzinfo=timezone.utc)
    return min(max(0.0, when.timestamp() - now), MAX_RETRY_AFTER)


def reset_time(value) -> float | None:
    """Unix seconds from a body reset value: epoch s or ms (number or numeric string), RFC 3339,
    or a naive 'YYYY-MM-DD HH:MM:SS' stamp read as Beijing time."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return _epoch(float(value))
    if isinstance(value, str):
        text = value.strip()
        try:
            return _epoch(float(text))
        except ValueError:
            return _stamp(text)
    return None


def reset_from_text(message: str) -> float | None:
    """The reset instant named in message text ('… will reset at 2026-09-06 00:00:00')."""
    match = _STAMP.search(message)
    return _stamp(match.group(0)) if match else None


def _epoch(value: float) -> float | None:
    if not math.isfinite(value):
        return None
    seconds = value / 1000.0 if value >= 1e12 else value
    return seconds if _EPOCH_MIN <= seconds <= _EPOCH_MAX else None


def _stamp(text: str) -> float | None:
    try:
        when = datetime.fromisoformat(text.replace(" ", "T", 1))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=BEIJING)
    seconds = when.timestamp()
    return seconds if _EPOCH_MIN <= seconds <= _EPOCH_MAX else None


def _seconds(value) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        seconds = float(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(seconds) or seconds <= 0 or seconds > MAX_RETRY_AFTER:
        return None
    return seconds


def _code(value) -> str | None:
    """A business code as a short digit string, or None."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, float):
        if not value.is_integer():
            return None
        value = int(value)
    text = str(value).strip()
    return text if text.isdigit() and text.isascii() and len(text) <= 8 else None


def _envelope(body: bytes) -> tuple[dict | None, dict | None]:
    """(nested error object or None, top-level object or None)."""
    if not body or len(body) > MAX_BODY_BYTES:
        return None, None
    try:
        top = json.loads(body)
    except (ValueError, RecursionError):
        return None, None
    if not isinstance(top, dict):
        return None, None
    nested = top.get("error")
    return (nested if isinstance(nested, dict) else None), top


def _lookup(inner: dict | None, outer: dict | None, keys):
    """The first key present, the nested error object first (the most specific envelope)."""
    for level in (inner, outer):
        if level is None:
            continue
        for key in keys:
            if key in level and level[key] is not None:
                return level[key]
    return None


def _anthropic_type(inner: dict | None) -> str | None:
    kind = inner.get("type") if inner else None
    return kind if isinstance(kind, str) else None


def _header(headers: Mapping[str, str], name: str) -> str | None:
    if headers is None:
        return None
    value = headers.get(name)
    if value is None:
        lower = name.lower()
        for key, item in headers.items():
            if isinstance(key, str) and key.lower() == lower:
                return item
    return value
