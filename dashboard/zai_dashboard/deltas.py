"""Per-pod, per-series counter deltas, summed into one sample per variant and tick.

Every pod keeps the last value of each of its cumulative series (counters and histogram
buckets). At the next scrape of the same pod:
- a series that went down was reset (the process restarted): its delta is its new value;
- a series the pod did not have before was created since: its delta is its whole value;
- otherwise the delta is the difference.
A pod seen for the first time only sets its baseline (its totals cover an unknown stretch of
time). A pod that stops resolving is forgotten, so if it comes back it starts a new baseline.
Deltas of all label sets and pods are then summed: histogram buckets by their bound, so every
label set's observations count (not only the last one's).
"""

from __future__ import annotations

import dataclasses
import re
from collections import Counter

from .exposition import BUCKETS, CUMULATIVE, LabelCache, name_of

INPUT_DIRECTIONS = frozenset({"input", "cache_read", "cache_write"})
# Breakdown keys come from label values the targets choose; a target with a runaway label must
# not grow the database without bound.
MAX_KEYS_PER_BREAKDOWN = 64
_LABEL_VALUE = re.compile(r"^[A-Za-z0-9_.:/+-]{1,64}$")
_STATUS = re.compile(r"^[1-5][0-9][0-9]$")


@dataclasses.dataclass
class PodScrape:
    """One pod's answer in one tick: its samples, or why there are none."""
    key: str
    samples: dict[str, float] | None
    error: str | None = None


@dataclasses.dataclass
class VariantScrape:
    pods: list[PodScrape]
    error: str | None = None        # the variant could not be resolved at all


@dataclasses.dataclass
class TickInfo:
    pods_up: int
    pods_total: int
    new_pods: int
    left_pods: int
    resets: int
    errors: list[str]
    build: dict | None
    quota: dict


class VariantDeltas:
    def __init__(self, variant: str, labels: LabelCache | None = None):
        self.variant = variant
        self._labels = labels or LabelCache()
        self._pods: dict[str, dict[str, float]] = {}
        self._last_answer: float | None = None
        self._breakdown_keys: dict[str, set[str]] = {}

    @property
    def known_pods(self) -> frozenset[str]:
        return frozenset(self._pods)

    def update(self, t: float, scrape: VariantScrape) -> tuple[dict, TickInfo]:
        sample: dict[str, float] = {}
        hist: dict[str, dict[float, float]] = {family: {} for family in BUCKETS.values()}
        gauges = _Gauges()
        resolved = {pod.key for pod in scrape.pods}
        left = [key for key in self._pods if key not in resolved]
        for key in left:
            del self._pods[key]
        answered = new = resets = 0
        any_delta_source = False
        errors = []
        for pod in scrape.pods:
            if pod.samples is None:
                if pod.error:
                    errors.append(pod.error)
                continue
            answered += 1
            previous = self._pods.get(pod.key)
            for key, value in pod.samples.items():
                name = name_of(key)
                if name not in CUMULATIVE:
                    gauges.add(name, self._labels.labels(key), value)
                    continue
                if name == "zai_proxy_tokens_total":
                    gauges.tokens = True
                if previous is None:
                    continue
                old = previous.get(key)
                if old is None:
                    delta = value
                elif value < old:
                    delta = value
                    resets += 1
                else:
                    delta = value - old
                # Empty buckets are routed too: their bounds are where the next bucket starts.
                if delta or name in BUCKETS:
                    self._route(sample, hist, name, key, delta)
            if previous is None:
                new += 1
            else:
                any_delta_source = True
            self._pods[pod.key] = pod.samples
        if any_delta_source and self._last_answer is not None:
            sample["dt"] = t - self._last_answer
        if answered:
            self._last_answer = t
        for family, cumulative in hist.items():
            _increments(sample, family, cumulative)
        if gauges.tokens and sample.get("dt"):
            sample["has:tok"] = 1
        gauges.write(sample, answered, len(scrape.pods))
        if scrape.error:
            errors.insert(0, scrape.error)
        info = TickInfo(pods_up=answered, pods_total=len(scrape.pods), new_pods=new,
                        left_pods=len(left), resets=resets, errors=errors,
                        build=gauges.build(), quota=gauges.quota())
        return {k: v for k, v in sample.items() if v}, info

    def _bounded(self, prefix: str, value: str | None) -> str:
        if value is None or not _LABEL_VALUE.match(value):
            return "other"
        seen = self._breakdown_keys.setdefault(prefix, set())
        if value not in seen:
            if len(seen) >= MAX_KEYS_PER_BREAKDOWN:
                return "other"
            seen.add(value)
        return value

    def _route(self, sample: dict, hist: dict, name: str, key: str, delta: float) -> None:
        labels = self._labels.labels(key)
        if name in BUCKETS:
            try:
                bound = float(labels["le"])
            except (KeyError, ValueError):
                return
            family = hist[BUCKETS[name]]
            family[bound] = family.get(bound, 0) + delta
            return
        if name == "zai_proxy_requests_total":
            _add(sample, "req", delta)
            status = labels.get("status_code", "")
            if _STATUS.match(status):
                if status[0] != "1":
                    _add(sample, "c" + status[0], delta)
            else:
                status = "other"
            _add(sample, "s:" + self._bounded("s", status), delta)
        elif name == "zai_proxy_upstream_errors_total":
            _add(sample, "ue", delta)
            _add(sample, "et:" + self._bounded("et", labels.get("error_type")), delta)
        elif name == "zai_proxy_retry_attempts_total":
            _add(sample, "rt", delta)
            _add(sample, "rr:" + self._bounded("rr", labels.get("reason")), delta)
        elif name == "zai_proxy_zai_errors_total":
            _add(sample, "zc:" + self._bounded("zc", labels.get("class")), delta)
        elif name == "zai_proxy_rate_limit_rejections_total":
            _add(sample, "rej", delta)
        else:
            model = self._bounded("m", labels.get("model"))
            if name == "zai_proxy_tokens_total":
                kind = "i" if labels.get("direction") in INPUT_DIRECTIONS else "o"
                _add(sample, "tok:" + kind, delta)
            elif name == "zai_proxy_estimated_tokens_total":
                kind = "e"
                _add(sample, "tok:e", delta)
            else:
                kind = "c"
                _add(sample, "cost", delta)
            _add(sample, f"m:{kind}:{model}", delta)


