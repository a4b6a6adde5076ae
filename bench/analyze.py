"""From raw runs to figures: medians over repetitions with their range, paired differences to
the direct path (same repetition), ratios to the direct path and to the peers, and the targets
of issue 6 read against them."""

from __future__ import annotations

from .contestants import PROXIES
from .stats import ratio, spread

PEERS = ("litellm", "nginx")
OURS = ("production", "canary")
KIB, MIB = 1024, 1024 * 1024


def _get(run: dict, path: str):
    value = run
    for key in path.split("."):
        if value is None:
            return None
        value = value.get(key)
    return value


def _paired(runs, direct_runs, path):
    """Per repetition: contestant minus direct, for the same repetition."""
    out = []
    for own, floor in zip(runs, direct_runs):
        a, b = _get(own, path), _get(floor, path)
        out.append(None if a is None or b is None else a - b)
    return out


# An added time below this (ms) is within the noise of two runs: no ratio is taken against it.
ADDED_NOISE_MS = 0.5


def _ratios(table: dict, level: str, key: str, names) -> dict:
    """{name: {vs_direct, vs_litellm, vs_nginx}} for a median figure `key`."""
    def med(name):
        entry = table.get(name, {}).get(level, {}).get(key)
        return entry["median"] if isinstance(entry, dict) else entry

    def usable(value):
        if value is None or not key.startswith("added_"):
            return value
        return value if value >= ADDED_NOISE_MS else None
    out = {}
    for name in names:
        out[name] = {"vs_" + other: ratio(med(name), usable(med(other)))
                     for other in ("direct", *PEERS) if other != name and other in table}
    return out


def _table(runs: dict, measure, added: dict) -> dict:
    """{contestant: {level: figures}}: `measure(reps)` gives the figures of one contestant at one
    level; each `added` key (name → path in a run) is the paired difference to the direct path."""
    table = {}
    for name, by_level in runs.items():
        table[name] = {}
        for level, reps in by_level.items():
            entry = measure(reps)
            if name != "direct" and "direct" in runs:
                floor = runs["direct"][level]
                for key, path in added.items():
                    entry[key] = spread(_paired(reps, floor, path))
            table[name][level] = entry
    return table


def _nonstreaming_figures(reps) -> dict:
    return {
        "throughput_rps": spread(r["throughput_rps"] for r in reps),
        "p50_ms": spread(_get(r, "latency_ms.p50") for r in reps),
        "p99_ms": spread(_get(r, "latency_ms.p99") for r in reps),
        "errors": sum(r["errors"] for r in reps),
        "cpu_us_per_request": spread(r.get("contestant_cpu_us_per_request") for r in reps),
        "contestant_cpu_share": spread(r.get("contestant_cpu_share") for r in reps),
    }


def _streaming_figures(reps) -> dict:
    return {
        "ttft_p50_ms": spread(_get(r, "ttft_ms.p50") for r in reps),
        "ttft_p99_ms": spread(_get(r, "ttft_ms.p99") for r in reps),
        "gap_p99_ms": spread(_get(r, "gap_ms.p99") for r in reps),
        "lost_chunks": sum(r["lost_chunks"] + r["warmup"]["lost_chunks"] for r in reps),
        "errors": sum(r["error_count"] + sum(r["warmup"]["errors"].values()) for r in reps),
        "streams": sum(r["streams"] + r["warmup"]["streams"] for r in reps),
        "cpu_us_per_stream": spread(r.get("contestant_cpu_us_per_request") for r in reps),
        "client_cpu_share": spread(r.get("client_cpu_share") for r in reps),
    }


def nonstreaming(raw: dict) -> dict:
    runs = raw["runs"]
    table = _table(runs, _nonstreaming_figures, {"added_p50_ms": "latency_ms.p50",
                                                 "added_p99_ms": "latency_ms.p99"})
    ratios = {level: {"throughput": _ratios(table, level, "throughput_rps", runs),
                      "added_p99": _ratios(table, level, "added_p99_ms", PROXIES)}
              for level in next(iter(runs.values()))}
    return {"table": table, "ratios": ratios}


