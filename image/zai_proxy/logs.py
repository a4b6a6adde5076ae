"""Logging: JSON lines on stdout, one per request.

A line carries ids, route, status, timings, variant, model and token counts; never a key, a
prompt or a completion (those never reach this module).
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from typing import Callable

from gunicorn import glogging

# Secrets of this process (Z.AI key, client keys, admin token), set by setup(). Nothing should
# ever log them; this is the second line of defence, for an exception message that quotes one.
_SECRETS: tuple[str, ...] = ()
REDACTED = "[redacted]"


# The handler setup() installed: request lines are written to it directly.
_HANDLER: logging.StreamHandler | None = None


def render(created: float, level: str, logger: str, msg: str, fields: dict | None = None,
           exc: str | None = None) -> str:
    """One JSON log line (without its newline), secrets redacted."""
    line = {"ts": round(created, 3), "level": level, "logger": logger, "msg": msg}
    if fields:
        line.update(fields)
    if exc:
        line["exc"] = exc
    text = json.dumps(line, default=str)
    for secret in _SECRETS:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        exc = self.formatException(record.exc_info) if record.exc_info else None
        return render(record.created, record.levelname.lower(), record.name,
                      record.getMessage(), getattr(record, "fields", None), exc)


def setup(level: str, secrets=()) -> None:
    global _SECRETS, _HANDLER
    # Longest first, so a key that contains another is redacted whole.
    _SECRETS = tuple(sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True))
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    _HANDLER = handler


class RequestLog:
    def __init__(self, variant: str):
        self.variant = variant
        self._log = logging.getLogger("zai_proxy.request")
        self._package = logging.getLogger("zai_proxy")

    def write(self, exchange, elapsed: float) -> None:
        if not self._log.isEnabledFor(logging.INFO):
            return
        fields = {
            "request_id": exchange.request_id, "method": exchange.method,
            "route": exchange.path_label, "status": exchange.status,
            "duration_ms": round(elapsed * 1000, 2), "variant": self.variant,
            "model": exchange.model, "upstream_status": exchange.upstream_status,
            "attempts": exchange.attempts, "bytes_out": exchange.sent_bytes,
            "outcome": exchange.outcome,
        }
        if exchange.first_byte_at is not None:
            fields["ttfb_ms"] = round((exchange.first_byte_at - exchange.started) * 1000, 2)
        if exchange.usage:
            fields["usage"] = exchange.usage
        handler = _HANDLER
        # The shortcut holds only while the root's JSON handler is the one reader of the line;
        # anything listening on the proxy's own loggers (a test's capture) gets the record.
        if (handler is None or handler not in logging.root.handlers or self._log.handlers
                or self._package.handlers):
            self._log.info("request", extra={"fields": fields})
            return
        # The same line the logging module would write, without a LogRecord and the handler
        # chain: this runs once per request.
        text = render(time.time(), "info", "zai_proxy.request", "request", fields)
        with handler.lock:
            try:
                handler.stream.write(text + "\n")
                handler.stream.flush()
            except (OSError, ValueError):
                pass    # stdout is gone (closed pipe): there is nowhere left to write


class EveryPeriod:
    """One line per period for a condition that repeats on every request (an upstream refusing
    the proxy's key, absurd usage figures): the first occurrence is logged at once, the next
    ones are counted, and the first after the period reports how many were held back."""

    def __init__(self, period: float, clock: Callable[[], float] = time.monotonic):
        self.period = period
        self._clock = clock
        self._last: float | None = None
        self._held = 0
        self._lock = threading.Lock()

    def due(self) -> int | None:
        """None: stay quiet (this occurrence is counted). Otherwise log now; the number is how
        many occurrences were held back since the last line."""
        now = self._clock()
        with self._lock:
            if self._last is not None and now - self._last < self.period:
                self._held += 1
                return None
            held, self._held, self._last = self._held, 0, now
            return held


class GunicornLogger(glogging.Logger):
    """gunicorn's own lines (start, signals, worker exits) in the proxy's JSON shape.

    A logger class rather than `logconfig_dict`: with the latter gunicorn formats an access
    line for every request and throws it away (6 % of the CPU in `make bench`); the proxy
    writes its own request line instead."""

    def setup(self, cfg):
        super().setup(cfg)
        for handler in self.error_log.handlers:
            handler.setFormatter(JsonFormatter())
            if isinstance(handler, logging.StreamHandler) and handler.stream is sys.stderr:
                handler.setStream(sys.stdout)   # one stream, one format, for log pipelines

    def access(self, resp, req, environ, request_time):
        return None
