"""The MAX_WORKERS cap on proxied requests in flight, and the draining flag.

Admission never waits: past the cap the caller answers 503 at once with Retry-After, so a
saturated pod sheds load instead of queueing it behind streams that may last minutes.
"""

from __future__ import annotations

import threading

from .metrics import Metrics


class Capacity:
    def __init__(self, limit: int, pod_limit: int, metrics: Metrics):
        self.limit = limit              # this process's share of MAX_WORKERS
        self._pod_limit = pod_limit     # utilization is reported against the pod-wide cap
        self._metrics = metrics
        self._lock = threading.Lock()
        self.in_flight = 0
        self.draining = False
        self._idle = threading.Condition(self._lock)
        metrics.max_workers.set(limit)
        metrics.concurrent.set(0)
        metrics.utilization.set(0)

    def try_acquire(self) -> bool:
        with self._lock:
            if self.draining or self.in_flight >= self.limit:
                return False
            self.in_flight += 1
            self._publish()
            return True

    def release(self) -> None:
        with self._lock:
            self.in_flight -= 1
            self._publish()
            if self.in_flight == 0:
                self._idle.notify_all()

    def start_draining(self) -> None:
        with self._lock:
            self.draining = True

    def wait_idle(self, timeout: float) -> bool:
        """Block until nothing is in flight (True) or the timeout passes (False)."""
        with self._lock:
            return self._idle.wait_for(lambda: self.in_flight == 0, timeout)

    def _publish(self) -> None:
        # Each process publishes its share; the multiprocess livesum adds them up per pod.
        self._metrics.concurrent.set(self.in_flight)
        self._metrics.utilization.set(self.in_flight / self._pod_limit)
