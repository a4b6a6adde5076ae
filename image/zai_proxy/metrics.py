"""Every Prometheus family the proxy exports, with bounded label values.

Under gunicorn the families live in multiprocess mode (PROMETHEUS_MULTIPROC_DIR, set and wiped by
gunicorn.conf.py before prometheus_client is imported), so each gauge declares how worker
processes combine. Every family carries `variant`; it is bound once here so call sites cannot
forget it.
"""

from __future__ import annotations

import functools
import glob
import math
import os

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import choose_encoder
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_flask_exporter import PrometheusMetrics

DURATION_BUCKETS = (.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300)
TTFB_BUCKETS = (.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60)
SIZE_BUCKETS = tuple(100 * 10 ** k for k in range(7))  # 100 B … 100 MB
WAIT_BUCKETS = (.001, .01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60)
TOKEN_COUNT_BUCKETS = (.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1)

FAIRNESS_BUCKETS = 64
# The adaptive controller's decisions (controller.evaluate), the `direction` of its adjustments.
ADJUSTMENT_DIRECTIONS = ("increase", "decrease", "probe")
CLIENT_TIMEOUT_PHASES = ("header", "body", "write")
ZAI_CODES = ("1000", "1001", "1002", "1003", "1004", "1113", "1210", "1211", "1214", "1261",
             "1301", "1302", "1303", "1304", "1305", "1308", "1309", "1310", "1311", "1312",
             "1313")


def client_label(bucket: int) -> str:
    """The bounded `client` label for a fairness bucket: source-00 … source-63."""
    return f"source-{bucket % FAIRNESS_BUCKETS:02d}"


def zai_code_label(code: str | None) -> str:
    return code if code in ZAI_CODES else "other"


def status_label(status) -> str:
    """An HTTP status as a label value from a bounded set: the code itself when it is a valid
    status (three digits, 100 to 599, RFC 9110 §15), else "other"."""
    if isinstance(status, int) and 100 <= status <= 599:
        return _STATUS_LABELS[status - 100]
    return "other"


_STATUS_LABELS = tuple(str(code) for code in range(100, 600))


