"""The collector: one tick every interval, on the interval's grid.

A tick's time `t` is a multiple of the interval (unix seconds), the same for every variant, so
production and canary always line up, and it is the tick's SSE id. A tick gathers every pod of
every variant (the source does them concurrently), turns them into one sample per variant,
stores the samples and publishes them. A tick that starts late (a slow scrape) skips the
grid points it missed instead of bunching up.
"""

from __future__ import annotations

import collections
import logging
import threading
import time

from .broker import Broker
from .clock import Clock
from .config import Config
from .deltas import VariantDeltas, VariantScrape
from .exposition import LabelCache
from .figures import as_row, figures, from_row, merge
from .status import Status
from .storage import Storage

log = logging.getLogger("zai_dashboard.collector")


class Collector:
    def __init__(self, config: Config, source, storage: Storage, broker: Broker,
                 status: Status, metrics, clock: Clock):
        self.config = config
        self.interval = config.scrape_interval
        self.source = source
        self.storage = storage
        self.broker = broker
        self.status = status
        self.metrics = metrics
        self.clock = clock
        labels = LabelCache()
        self.deltas = {variant: VariantDeltas(variant, labels) for variant in config.variants}
        keep = max(2, int(60 / self.interval) + 1)
        # The last minute's samples per variant, for /api/status's last_60s figures.
        self.recent: dict[str, collections.deque] = {
            variant: collections.deque(maxlen=keep) for variant in config.variants}
        self.first_tick_done = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def preload_ring(self) -> None:
        """The last hour of stored ticks into the SSE replay ring."""
        now = self.clock.time()
        rows = self.storage.raw(now - 3600, now + self.interval, self.config.variants)
        ticks: dict[int, dict] = {}
        for t, variant, state, fig, _ in rows:
            tick = ticks.setdefault(t, {"t": t, "variants": {}, "states": {}})
            tick["variants"][variant] = from_row(fig)
            tick["states"][variant] = state
        self.broker.preload(sorted(ticks.items()))

    def tick(self, t: int) -> dict:
        """Collect, store and publish the tick at time t; returns its SSE payload."""
        with self._lock:
            started = time.monotonic()
            results = self.source.collect(t)
            rows = []
            payload = {"t": t, "variants": {}, "states": {}}
            for variant in self.config.variants:
                scrape = results.get(variant) or VariantScrape([], "no result")
                sample, info = self.deltas[variant].update(t, scrape)
                self.status.record(variant, t, info)
                state = self.status.state(variant, t)
                figs = figures(sample)
                rows.append((variant, state, as_row(figs), sample))
                self.recent[variant].append((t, sample))
                payload["variants"][variant] = figs
                payload["states"][variant] = state
                self._count(variant, state, info)
            self.storage.write_tick(t, rows)
            self.broker.publish(t, payload)
            if self.metrics:
                self.metrics.ticks.inc()
                self.metrics.tick_duration.observe(time.monotonic() - started)
                self.metrics.storage_bytes.set(self.storage.size_bytes())
            self.first_tick_done.set()
            return payload

    def _count(self, variant: str, state: str, info) -> None:
        if not self.metrics:
            return
        self.metrics.scrapes.labels(variant, "success").inc(info.pods_up)
        self.metrics.scrapes.labels(variant, "error").inc(info.pods_total - info.pods_up)
        self.metrics.pods.labels(variant).set(info.pods_total)
        self.metrics.pods_up.labels(variant).set(info.pods_up)
        if info.resets:
            self.metrics.counter_resets.labels(variant).inc(info.resets)
        self.metrics.state(variant, state)

    def last_minute(self, variant: str, now: float) -> dict:
        """Figures over the samples of the last 60 seconds."""
        recent = [sample for t, sample in list(self.recent[variant]) if t > now - 60]
        return figures(merge(recent))

    # ---- the loop ---------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="collector", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _run(self) -> None:
        now = self.clock.time()
        t = int(now // self.interval * self.interval)
        while not self._stop.is_set():
            try:
                self.tick(t)
            except Exception:
                log.exception("tick %d failed", t)
            now = self.clock.time()
            t = int(now // self.interval * self.interval) + self.interval
            if self.clock.wait_until(t, self._stop):
                break
