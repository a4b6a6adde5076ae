"""Admission: fair per-source queueing in front of one global budget kept by `limits`.

FairQueue: each fairness bucket (hash of the source → 0..63) has a FIFO; buckets take turns
round-robin, and only the head of the bucket whose turn it is asks the budget for a slot. A flood
from one source therefore queues behind itself, not in front of everyone else. Waits are
cancellable (the client went away: its place is freed at once) and bounded (a wait predicted or
found to exceed RATE_LIMIT_MAX_WAIT ends with a retry-after instead).

Budget: the global rate r, enforced with the `limits` library's moving-window strategy over two
windows at once: at most ceil(r) per 1 s (bursts stay small) and about r·10 per 10 s (so the
average honours fractional rates to 0.1 req/s). The keys do not depend on r, so a rate change
keeps the history. `limits` keeps its own wall clock (time.time), which is why hints are computed
against time.time here rather than an injected clock.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from typing import Callable

from limits import RateLimitItemPerSecond
from limits.strategies import MovingWindowRateLimiter

POLL = 0.05          # seconds between checks of cancellation and of the turn
LONG_WINDOW = 10     # seconds
MIN_HINT = 0.005


class _Item(RateLimitItemPerSecond):
    """A limits item whose storage key is fixed, whatever the amount."""

    def __init__(self, amount: int, seconds: int, key: str):
        super().__init__(amount, seconds, namespace=key)

    def key_for(self, *identifiers) -> str:
        return self.namespace


def budget_items(rate: float, prefix: str) -> tuple[_Item, _Item]:
    short = _Item(max(1, math.ceil(rate - 1e-9)), 1, f"{prefix}/budget/1s")
    seconds = max(LONG_WINDOW, math.ceil(1 / rate - 1e-9))
    long = _Item(max(1, round(rate * seconds)), seconds, f"{prefix}/budget/long")
    return short, long


class Budget:
    """The global budget in a `limits` storage (memory://, or redis:// shared by everyone)."""

    def __init__(self, storage, prefix: str, rate: float):
        self.storage = storage
        self._limiter = MovingWindowRateLimiter(storage)
        self._prefix = prefix
        self.rate = 0.0
        self.set_rate(rate)

    def set_rate(self, rate: float) -> None:
        if rate != self.rate:
            self._short, self._long = budget_items(rate, self._prefix)
            self.rate = rate

    def try_take(self) -> float:
        """0 when a slot was taken; otherwise seconds until one may free up (> 0)."""
        short, long = self._short, self._long
        if not self._limiter.test(long):
            return self._hint(long)
        if not self._limiter.hit(short):
            return self._hint(short)
        if not self._limiter.hit(long):   # lost a race with another process: the 1 s slot is spent
            return self._hint(long)
        return 0.0

    def _hint(self, item) -> float:
        stats = self._limiter.get_window_stats(item)
        return max(MIN_HINT, stats.reset_time - time.time())


class _Ticket:
    __slots__ = ("bucket", "start")

    def __init__(self, bucket: int, start: float):
        self.bucket, self.start = bucket, start


class FairQueue:
    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._cond = threading.Condition()
        self._queues: dict[int, deque] = {}
        self._ring: deque = deque()      # buckets with waiters, in turn order
        self.size = 0

    def acquire(self, bucket: int, cancel: threading.Event, take: Callable[[], float],
                rate: float, max_wait: float) -> tuple[str, float, float | None]:
        """Wait for a slot. Returns (outcome, waited, retry_after) with outcome one of
        admitted | cancelled | rejected; retry_after is set for rejected only."""
        start = self._clock()
        with self._cond:
            if self.size and self.size / rate > max_wait:
                return "rejected", 0.0, self.size / rate
            ticket = _Ticket(bucket, start)
            self._enqueue(ticket)
        queued = True
        try:
            while True:
                if cancel.is_set():
                    return "cancelled", self._clock() - start, None
                waited = self._clock() - start
                with self._cond:
                    holder = self._holder() is ticket
                    ahead = self.size
                if holder:
                    hint = take()
                    if hint <= 0:
                        self._remove(ticket, admitted=True)
                        queued = False
                        return "admitted", self._clock() - start, None
                    if waited + hint > max_wait:
                        return "rejected", waited, hint
                    timeout = min(hint, POLL)
                else:
                    if waited >= max_wait:
                        return "rejected", waited, max(hint_floor(rate), ahead / rate)
                    timeout = POLL
                with self._cond:
                    self._cond.wait(timeout)
        finally:
            if queued:
                self._remove(ticket, admitted=False)

    def _enqueue(self, ticket: _Ticket) -> None:
        queue = self._queues.get(ticket.bucket)
        if queue is None:
            queue = self._queues[ticket.bucket] = deque()
            self._ring.append(ticket.bucket)
        queue.append(ticket)
        self.size += 1

    def _holder(self) -> _Ticket | None:
        return self._queues[self._ring[0]][0] if self._ring else None

    def _remove(self, ticket: _Ticket, admitted: bool) -> None:
        with self._cond:
            queue = self._queues.get(ticket.bucket)
            if queue is None or ticket not in queue:
                return
            was_holder = self._holder() is ticket
            queue.remove(ticket)
            self.size -= 1
            if not queue:
                del self._queues[ticket.bucket]
                self._ring.remove(ticket.bucket)
            elif was_holder and admitted:
                self._ring.rotate(-1)    # this bucket had its turn: to the back of the ring
            self._cond.notify_all()

    def waiting(self) -> dict[int, int]:
        """Waiters per bucket (for /health and tests)."""
        with self._cond:
            return {bucket: len(queue) for bucket, queue in self._queues.items()}


def hint_floor(rate: float) -> float:
    return 1.0 / rate if rate > 0 else 1.0