def streaming(raw: dict) -> dict:
    runs = raw["runs"]
    table = _table(runs, _streaming_figures, {"added_ttft_p50_ms": "ttft_ms.p50",
                                              "added_ttft_p99_ms": "ttft_ms.p99",
                                              "added_gap_p99_ms": "gap_ms.p99"})
    ratios = {level: {key: _ratios(table, level, key, PROXIES)
                      for key in ("added_ttft_p50_ms", "added_gap_p99_ms")}
              for level in next(iter(runs.values()))}
    return {"table": table, "ratios": ratios}


def held(raw: dict) -> dict:
    out = {}
    for name, result in raw["results"].items():
        ok_levels = [lvl for lvl in result["levels"] if lvl["error_count"] == 0]
        best = max(ok_levels, key=lambda lvl: lvl["level"]) if ok_levels else None
        failed = [lvl for lvl in result["levels"] if lvl["error_count"]]
        out[name] = {
            "max_streams_without_error": best["level"] if best else 0,
            "all_levels_passed": not failed and not result.get("not_tried_time_budget"),
            "not_tried_time_budget": result.get("not_tried_time_budget", []),
            "all_first_token_s": {str(lvl["level"]): lvl.get("all_first_token_s")
                                  for lvl in result["levels"]},
            "first_failure": ({"level": failed[0]["level"], "errors": failed[0]["errors"],
                               "lost_chunks": failed[0]["lost_chunks"]} if failed else None),
            "rss_per_stream_kib": {str(lvl["level"]): round(lvl["rss_per_stream_bytes"] / KIB, 1)
                                   for lvl in result["levels"] if "rss_per_stream_bytes" in lvl},
            "rss_peak_mib": {str(lvl["level"]): round(lvl["rss_peak_bytes"] / MIB, 1)
                             for lvl in result["levels"] if "rss_peak_bytes" in lvl},
            "rss_base_mib": round(result["rss_base_bytes"] / MIB, 1)
            if result.get("rss_base_bytes") else None,
            "ttft_p99_ms": {str(lvl["level"]): _get(lvl, "ttft_ms.p99")
                            for lvl in result["levels"]},
        }
        if best and "rss_per_stream_bytes" in best:
            out[name]["rss_per_stream_kib_at_max"] = round(best["rss_per_stream_bytes"] / KIB, 1)
    return out


def token_cost(raw: dict) -> dict:
    table = {}
    for name, kinds in raw["runs"].items():
        table[name] = {kind: {
            "cpu_us_per_request": spread(r.get("contestant_cpu_us_per_request") for r in reps),
            "errors": sum(r.get("error_count", r.get("errors", 0)) for r in reps),
        } for kind, reps in kinds.items()}
    out = {"table": table, "canary_vs_production": {}}
    if "canary" in table and "production" in table:
        for kind in ("long_prompt", "long_output"):
            on = table["canary"][kind]["cpu_us_per_request"]["median"]
            off = table["production"][kind]["cpu_us_per_request"]["median"]
            out["canary_vs_production"][kind] = ratio(on, off)
    return out


def steady(raw: dict) -> dict:
    points = raw["points"]
    if not points:
        return {}
    first = points[0]
    warm = next((p for p in points if p["requests"] >= 10_000), points[0])
    last = points[-1]
    span = last["requests"] - warm["requests"]
    growth = ((last["rss_bytes"] - warm["rss_bytes"]) / span * 10_000 / MIB) if span else None
    # Least-squares slope over the points after warm-up, less sensitive to one odd sample.
    after = [p for p in points if p["requests"] >= warm["requests"]]
    slope = None
    if len(after) >= 3:
        xs = [p["requests"] for p in after]
        ys = [p["rss_bytes"] for p in after]
        mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
        den = sum((x - mx) ** 2 for x in xs)
        if den:
            slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / den * 10_000 / MIB
    return {
        "contestant": raw["contestant"], "total_requests": raw["total_requests"],
        "concurrency": raw.get("concurrency"),
        "errors": raw["errors"],
        "rss_first_mib": round(first["rss_bytes"] / MIB, 2), "first_requests": first["requests"],
        "rss_warm_mib": round(warm["rss_bytes"] / MIB, 2), "warm_requests": warm["requests"],
        "rss_last_mib": round(last["rss_bytes"] / MIB, 2), "last_requests": last["requests"],
        "growth_mib_per_10k": round(growth, 3) if growth is not None else None,
        "slope_mib_per_10k": round(slope, 3) if slope is not None else None,
        "growth_since_first_mib": round((last["rss_bytes"] - first["rss_bytes"]) / MIB, 2),
    }


