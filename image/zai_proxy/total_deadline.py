"""The total deadline of each proxied request's upstream work (UPSTREAM_TOTAL_TIMEOUT).

`UPSTREAM_READ_TIMEOUT` bounds each wait for upstream bytes, not their sum: an upstream that
trickles its head or body, retries, backoff and admission waits could each stay under it and
still hold a slot indefinitely. So each request gets one deadline, from its first attempt to the
last byte of the answer (retries and waits included). One thread per process watches them; when
one passes, the request's InFlight record is expired: its upstream socket is shut down (a
blocked read or write returns at once) and its waits end. The pipeline then answers 504, or ends
a stream with an error event, and sends nothing more upstream.

Requests that end are simply forgotten; the thread sleeps until the earliest deadline still
registered, so it wakes about once per UPSTREAM_TOTAL_TIMEOUT when nothing expires.
"""

from __future__ import annotations

import threading
import time

from .disconnect import InFlight


class TotalDeadlines:
    def __init__(self, clock=time.monotonic):
        self._clock = clock
        self._cond = threading.Condition()
        self._due: dict[InFlight, float] = {}
        self._wake_at: float | None = None        # when the thread plans to look again
        self._closed = False
        # Started with the process (like the disconnect watcher), so a worker's thread count
        # does not change with its first request.
        threading.Thread(target=self._run, name="total-deadlines", daemon=True).start()

    def start(self, inflight: InFlight, seconds: float) -> float:
        """Watch `inflight` until `seconds` from now; returns the deadline (monotonic)."""
        due = self._clock() + seconds
        with self._cond:
            self._due[inflight] = due
            if self._wake_at is None or due < self._wake_at:
                self._cond.notify()
        return due

    def end(self, inflight: InFlight) -> None:
        with self._cond:
            self._due.pop(inflight, None)

    def close(self) -> None:
        """Stop the thread: for an app dropped inside a longer-lived process (tests)."""
        with self._cond:
            self._closed = True
            self._cond.notify()

    def _run(self) -> None:
        with self._cond:
            while not self._closed:
                now = self._clock()
                passed = [inflight for inflight, due in self._due.items() if due <= now]
                for inflight in passed:
                    del self._due[inflight]
                    inflight.expire()
                self._wake_at = min(self._due.values(), default=None)
                self._cond.wait(None if self._wake_at is None else self._wake_at - now)
