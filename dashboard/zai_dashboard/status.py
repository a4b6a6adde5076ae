"""Each variant's state, judged at the moment it is asked for (so a stalled collector shows).

- `up`: every pod answered the last tick;
- `degraded`: some did, or none did but one answered within the last two intervals;
- `stale`: no pod has answered for more than 2 intervals;
- `down`: none for more than 3 intervals, or the last tick resolved no pod at all.
"""

from __future__ import annotations

import dataclasses
import threading

from .deltas import TickInfo


@dataclasses.dataclass
class VariantStatus:
    last_scrape: float | None = None
    last_success: float | None = None
    pods_up: int = 0
    pods_total: int = 0
    error: str | None = None
    build: dict | None = None
    quota: dict = dataclasses.field(default_factory=lambda: {
        "five_hour_used_ratio": None, "five_hour_reset": None,
        "weekly_used_ratio": None, "weekly_reset": None})


class Status:
    def __init__(self, variants, interval: float):
        self.interval = interval
        self._lock = threading.Lock()
        self._variants = {variant: VariantStatus() for variant in variants}

    def record(self, variant: str, t: float, info: TickInfo) -> None:
        with self._lock:
            status = self._variants[variant]
            status.last_scrape = t
            status.pods_up = info.pods_up
            status.pods_total = info.pods_total
            status.error = info.errors[0] if info.errors else None
            if info.pods_up:
                status.last_success = t
                status.build = info.build or status.build
                status.quota = info.quota

    def state(self, variant: str, now: float) -> str:
        with self._lock:
            return _state(self._variants[variant], now, self.interval)

    def snapshot(self, variant: str, now: float) -> dict:
        with self._lock:
            status = self._variants[variant]
            return {"state": _state(status, now, self.interval), "pods_up": status.pods_up,
                    "pods_total": status.pods_total, "last_scrape": status.last_scrape,
                    "last_success": status.last_success, "error": status.error,
                    "build": status.build, "quota": dict(status.quota)}


def _state(status: VariantStatus, now: float, interval: float) -> str:
    if status.last_scrape is not None and status.pods_total == 0:
        return "down"
    if status.last_success is None:
        return "down"
    age = now - status.last_success
    if age > 3 * interval:
        return "down"
    if age > 2 * interval:
        return "stale"
    if status.last_success == status.last_scrape and status.pods_up == status.pods_total:
        return "up"
    return "degraded"
