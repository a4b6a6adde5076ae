"""The service's parts, built once per process from the configuration."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from . import verdict
from .broker import Broker
from .clock import Clock
from .collector import Collector
from .config import Config
from .metrics import Metrics
from .series import merged_samples
from .status import Status
from .storage import Storage
from .targets import Resolver, resolve_all

REPLAY_SECONDS = 3600


class Service:
    def __init__(self, config: Config, *, clock: Clock | None = None,
                 resolver: Resolver = resolve_all, source=None,
                 registry: CollectorRegistry | None = None):
        self.config = config
        self.clock = clock or Clock()
        self.metrics = Metrics(registry)
        self.metrics.build_info.labels(config.version, config.commit).set(1)
        self.metrics.variants(config.variants)
        self.storage = Storage(config.db_path, config.raw_retention, config.rollup_retention,
                               self.metrics).open(self.clock.time())
        self.metrics.storage_degraded.set(1 if self.storage.degraded else 0)
        self.status = Status(config.variants, config.scrape_interval)
        self.broker = Broker(config.max_clients, config.client_queue,
                             ring_size=max(2, REPLAY_SECONDS // config.scrape_interval),
                             interval=config.scrape_interval, metrics=self.metrics)
        if source is None:
            if config.prometheus_url:
                from .promsource import PrometheusSource
                source = PrometheusSource(config)
            else:
                from .sources import ScrapeSource
                source = ScrapeSource(config, resolver)
        self.source = source
        self.collector = Collector(config, source, self.storage, self.broker, self.status,
                                   self.metrics, self.clock)
        self.collector.preload_ring()

    def start(self) -> None:
        self.collector.start()

    @property
    def ready(self) -> bool:
        return self.collector.first_tick_done.is_set()

    def stop_streams(self) -> None:
        """SIGTERM: end every SSE stream (safe to call from a signal handler)."""
        self.broker.close()

    def close(self) -> None:
        self.broker.close()
        self.collector.stop()
        self.source.close()
        self.storage.close()

    def verdict(self) -> dict:
        now = self.clock.time()
        window = self.config.verdict_window
        samples = merged_samples(self.storage, now - window, now + 1, self.config.variants)
        states = {variant: self.status.state(variant, now) for variant in self.config.variants}
        return verdict.judge(samples, states, self.config.thresholds, window, now)
