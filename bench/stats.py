"""Percentiles, medians over repetitions, and ratios that tolerate missing or zero values."""

from __future__ import annotations

import math


def percentile(values, q: float) -> float | None:
    """The q-th percentile (0..100), linear between closest ranks; None for no values."""
    data = sorted(values)
    if not data:
        return None
    if len(data) == 1:
        return float(data[0])
    rank = (len(data) - 1) * q / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(data) - 1)
    return float(data[low] + (data[high] - data[low]) * (rank - low))


def summary(values, qs=(50, 90, 99, 99.9)) -> dict:
    data = list(values)
    out = {"n": len(data)}
    for q in qs:
        out[f"p{q:g}"] = _round(percentile(data, q))
    out["max"] = _round(max(data)) if data else None
    return out


def spread(values) -> dict:
    """Median of the repetitions and their range: {median, min, max, n}."""
    data = sorted(v for v in values if v is not None)
    if not data:
        return {"median": None, "min": None, "max": None, "n": 0}
    return {"median": _round(percentile(data, 50)), "min": _round(data[0]),
            "max": _round(data[-1]), "n": len(data)}


def ratio(value, reference) -> float | None:
    if value is None or reference in (None, 0):
        return None
    return round(value / reference, 3)


def _round(value):
    if value is None:
        return None
    return round(float(value), 4)
