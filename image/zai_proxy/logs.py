"""Logging: JSON lines on stdout, one per request.

A line carries ids, route, status, timings, variant, model and token counts; never a key, a
prompt or a completion (those never reach this module).
"""

from __future__ import annotations

import json
import logging
import sys

from gunicorn import glogging



# Secrets of this process (Z.AI key, client keys, admin token), set by setup(). Nothing should
# ever log them; this is the second line of defence, for an exception message that quotes one.
_SECRETS: tuple[str, ...] = ()
REDACTED = "[redacted]"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = self._format(record)
        for secret in _SECRETS:
            if secret in line:
                line = line.replace(secret, REDACTED)
        return line

    def _format(self, record: logging.LogRecord) -> str:
        line = {"ts": round(record.created, 3), "level": record.levelname.lower(),
                "logger": record.name, "msg": record.getMessage()}
        fields = getattr(record, "fields", None)
        if fields:
            line.update(fields)
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def setup(level: str, secrets=()) -> None:
    global _SECRETS
    # Longest first, so a key that contains another is redacted whole.
    _SECRETS = tuple(sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True))
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


class RequestLog:
    def __init__(self, variant: str):
        self.variant = variant
        self._log = logging.getLogger("zai_proxy.request")

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
        self._log.info("request", extra={"fields": fields})


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
