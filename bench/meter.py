"""What one run cost, read around it: CPU of the contestant and of the fake, busy share of each
core (which shows a saturated environment core and any load from outside the benchmark)."""

from __future__ import annotations

import os
import time

import psutil


def _busy(cpu) -> tuple[float, float]:
    idle = cpu.idle + getattr(cpu, "iowait", 0.0)
    total = sum(cpu)
    return total - idle, total


class Meter:
    def __init__(self, contestant=None, fake=None):
        self.contestant = contestant
        self.fake = fake

    def __enter__(self) -> "Meter":
        self._t0 = time.monotonic()
        self._cores0 = psutil.cpu_times(percpu=True)
        self._c0 = self.contestant.cpu_seconds() if self.contestant else 0.0
        self._k0 = self.contestant.cpu_ticks_seconds() if self.contestant else 0.0
        self._f0 = self.fake.cpu_seconds() if self.fake else 0.0
        self._load0 = os.getloadavg()[0]
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = time.monotonic() - self._t0
        cores1 = psutil.cpu_times(percpu=True)
        self.contestant_cpu_s = 0.0
        if self.contestant:
            precise = self.contestant.cpu_seconds() - self._c0
            ticks = self.contestant.cpu_ticks_seconds() - self._k0
            # Threads that exited took their scheduler clock with them; the tick count (10 ms
            # resolution) still has it: prefer it when it is clearly larger.
            self.contestant_cpu_s = ticks if ticks > precise + 0.05 else precise
        self.fake_cpu_s = (self.fake.cpu_seconds() - self._f0) if self.fake else 0.0
        self.core_busy = []
        for before, after in zip(self._cores0, cores1):
            b0, t0 = _busy(before)
            b1, t1 = _busy(after)
            self.core_busy.append(round((b1 - b0) / (t1 - t0), 3) if t1 > t0 else None)
        self.loadavg = round(max(self._load0, os.getloadavg()[0]), 2)

    def record(self, requests: int | None = None) -> dict:
        out = {
            "contestant_cpu_s": round(self.contestant_cpu_s, 3),
            "contestant_cpu_share": round(self.contestant_cpu_s / self.seconds, 3)
            if self.seconds else None,
            "fake_cpu_share": round(self.fake_cpu_s / self.seconds, 3) if self.seconds else None,
            "core_busy": self.core_busy,
            "loadavg_1m": self.loadavg,
        }
        if requests:
            out["contestant_cpu_us_per_request"] = round(self.contestant_cpu_s / requests * 1e6,
                                                         1) if self.contestant else None
        return out
