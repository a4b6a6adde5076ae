"""Wall time, injectable: tests drive the collector, storage and verdict with their own clock."""

from __future__ import annotations

import threading
import time


class Clock:
    def time(self) -> float:
        return time.time()

    def wait_until(self, t: float, stop: threading.Event) -> bool:
        """Sleep until unix time t; True if `stop` was set meanwhile."""
        while True:
            remaining = t - time.time()
            if remaining <= 0:
                return stop.is_set()
            if stop.wait(remaining):
                return True