def _target(tid, text, who, measured, limit, unit, higher_is_better=False, detail=""):
    if measured is None:
        ok, miss = None, None
    elif higher_is_better:
        ok = measured >= limit
        miss = None if ok else round(limit / measured, 2) if measured else None
    else:
        ok = measured <= limit
        miss = None if ok else round(measured / limit, 2) if limit else None
    return {"id": tid, "target": text, "contestant": who, "measured": measured, "limit": limit,
            "unit": unit, "pass": ok, "miss_factor": miss, "detail": detail}


def targets(figures: dict) -> list[dict]:
    out = []
    ns, st = figures.get("nonstreaming"), figures.get("streaming")
    for who in OURS:
        if ns and who in ns["table"]:
            t = ns["table"][who]
            if "16" in t:
                out.append(_target("ns_added_p99_16", "non-streaming added p99 at 16 clients",
                                   who, t["16"]["added_p99_ms"]["median"], 5.0, "ms"))
            for level in ("16", "64"):
                if level in t:
                    out.append(_target(
                        f"ns_tput_direct_{level}", f"throughput vs direct at {level} clients",
                        who, ns["ratios"][level]["throughput"][who].get("vs_direct"), 0.5, "×",
                        higher_is_better=True))
                    out.append(_target(
                        f"ns_tput_litellm_{level}", f"throughput vs LiteLLM at {level} clients",
                        who, ns["ratios"][level]["throughput"][who].get("vs_litellm"), 10.0,
                        "×", higher_is_better=True))
        if st and who in st["table"]:
            for level, entry in st["table"][who].items():
                out.append(_target(f"st_ttft_{level}", f"added TTFT p50 at {level} streams", who,
                                   entry["added_ttft_p50_ms"]["median"], 2.0, "ms"))
                out.append(_target(f"st_gap_{level}", f"added inter-chunk p99 at {level} streams",
                                   who, entry["added_gap_p99_ms"]["median"], 1.0, "ms"))
            top = str(max(int(k) for k in st["table"][who]))
            out.append(_target(f"st_lost_{top}", f"lost chunks at {top} streams", who,
                               st["table"][who][top]["lost_chunks"], 0, "chunks"))
        hc = figures.get("held", {}).get(who)
        if hc:
            best = str(hc["max_streams_without_error"])
            first = hc["all_first_token_s"].get(best)
            detail = "every level tried passed; " if hc["all_levels_passed"] else ""
            if first is not None:
                detail += f"the last first token came {first:.1f} s after the burst began"
            out.append(_target("held_streams", "concurrent slow streams held with no error", who,
                               hc["max_streams_without_error"], 1000, "streams",
                               higher_is_better=True, detail=detail))
            out.append(_target("held_rss", "RSS per extra stream (at the largest level held)",
                               who, hc.get("rss_per_stream_kib_at_max"), 256, "KiB"))
    tc = figures.get("token_cost", {}).get("canary_vs_production", {})
    if tc.get("long_output") is not None:
        out.append(_target("tok_cpu", "CPU per request, counting on ÷ off (long output)",
                           "canary", tc["long_output"], 1.15, "×"))
    sd = figures.get("steady")
    if sd:
        out.append(_target("steady_rss", "RSS growth per 10k requests after warm-up",
                           sd["contestant"], sd["growth_mib_per_10k"], 1.0, "MiB"))
    return out


def analyze(raw: dict) -> dict:
    figures = {}
    s = raw["scenarios"]
    if "nonstreaming" in s:
        figures["nonstreaming"] = nonstreaming(s["nonstreaming"])
    if "streaming" in s:
        figures["streaming"] = streaming(s["streaming"])
    if "held" in s:
        figures["held"] = held(s["held"])
    if "token_cost" in s:
        figures["token_cost"] = token_cost(s["token_cost"])
    if "steady" in s:
        figures["steady"] = steady(s["steady"])
    figures["targets"] = targets(figures)
    return figures
