"""Queries over stored samples: time series in aligned buckets, breakdowns, the CSV export.

A bucket's figures come from the merge of the samples inside it, so a rate is the counter
deltas over the seconds collected and a percentile comes from the bucket increments of the whole
bucket (never an average of percentiles). Where a bucket is a single tick (the step is the
scrape interval) or a single minute (step 60), the figures stored with the row are used as they
are. Steps that are multiples of a minute (or of 10 minutes) read the rollups where whole blocks
fit and exist, and the raw ticks after the newest one, so the newest minute is never missing.
"""

from __future__ import annotations

import csv
import io
import math
import time

from .figures import FIGURES, figures, merge_into
from .rollups import LEVELS, pieces
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


def _text(value) -> str:
    return "null" if value is None else repr(float(value))


def series(storage: Storage, interval: int, first: int, last: int, step: int,
           variants) -> dict:
    """The buckets' figures as columns of JSON text fragments (`to_json` joins them)."""
    count = (last - first) // step + 1
    end = last + step
    columns = {v: [["null"] * count for _ in FIGURES] for v in variants}
    merged: dict[tuple[int, str], dict] = {}

    def direct(rows):
        """One stored row per bucket. The rows' texts are joined into one string and split
        once, and each column is a stride of it: no per-number work in Python."""
        width = len(FIGURES)
        empty = ",".join(["null"] * width)
        by_index = {v: [empty] * count for v in variants}
        for t, variant, text in rows:
            index = (t - first) // step
            if 0 <= index < count:
                by_index[variant][index] = text
        for variant, texts in by_index.items():
            flat = ",".join(texts).split(",")
            columns[variant] = [flat[j::width] for j in range(width)]

    def add(t, variant, sample):
        merge_into(merged.setdefault(((t - first) // step, variant), {}), sample)

    if step == interval:
        resolution = "raw"
        direct(storage.figure_texts("raw", first, end, variants))
    else:
        usable = tuple(size for size, _ in LEVELS if step % size == 0)
        parts = pieces(first, end, storage.watermarks, usable)
        resolution = "rollup" if any(table != "raw" for table, _, _ in parts) else "raw"
        # Where a bucket is one stored block (step 60 or 600), its stored figures are used.
        exact = dict(LEVELS).get(step)
        for table, lo, hi in sorted(parts, key=lambda part: part[0] != exact):
            if table == exact:
                direct(storage.figure_texts(table, lo, hi, variants))
            else:
                for t, variant, sample in storage.samples(table, lo, hi, variants):
                    add(t, variant, sample)
    for (index, variant), sample in merged.items():
        if 0 <= index < count:
            target = columns[variant]
            for column, value in zip(target, figures(sample).values()):
                column[index] = _text(value)
    return {"from": first, "to": last, "step_s": step, "resolution": resolution,
            "t": list(range(first, end, step)), "variants": columns}


def to_json(result: dict) -> str:
    """The /api/series body, joined from the text fragments (API.md's shape)."""
    parts = [f'{{"from":{result["from"]},"to":{result["to"]},"step_s":{result["step_s"]},'
             f'"resolution":"{result["resolution"]}","t":[{",".join(map(str, result["t"]))}],'
             '"variants":{']
    variants = []
    for variant, columns in result["variants"].items():
        figures_json = ",".join(f'"{name}":[{",".join(column)}]'
                                for name, column in zip(FIGURES, columns))
        variants.append(f'"{variant}":{{{figures_json}}}')
    parts.append(",".join(variants))
    parts.append("}}")
    return "".join(parts)


def merged_samples(storage: Storage, start: float, end: float, variants) -> dict[str, dict]:
    """One sample per variant over [start, end): the coarsest rollups that fit, raw ticks
    around them."""
    totals: dict[str, dict] = {v: {} for v in variants}
    for table, lo, hi in pieces(start, end, storage.watermarks):
        for _, variant, sample in storage.samples(table, lo, hi, variants):
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
            writer.writerow([stamp, variant, *("" if column[index] == "null" else column[index]
                                               for column in columns)])
    return out.getvalue()
