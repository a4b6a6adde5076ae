"""Queries over stored samples: time series in aligned buckets, breakdowns, the CSV export.

A bucket's figures come from the merge of the samples inside it, so a rate is the counter
deltas over the seconds collected and a percentile comes from the bucket increments of the whole
bucket (never an average of percentiles). Where a bucket is a single tick (the step is the
scrape interval) or a single minute (step 60), the figures stored with the row are used as they
are. Steps that are multiples of a minute read the 1-minute rollups up to the rollup watermark
and the raw ticks after it, so the newest minute is never missing.
"""

from __future__ import annotations

import csv
import io
import math
import time

from .figures import FIGURES, figures, merge_into
from .storage import ROLLUP_STEP, Storage

RANGES = {"5m": 300, "15m": 900, "1h": 3600, "6h": 6 * 3600, "24h": 86400, "7d": 7 * 86400}
MAX_POINTS = 20_000
BREAKDOWNS = {"model": "m:", "status": "s:", "error_type": "et:", "zai_class": "zc:",
              "retry_reason": "rr:"}


class QueryError(ValueError):
    """A bad query parameter; the message names it."""


def default_step(span: float, interval: int) -> int:
    if span <= 3600:
        return interval
    if span <= 6 * 3600:
        return _multiple(30, interval)
    if span <= 86400:
        return _multiple(60, interval)
    return _multiple(600, interval)


def _multiple(target: int, interval: int) -> int:
    return max(interval, math.ceil(target / interval) * interval)


def _number(args, name: str) -> float:
    text = args.get(name)
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise QueryError(f"{name} must be a unix time in seconds") from None
    if not math.isfinite(value) or value < 0:
        raise QueryError(f"{name} must be a unix time in seconds")
    return value


def window(args, now: float, interval: int) -> tuple[int, int, int]:
    """(first bucket, last bucket, step) from `range` or `from`/`to`, and `step`."""
    if "range" in args and ("from" in args or "to" in args):
        raise QueryError("range cannot be combined with from/to")
    if "from" in args or "to" in args:
        start = _number(args, "from")
        end = _number(args, "to") if "to" in args else now
        if end <= start:
            raise QueryError("to must be later than from")
    else:
        name = args.get("range", "1h")
        if name not in RANGES:
            raise QueryError(f"range must be one of {', '.join(RANGES)}")
        end = now
        start = now - RANGES[name]
    if "step" in args:
        try:
            step = int(args["step"])
        except (TypeError, ValueError):
            raise QueryError("step must be a whole number of seconds") from None
        if step < interval or (step % interval and step % ROLLUP_STEP):
            raise QueryError(f"step must be a multiple of the scrape interval ({interval}s) or "
                             f"of {ROLLUP_STEP}s")
    else:
        step = default_step(end - start, interval)
    first = int(start // step * step)
    last = int(end // step * step)
    if (last - first) // step + 1 > MAX_POINTS:
        raise QueryError(f"step is too small for this range: more than {MAX_POINTS} points")
    return first, last, step


def variants_arg(args, variants) -> tuple[str, ...]:
    name = args.get("variant", "all")
    if name == "all":
        return tuple(variants)
    if name not in variants:
        raise QueryError(f"variant must be all or one of {', '.join(variants)}")
    return (name,)


def series(storage: Storage, interval: int, first: int, last: int, step: int,
           variants) -> dict:
    count = (last - first) // step + 1
    end = last + step
    columns = {v: {name: [None] * count for name in FIGURES} for v in variants}
    direct: list[tuple[int, str, list]] = []     # (index, variant, fig row)
    merged: dict[tuple[int, str], dict] = {}

    def add(t, variant, sample):
        merge_into(merged.setdefault(((t - first) // step, variant), {}), sample)

    if step == interval:
        resolution = "raw"
        for t, variant, _, fig, _ in storage.raw(first, end, variants):
            direct.append(((t - first) // step, variant, fig))
    elif step % ROLLUP_STEP == 0:
        resolution = "rollup"
        watermark = storage.watermark if storage.watermark is not None else first
        split = max(first, min(watermark, end))
        for t, variant, fig, sample in storage.rollups(first, split, variants,
                                                       samples=step != ROLLUP_STEP):
            if step == ROLLUP_STEP:
                direct.append(((t - first) // step, variant, fig))
            else:
                add(t, variant, sample)
        for t, variant, _, _, sample in storage.raw(split, end, variants, samples=True):
            add(t, variant, sample)
    else:
        resolution = "raw"
        for t, variant, _, _, sample in storage.raw(first, end, variants, samples=True):
            add(t, variant, sample)
    for index, variant, fig in direct:
        if 0 <= index < count:
            target = columns[variant]
            for name, value in zip(FIGURES, fig):
                target[name][index] = value
    for (index, variant), sample in merged.items():
        if 0 <= index < count:
            target = columns[variant]
            for name, value in figures(sample).items():
                target[name][index] = value
    return {"from": first, "to": last, "step_s": step, "resolution": resolution,
            "t": list(range(first, end, step)), "variants": columns}


def merged_samples(storage: Storage, start: float, end: float, variants) -> dict[str, dict]:
    """One sample per variant over [start, end): rollups for whole minutes, raw ticks around."""
    totals: dict[str, dict] = {v: {} for v in variants}
    minute_start = math.ceil(start / ROLLUP_STEP) * ROLLUP_STEP
    watermark = storage.watermark if storage.watermark is not None else minute_start
    split = max(minute_start, min(watermark, end))
    pieces = [storage.raw(start, min(minute_start, end), variants, samples=True),
              storage.raw(split, end, variants, samples=True)]
    for t, variant, _, _, sample in (row for rows in pieces for row in rows):
        merge_into(totals[variant], sample)
    for t, variant, _, sample in storage.rollups(minute_start, split, variants, samples=True):
        merge_into(totals[variant], sample)
    return totals


def breakdown(storage: Storage, by: str, start: float, end: float, variants) -> dict:
    if by not in BREAKDOWNS:
        raise QueryError(f"by must be one of {', '.join(BREAKDOWNS)}")
    totals = merged_samples(storage, start, end, variants)
    rows = []
    for variant in variants:
        sample = totals[variant]
        if by == "model":
            models = sorted({key.split(":", 2)[2] for key in sample if key.startswith("m:")})
            found = [{"variant": variant, "key": model, "requests": None,
                      "input_tokens": sample.get(f"m:i:{model}", 0),
                      "output_tokens": sample.get(f"m:o:{model}", 0),
                      "estimated_tokens": sample.get(f"m:e:{model}", 0),
                      "cost_usd": round(sample.get(f"m:c:{model}", 0), 6)} for model in models]
            found.sort(key=lambda row: -(row["input_tokens"] + row["output_tokens"]))
        else:
            prefix = BREAKDOWNS[by]
            column = "requests" if by == "status" else "count"
            found = [{"variant": variant, "key": key[len(prefix):], column: value}
                     for key, value in sample.items() if key.startswith(prefix)]
            found.sort(key=lambda row: -row[column])
        rows += found
    return {"by": by, "from": start, "to": end, "rows": rows}


def to_csv(result: dict) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["time_utc", "variant", *FIGURES])
    for index, t in enumerate(result["t"]):
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))
        for variant, columns in result["variants"].items():
            writer.writerow([stamp, variant, *("" if columns[name][index] is None
                                               else columns[name][index] for name in FIGURES)])
    return out.getvalue()
