"""The dashboard's own Prometheus families (`zai_dashboard_*`), served at its /metrics.

One process, so a plain registry (never multiprocess mode). Label values are bounded: `variant`
is one of the configured variants, `result`, `reason` and `state` come from fixed lists.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

TICK_BUCKETS = (.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10)
STATES = ("up", "degraded", "stale", "down")


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.build_info = Gauge("zai_dashboard_build_info", "Build information (value 1).",
                                ("version", "commit"), registry=r)
        self.ticks = Counter("zai_dashboard_ticks_total", "Collector ticks run.", registry=r)
        self.tick_duration = Histogram("zai_dashboard_tick_duration_seconds",
                                       "Time to collect, store and publish one tick.",
                                       buckets=TICK_BUCKETS, registry=r)
        self.scrapes = Counter("zai_dashboard_scrapes_total",
                               "Pod scrapes by variant and result (success or error).",
                               ("variant", "result"), registry=r)
        self.pods = Gauge("zai_dashboard_pods", "Pods of a variant in the last tick.",
                          ("variant",), registry=r)
        self.pods_up = Gauge("zai_dashboard_pods_up", "Pods of a variant that answered the last "
                             "tick.", ("variant",), registry=r)
        self.variant_state = Gauge("zai_dashboard_variant_state",
                                   "1 for the variant's state at the last tick "
                                   "(up, degraded, stale, down).", ("variant", "state"),
                                   registry=r)
        self.counter_resets = Counter("zai_dashboard_counter_resets_total",
                                      "Proxy series seen going down (a pod restarted).",
                                      ("variant",), registry=r)
        self.storage_resets = Counter("zai_dashboard_storage_resets_total",
                                      "Database files moved aside at start, by reason "
                                      "(corrupt, truncated, foreign, newer_schema).",
                                      ("reason",), registry=r)
        self.storage_degraded = Gauge("zai_dashboard_storage_degraded",
                                      "1 while writes to the database fail and new rows are "
                                      "kept in memory.", registry=r)
        self.storage_write_errors = Counter("zai_dashboard_storage_write_errors_total",
                                            "Failed writes to the database.", registry=r)
        self.storage_bytes = Gauge("zai_dashboard_storage_bytes",
                                   "Size of the database file and its WAL.", registry=r)
        self.sse_clients = Gauge("zai_dashboard_sse_clients", "Connected SSE clients.",
                                 registry=r)
        self.sse_dropped = Counter("zai_dashboard_sse_dropped_total",
                                   "SSE clients disconnected by the service, by reason "
                                   "(slow: its queue was full).", ("reason",), registry=r)
        self.sse_rejected = Counter("zai_dashboard_sse_rejected_total",
                                    "SSE connections refused (503) over DASHBOARD_MAX_CLIENTS "
                                    "or while stopping.", registry=r)
        for reason in ("corrupt", "truncated", "foreign", "newer_schema"):
            self.storage_resets.labels(reason)
        self.sse_dropped.labels("slow")

    def variants(self, variants) -> None:
        """Pre-create the per-variant series so that they read 0 rather than missing."""
        for variant in variants:
            for result in ("success", "error"):
                self.scrapes.labels(variant, result)
            self.counter_resets.labels(variant)
            for state in STATES:
                self.variant_state.labels(variant, state)

    def state(self, variant: str, state: str) -> None:
        for name in STATES:
            self.variant_state.labels(variant, name).set(1 if name == state else 0)