class Metrics:
    """All families, registered in `registry`, with `variant` pre-bound where it is the only label.

    Families with further labels are exposed as `<name>(**labels)` helpers so every call site
    passes bounded values only.
    """

    def __init__(self, variant: str, registry: CollectorRegistry, model_labels=()):
        self.variant = variant
        self.registry = registry
        self._models = frozenset(model_labels)
        # Labelled children of the per-request families, looked up once per label set (the
        # sets are bounded): prometheus_client's labels() takes a lock and builds tuples.
        self._answered: dict[tuple, tuple] = {}
        self._request_sizes: dict[tuple, object] = {}
        v = ("variant",)

        def counter(name, doc, labels=()):
            return Counter(name, doc, labels + v, registry=registry)

        def histogram(name, doc, labels, buckets):
            return Histogram(name, doc, labels + v, buckets=buckets, registry=registry)

        def gauge(name, doc, mode, labels=()):
            return Gauge(name, doc, labels + v, registry=registry, multiprocess_mode=mode)

        # Requests
        self.requests = counter("zai_proxy_requests", "Requests answered by the proxy.",
                                ("method", "path", "status_code"))
        self.duration = histogram("zai_proxy_request_duration_seconds",
                                  "Time from request to the last byte sent, streams included.",
                                  ("method", "path", "status_code"), DURATION_BUCKETS)
        self.request_sizes = histogram("zai_proxy_request_size_bytes", "Request body size.",
                                       ("method", "path"), SIZE_BUCKETS)
        self.response_size = histogram("zai_proxy_response_size_bytes",
                                       "Response body size as sent to the client.",
                                       ("method", "path", "status_code"), SIZE_BUCKETS)
        self.ttfb = histogram("zai_proxy_time_to_first_byte_seconds",
                              "Time from request to the first streamed byte sent to the client.",
                              ("path",), TTFB_BUCKETS)
        # Capacity. Each process adds its own share; livesum gives the pod's figure and
        # forgets processes that died.
        self.concurrent = gauge("zai_proxy_concurrent_requests",
                                "Proxied requests in flight.", "livesum").labels(variant)
        self.max_workers = gauge("zai_proxy_max_workers", "Cap on proxied requests in flight.",
                                 "livesum").labels(variant)
        self.utilization = gauge("zai_proxy_worker_utilization_ratio",
                                 "Proxied requests in flight divided by the cap.",
                                 "livesum").labels(variant)
        self.build_info = gauge("zai_proxy_build_info", "Build information (value 1).", "max",
                                ("version", "commit", "build_time"))
        self.upstream_errors = counter("zai_proxy_upstream_errors_total",
                                       "Upstream failures by HTTP status or failure kind.",
                                       ("error_type",))
        self.stream_disconnects = counter("zai_proxy_stream_disconnects_total",
                                          "Clients that went away before the answer ended.",
                                          ("path",))
        self.client_timeouts = counter("zai_proxy_client_timeouts_total",
                                       "Client connections cut by a deadline: phase is header "
                                       "(CLIENT_HEADER_TIMEOUT), body (CLIENT_BODY_TIMEOUT) or "
                                       "write (CLIENT_WRITE_TIMEOUT).", ("phase",))
        for phase in CLIENT_TIMEOUT_PHASES:   # present at 0, so rate() sees the first cut
            self.client_timeouts.labels(phase, variant)
        # Rate limiting and retries
        self._rate_limit_rps = gauge("zai_proxy_rate_limit_requests_per_second",
                                     "Current adaptive rate (req/s).", "livemax")
        self.rate_limit_adjustments = counter("zai_proxy_rate_limit_adjustments_total",
                                              "Controller decisions.", ("direction",))
        self.rate_limit_wait = histogram("zai_proxy_rate_limit_wait_seconds",
                                         "Time spent waiting for admission.", ("client",),
                                         WAIT_BUCKETS)
        self.rate_limit_rejections = counter("zai_proxy_rate_limit_rejections_total",
                                             "Requests refused after waiting too long.",
                                             ("client",))
        self.rate_limit_storage_errors = counter(
            "zai_proxy_rate_limit_storage_errors_total",
            "Failed calls to the shared rate-limit storage (Redis); admission fails open to a "
            "per-process budget meanwhile.")
        self.retry_attempts = counter("zai_proxy_retry_attempts_total",
                                      "Upstream attempts repeated, by reason.", ("reason",))
        self.zai_errors = counter("zai_proxy_zai_errors_total",
                                  "Z.AI error answers by class and business code.",
                                  ("class", "code"))
        # Tokens and cost
        token_labels = ("direction", "model", "pricing_tier")
        self.tokens = counter("zai_proxy_tokens_total", "Tokens by direction.", token_labels)
        self.estimated_tokens = counter("zai_proxy_estimated_tokens_total",
                                        "The part of zai_proxy_tokens_total that was estimated "
                                        "locally because the upstream did not report it.",
                                        token_labels)
        self.cost = counter("zai_proxy_estimated_cost_usd_total",
                            "Estimated cost in USD from the configured price table.",
                            token_labels)
        self.invalid_usage_figures = counter(
            "zai_proxy_invalid_usage_total",
            "Usage figures from the upstream that cannot be token counts (not a number, negative, "
            "a fraction, or too large), treated as missing and estimated instead.",
            ("direction", "reason"))
        self._token_count_duration = histogram("zai_proxy_token_count_duration_seconds",
                                               "Time spent counting input tokens locally.", (),
                                               TOKEN_COUNT_BUCKETS)
        # Quota supervisor
        quota_labels = ("window", "limit_type")
        self.quota_usage = gauge("zai_proxy_quota_usage_ratio", "Quota used (0..1).",
                                 "livemax", quota_labels)
        self.quota_remaining = gauge("zai_proxy_quota_remaining_ratio", "Quota left (0..1).",
                                     "livemin", quota_labels)
        self.quota_reset = gauge("zai_proxy_quota_reset_time_seconds",
                                 "Unix time of the window's next reset.", "livemax",
                                 quota_labels)
        self._quota_sample_age = gauge("zai_proxy_quota_sample_age_seconds",
                                       "Age of the last good quota sample.", "livemin")
        self.quota_polls = counter("zai_proxy_quota_poll_total", "Quota polls by result.",
                                   ("result",))

    def rate_limiter_started(self) -> None:
        """Export every controller decision at 0 once the limiter runs: a limiter that holds its
        rate then shows 0 adjustments rather than no series, and rate()/increase() see its first
        adjustment (a series that appears at 1 has no earlier sample to compare with)."""
        for direction in ADJUSTMENT_DIRECTIONS:
            self.rate_limit_adjustments.labels(direction, self.variant)

    # Families of optional features are bound on first use, so a feature that is off (token
    # counting, rate limiting, the quota poller) exports no series at all.
    @functools.cached_property
    def rate_limit_rps(self):
        return self._rate_limit_rps.labels(self.variant)

    @functools.cached_property
    def token_count_duration(self):
        return self._token_count_duration.labels(self.variant)

    @functools.cached_property
    def quota_sample_age(self):
        return self._quota_sample_age.labels(self.variant)

    # Bounded label helpers -------------------------------------------------------------
    def model_label(self, model) -> str:
        if isinstance(model, str):
            model = model.lower()
            if model in self._models:
                return model
        return "other"

    def count_request(self, method, path, status, seconds, sent_bytes):
        key = (method, path, status)
        children = self._answered.get(key)
        if children is None:
            labels = (method, path, status_label(status), self.variant)
            children = self._answered[key] = (self.requests.labels(*labels),
                                               self.duration.labels(*labels),
                                               self.response_size.labels(*labels))
        children[0].inc()
        children[1].observe(seconds)
        children[2].observe(sent_bytes)

    def request_size(self, method, path, size: int) -> None:
        child = self._request_sizes.get((method, path))
        if child is None:
            child = self._request_sizes[(method, path)] = self.request_sizes.labels(
                method, path, self.variant)
        child.observe(size)

    def upstream_error(self, error_type) -> None:
        """A failure kind (errors.py), or the upstream's HTTP status."""
        label = status_label(error_type) if isinstance(error_type, int) else error_type
        self.upstream_errors.labels(label, self.variant).inc()

    def client_timeout(self, phase: str) -> None:
        """A client deadline passed ("head" is counted as "header")."""
        phase = "header" if phase == "head" else phase
        if phase in CLIENT_TIMEOUT_PHASES:
            self.client_timeouts.labels(phase, self.variant).inc()

    def zai_error(self, error_class: str, code: str | None) -> None:
        self.zai_errors.labels(error_class, zai_code_label(code), self.variant).inc()

    def retry(self, reason: str) -> None:
        self.retry_attempts.labels(reason, self.variant).inc()

    def rate_limit_storage_error(self) -> None:
        self.rate_limit_storage_errors.labels(self.variant).inc()

    def adjustment(self, direction: str) -> None:
        self.rate_limit_adjustments.labels(direction, self.variant).inc()

    def admission_wait(self, bucket: int, seconds: float) -> None:
        self.rate_limit_wait.labels(client_label(bucket), self.variant).observe(seconds)

    def admission_rejected(self, bucket: int) -> None:
        self.rate_limit_rejections.labels(client_label(bucket), self.variant).inc()

    def add_tokens(self, direction, model_label, tier, count, cost_usd, estimated) -> None:
        if count <= 0:
            return
        labels = (direction, model_label, tier, self.variant)
        self.tokens.labels(*labels).inc(count)
        if estimated:
            self.estimated_tokens.labels(*labels).inc(count)
        # A counter that once takes +Inf (or NaN) keeps it until the process restarts.
        if cost_usd > 0 and math.isfinite(cost_usd):
            self.cost.labels(*labels).inc(cost_usd)

    def invalid_usage(self, direction: str, reason: str) -> None:
        """A usage figure not believed (tokens/accountant.py: DIRECTIONS × INVALID_REASONS)."""
        self.invalid_usage_figures.labels(direction, reason, self.variant).inc()


class SettledFilesCollector(MultiProcessCollector):
    """MultiProcessCollector that skips a metrics file another process has just created.

    prometheus_client opens a new `<type>_<pid>.db` file and only then sizes it, so a scrape in
    that window finds an empty file and the stock collector raises (struct.error), turning
    /metrics into a 500. A file never shrinks once sized, so skipping the empty ones is safe:
    their first values appear in the next scrape.
    """

    def collect(self):
        files = []
        for path in glob.glob(os.path.join(self._path, "*.db")):
            try:
                if os.path.getsize(path) >= 8:
                    files.append(path)
            except FileNotFoundError:
                pass  # a dead worker's live gauge, removed since the glob
        return self.merge(files, accumulate=True)


class Exporter(PrometheusMetrics):
    """prometheus-flask-exporter's /metrics endpoint, reading multiprocess files safely."""

    def generate_metrics(self, accept_header=None, names=None):
        path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        if not path:
            return super().generate_metrics(accept_header, names)
        registry = CollectorRegistry()
        SettledFilesCollector(registry, path=path)
        if names:
            registry = registry.restricted_registry(names)
        generate_latest, content_type = choose_encoder(accept_header)
        return generate_latest(registry).decode("utf-8"), content_type
