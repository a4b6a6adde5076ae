"""Samples and figures: what is stored per tick, and what the API shows for a time bucket.

A *sample* is one variant's collection over some stretch of time, as a flat dict of numbers that
add up: merging two samples (two ticks into a minute, ten minutes into a bucket) is summing
their values key by key. Keys:
- `dt`: seconds of collection the counter deltas cover (0: nothing to rate, e.g. a first scrape)
- counter deltas: `req`, `c2`…`c5` (by status class), `ue` (upstream errors), `rt` (retries),
  `rej` (rate-limit rejections), `tok:i` / `tok:o` / `tok:e` (input, output, estimated tokens),
  `cost` (USD); breakdowns `s:<status>`, `et:<error type>`, `rr:<retry reason>`,
  `zc:<Z.AI class>`, `m:<i|o|e|c>:<model>`
- histogram bucket increments (not cumulative, so that empty buckets take no room), keyed by
  the bucket's bounds: `h:d:<lower>~<upper>` request duration, `h:t:…` time to first byte,
  `h:w:…` rate-limit wait (the lowest bucket's lower bound is `-inf`)
- gauges as a sum and a count, so averages survive merging: `g:<name>` and `n:<name>` for
  in_flight, max_workers, rl (rate limit), q5h / qwk (quota used), pods_up, pods_total
- `has:tok`: ticks in which the variant exported token families (absent: the figures are null)

*Figures* (dashboard/API.md) are computed from a sample: rates are counter deltas over `dt`,
quantiles come from the bucket increments, gauges are averaged.
"""

from __future__ import annotations

import math

FIGURES = (
    "requests_per_s", "requests_2xx_per_s", "requests_3xx_per_s", "requests_4xx_per_s",
    "requests_5xx_per_s", "error_ratio", "latency_p50_s", "latency_p95_s", "latency_p99_s",
    "ttfb_p50_s", "ttfb_p95_s", "input_tokens_per_s", "output_tokens_per_s",
    "estimated_tokens_per_s", "cost_usd_per_h", "cost_usd", "in_flight", "max_workers",
    "utilization_ratio", "rate_limit_per_s", "rate_limit_wait_p95_s",
    "rate_limit_rejections_per_s", "upstream_errors_per_s", "retries_per_s",
    "quota_five_hour_used_ratio", "quota_weekly_used_ratio", "pods_up",
)
FIGURE_INDEX = {name: i for i, name in enumerate(FIGURES)}
HISTOGRAMS = ("d", "t", "w")


def merge_into(total: dict, sample: dict) -> dict:
    get = total.get
    for key, value in sample.items():
        total[key] = get(key, 0) + value
    return total


def merge(samples) -> dict:
    total: dict = {}
    for sample in samples:
        merge_into(total, sample)
    return total


def _round(value: float | None) -> float | None:
    """Six significant digits (a cost of a few micro-dollars keeps its digits)."""
    if value is None or value == 0:
        return value if value is None else 0.0
    if not math.isfinite(value):
        return None
    return float("%.6g" % value)


def _histograms(sample: dict) -> dict[str, list[tuple[float, float, float]]]:
    """{family: [(lower bound, upper bound, increment)] by upper bound}, in one pass."""
    found: dict[str, list] = {}
    for key, value in sample.items():
        if key[:2] == "h:" and value > 0:
            lower, _, upper = key[4:].partition("~")
            found.setdefault(key[2], []).append((float(upper), float(lower), value))
    out = {}
    for family, items in found.items():
        items.sort()
        out[family] = [(lower, upper, count) for upper, lower, count in items]
    return out


def buckets(sample: dict, family: str) -> list[tuple[float, float, float]]:
    """[(lower bound, upper bound, increment)] of one histogram, by upper bound."""
    return _histograms(sample).get(family, [])


def quantile(q: float, increments: list[tuple[float, float, float]]) -> float | None:
    """Prometheus's histogram_quantile over bucket increments: linear inside the bucket (from
    0 in the lowest bucket when its bound is positive); in the +Inf bucket, the largest finite
    bound."""
    if not increments:
        return None
    total = sum(count for _, _, count in increments)
    if total <= 0:
        return None
    rank = q * total
    cumulative = 0.0
    for lower, upper, count in increments:
        if cumulative + count >= rank:
            if not math.isfinite(upper):
                return lower if math.isfinite(lower) else None
            if not math.isfinite(lower):
                if upper <= 0:
                    return upper
                lower = 0.0
            return lower + (upper - lower) * (rank - cumulative) / count
        cumulative += count
    lower, upper, _ = increments[-1]
    return upper if math.isfinite(upper) else lower


def _gauge(sample: dict, name: str) -> float | None:
    count = sample.get(f"n:{name}", 0)
    if not count:
        return None
    return sample.get(f"g:{name}", 0) / count


def figures(sample: dict) -> dict:
    """Every figure of API.md for one sample; None where it cannot be computed."""
    get = sample.get
    dt = get("dt", 0)
    out = dict.fromkeys(FIGURES)
    if dt > 0:
        out["requests_per_s"] = get("req", 0) / dt
        for cls in "2345":
            out[f"requests_{cls}xx_per_s"] = get(f"c{cls}", 0) / dt
        if get("req", 0) > 0:
            out["error_ratio"] = get("c5", 0) / get("req")
        out["rate_limit_rejections_per_s"] = get("rej", 0) / dt
        out["upstream_errors_per_s"] = get("ue", 0) / dt
        out["retries_per_s"] = get("rt", 0) / dt
        if get("has:tok", 0) > 0:
            out["input_tokens_per_s"] = get("tok:i", 0) / dt
            out["output_tokens_per_s"] = get("tok:o", 0) / dt
            out["estimated_tokens_per_s"] = get("tok:e", 0) / dt
            out["cost_usd_per_h"] = get("cost", 0) / dt * 3600
            out["cost_usd"] = get("cost", 0)
    histograms = _histograms(sample)
    if histograms:
        duration = histograms.get("d", ())
        out["latency_p50_s"] = quantile(0.5, duration)
        out["latency_p95_s"] = quantile(0.95, duration)
        out["latency_p99_s"] = quantile(0.99, duration)
        ttfb = histograms.get("t", ())
        out["ttfb_p50_s"] = quantile(0.5, ttfb)
        out["ttfb_p95_s"] = quantile(0.95, ttfb)
        out["rate_limit_wait_p95_s"] = quantile(0.95, histograms.get("w", ()))
    in_flight = _gauge(sample, "in_flight")
    max_workers = _gauge(sample, "max_workers")
    out["in_flight"] = in_flight
    out["max_workers"] = max_workers
    if in_flight is not None and max_workers:
        out["utilization_ratio"] = in_flight / max_workers
    out["rate_limit_per_s"] = _gauge(sample, "rl")
    out["quota_five_hour_used_ratio"] = _gauge(sample, "q5h")
    out["quota_weekly_used_ratio"] = _gauge(sample, "qwk")
    out["pods_up"] = _gauge(sample, "pods_up")
    return {key: _round(value) for key, value in out.items()}


def as_row(figs: dict) -> list:
    """Figures in FIGURES order (how the database stores them)."""
    return [figs[name] for name in FIGURES]


def from_row(row: list) -> dict:
    return dict(zip(FIGURES, row))
