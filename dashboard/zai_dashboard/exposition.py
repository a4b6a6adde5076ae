"""Reading a Prometheus text exposition: only the proxy families the dashboard shows.

A pod's /metrics is mostly series the dashboard never draws (request and response sizes, one
wait histogram per fairness bucket…). prometheus_client's parser builds an object per sample of
every family (~60 ms for 300 kB); this one skips unwanted lines by their name and keeps each
wanted sample as `series key -> value`, where the key is the sample's text up to its value
(name and labels exactly as written). Labels are only parsed for keys the collector routes, and
cached, because a pod writes the same keys every scrape.
"""

from __future__ import annotations

import math
import re

COUNTERS = frozenset({
    "zai_proxy_requests_total",
    "zai_proxy_upstream_errors_total",
    "zai_proxy_retry_attempts_total",
    "zai_proxy_zai_errors_total",
    "zai_proxy_tokens_total",
    "zai_proxy_estimated_tokens_total",
    "zai_proxy_estimated_cost_usd_total",
    "zai_proxy_rate_limit_rejections_total",
})
BUCKETS = {
    "zai_proxy_request_duration_seconds_bucket": "d",
    "zai_proxy_time_to_first_byte_seconds_bucket": "t",
    "zai_proxy_rate_limit_wait_seconds_bucket": "w",
}
GAUGES = frozenset({
    "zai_proxy_concurrent_requests",
    "zai_proxy_max_workers",
    "zai_proxy_rate_limit_requests_per_second",
    "zai_proxy_quota_usage_ratio",
    "zai_proxy_quota_reset_time_seconds",
    "zai_proxy_build_info",
})
CUMULATIVE = COUNTERS | frozenset(BUCKETS)
WANTED = CUMULATIVE | GAUGES
WANTED_REGEX = "|".join(sorted(WANTED))

_FIRST = re.compile(r"[#a-zA-Z_:]")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"')
_ESCAPES = re.compile(r"\\(.)")
_UNESCAPE = {"n": "\n", "\\": "\\", '"': '"'}


class ExpositionError(ValueError):
    """The body is not a Prometheus text exposition."""


def parse(text: str) -> dict[str, float]:
    """{series key: value} of the wanted families; NaN samples are left out."""
    head = text.lstrip()[:1]
    if head and not _FIRST.match(head):
        raise ExpositionError("the body is not a Prometheus text exposition")
    samples: dict[str, float] = {}
    for line in text.split("\n"):
        if not line.startswith("zai_proxy_"):
            continue
        brace = line.find("{")
        space = line.find(" ")
        if brace != -1 and (space == -1 or brace < space):
            name = line[:brace]
            if name not in WANTED:
                continue
            end = line.rfind("}")
            if end < brace:
                raise ExpositionError("a sample's labels are not closed")
            key, rest = line[:end + 1], line[end + 1:]
        else:
            name = line[:space] if space != -1 else line
            if name not in WANTED:
                continue
            key, rest = name, line[len(name):]
        fields = rest.split()
        if not fields:
            raise ExpositionError("a sample has no value")
        try:
            value = float(fields[0])
        except ValueError:
            raise ExpositionError("a sample's value is not a number") from None
        if not math.isnan(value):
            samples[key] = value
    return samples


def name_of(key: str) -> str:
    brace = key.find("{")
    return key if brace == -1 else key[:brace]


class LabelCache:
    """Parsed labels per series key; bounded, since a misbehaving target could invent keys."""

    def __init__(self, limit: int = 200_000):
        self._cache: dict[str, dict[str, str]] = {}
        self._limit = limit

    def labels(self, key: str) -> dict[str, str]:
        found = self._cache.get(key)
        if found is None:
            brace = key.find("{")
            found = {} if brace == -1 else {
                k: (_ESCAPES.sub(lambda m: _UNESCAPE.get(m.group(1), m.group(1)), v)
                    if "\\" in v else v)
                for k, v in _LABEL.findall(key, brace)}
            if len(self._cache) >= self._limit:
                self._cache.clear()
            self._cache[key] = found
        return found


def series_key(name: str, labels: dict[str, str]) -> str:
    """A canonical key for a series given as name and labels (the Prometheus API source)."""
    if not labels:
        return name
    inner = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(labels.items()))
    return f"{name}{{{inner}}}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
