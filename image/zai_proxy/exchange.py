"""Exchange: what one proxied request did, recorded as it goes, for its metrics and log line."""

from __future__ import annotations

import os
import time

from . import client_deadlines, routes, upstream
from .disconnect import InFlight
from .tokens import NO_ACCOUNTANT


class Exchange:
    __slots__ = ("state", "request", "metrics", "started", "method", "path", "path_label", "family",
                 "request_id", "inflight", "status", "sent_bytes", "first_byte_at",
                 "upstream_status", "attempts", "model", "outcome", "usage", "accountant",
                 "holds_slot", "watch_fd", "client_environ", "deadline_at", "_finished")

    def __init__(self, state, request, method: str, path: str):
        self.state = state
        self.request = request
        self.metrics = state.metrics
        self.started = time.monotonic()
        self.method = method
        self.path = path
        self.path_label = routes.path_label(path)
        self.family = routes.family_for_path(path)
        self.request_id = os.urandom(16).hex()   # 32 hex digits, like a UUID's
        self.inflight = InFlight()
        self.status = 0
        self.sent_bytes = 0
        self.first_byte_at: float | None = None
        self.upstream_status: int | None = None
        self.attempts = 0
        self.model: str | None = None
        self.outcome = "ok"
        self.usage: dict | None = None
        self.accountant = NO_ACCOUNTANT
        self.holds_slot = False
        self.watch_fd: int | None = None
        self.client_environ = getattr(request, "environ", {})
        self.deadline_at: float | None = None    # UPSTREAM_TOTAL_TIMEOUT, from the first attempt
        self._finished = False

    def start_deadline(self) -> None:
        self.deadline_at = self.state.deadlines.start(self.inflight,
                                                      self.state.config.total_timeout)

    def time_left(self) -> float:
        """Seconds until the total deadline (inf before the first attempt)."""
        if self.deadline_at is None:
            return float("inf")
        return self.deadline_at - time.monotonic()

    def past_deadline(self) -> bool:
        return self.inflight.expired

    def finish(self) -> None:
        """Once the last byte is sent (or the client is gone): metrics, log line, slot."""
        if self._finished:
            return
        self._finished = True
        state, metrics = self.state, self.metrics
        if client_deadlines.expired(self.client_environ) == "write":
            self.outcome = "write_timeout"    # the client took none of a write for too long
        upstream.bind_inflight(None)
        self.inflight.finish()
        if self.deadline_at is not None:
            state.deadlines.end(self.inflight)
        if self.watch_fd is not None:
            state.watcher.unwatch(self.watch_fd)
        try:
            elapsed = time.monotonic() - self.started
            metrics.count_request(self.method, self.path_label, self.status, elapsed,
                                  self.sent_bytes)
            if self.first_byte_at is not None:
                metrics.ttfb.labels(self.path_label, metrics.variant).observe(
                    self.first_byte_at - self.started)
            if self.outcome == "client_gone":
                metrics.stream_disconnects.labels(self.path_label, metrics.variant).inc()
            state.request_log.write(self, elapsed)
        finally:
            # Last: a request leaves the in-flight gauge only once it is counted and logged.
            if self.holds_slot:
                state.capacity.release()