def _add(sample: dict, key: str, delta: float) -> None:
    sample[key] = sample.get(key, 0) + delta


def _increments(sample: dict, family: str, cumulative: dict[float, float]) -> None:
    """Cumulative bucket deltas (summed over label sets) to per-bucket increments, keyed by the
    bucket's lower and upper bound (empty buckets are left out, so the lower bound must be
    written: it is where a quantile's interpolation starts)."""
    previous = 0.0
    lower = float("-inf")
    for bound in sorted(cumulative):
        value = cumulative[bound]
        increment = value - previous
        previous = value
        if increment > 0:
            sample[f"h:{family}:{lower:.10g}~{bound:.10g}"] = increment
        lower = bound


class _Gauges:
    """The gauges of the pods that answered, combined as API.md says (sum, average, max)."""

    def __init__(self):
        self.in_flight = self.max_workers = 0.0
        self.has_in_flight = self.has_max_workers = False
        self.rate_limits: list[float] = []
        self.usage: dict[str, float] = {}
        self.reset: dict[str, float] = {}
        self.builds: Counter = Counter()
        self.tokens = False

    def add(self, name: str, labels: dict, value: float) -> None:
        if name == "zai_proxy_concurrent_requests":
            self.in_flight += value
            self.has_in_flight = True
        elif name == "zai_proxy_max_workers":
            self.max_workers += value
            self.has_max_workers = True
        elif name == "zai_proxy_rate_limit_requests_per_second":
            self.rate_limits.append(value)
        elif name == "zai_proxy_quota_usage_ratio":
            window = labels.get("window")
            if window in ("five_hour", "weekly"):
                self.usage[window] = max(value, self.usage.get(window, value))
        elif name == "zai_proxy_quota_reset_time_seconds":
            window = labels.get("window")
            if window in ("five_hour", "weekly") and value > 0:
                self.reset[window] = max(value, self.reset.get(window, value))
        elif name == "zai_proxy_build_info" and value:
            self.builds[(labels.get("version", "unknown"), labels.get("commit", "unknown"))] += 1

    def write(self, sample: dict, pods_up: int, pods_total: int) -> None:
        def gauge(name, value):
            sample[f"g:{name}"] = value
            sample[f"n:{name}"] = 1
        gauge("pods_up", pods_up)
        gauge("pods_total", pods_total)
        if self.has_in_flight:
            gauge("in_flight", self.in_flight)
        if self.has_max_workers:
            gauge("max_workers", self.max_workers)
        if self.rate_limits:
            gauge("rl", sum(self.rate_limits) / len(self.rate_limits))
        if "five_hour" in self.usage:
            gauge("q5h", self.usage["five_hour"])
        if "weekly" in self.usage:
            gauge("qwk", self.usage["weekly"])

    def build(self) -> dict | None:
        if not self.builds:
            return None
        (version, commit), _ = self.builds.most_common(1)[0]
        return {"version": version, "commit": commit}

    def quota(self) -> dict:
        return {"five_hour_used_ratio": self.usage.get("five_hour"),
                "five_hour_reset": self.reset.get("five_hour"),
                "weekly_used_ratio": self.usage.get("weekly"),
                "weekly_reset": self.reset.get("weekly")}
