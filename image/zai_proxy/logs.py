"""Logging: JSON lines on stdout, one per request.

A line carries ids, route, status, timings, variant, model and token counts; never a key, a
prompt or a completion (those never reach this module).
"""

from __future__ import annotations

import json
import logging
import sys



class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {"ts": round(record.created, 3), "level": record.levelname.lower(),
                "logger": record.name, "msg": record.getMessage()}
        fields = getattr(record, "fields", None)
        if fields:
            line.update(fields)
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def setup(level: str) -> None:
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
