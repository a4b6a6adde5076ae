"""The canary verdict: the chart's canary-vs-production alerts, turned into a decision.

Over the last DASHBOARD_VERDICT_WINDOW, with the thresholds of `ZaiProxyCanaryDegradedVsProduction`
and `ZaiProxyCanarySlowerThanProduction` (the chart passes the same values the rules use):
- `error_ratio` fails when the canary's 5xx ratio > factor × (production's + margin);
- `latency_p95` fails when the canary's p95 > factor × (production's p95 + margin).
Both only count with enough traffic (`traffic`: more than DASHBOARD_MIN_REQUEST_RATE req/s and at
least MIN_REQUESTS requests in each variant, since a ratio of a handful of requests means
nothing) and with production present (`production_present`: up or degraded, with data in the
window). Verdict: `hold` without enough traffic or without production, else `rollback` when a
check fails, else `promote`.
"""

from __future__ import annotations

from .config import Thresholds
from .figures import buckets, quantile

MIN_REQUESTS = 10
BASELINE, CANDIDATE = "production", "canary"


def _percent(ratio: float) -> str:
    return f"{ratio * 100:.3g} %"


def _seconds(value: float) -> str:
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.3g} s"


def window_figures(sample: dict) -> dict:
    requests = sample.get("req", 0)
    seconds = sample.get("dt", 0)
    return {
        "requests": requests,
        "requests_5xx": sample.get("c5", 0),
        "covered_s": seconds,
        "requests_per_s": requests / seconds if seconds else None,
        "error_ratio": sample.get("c5", 0) / requests if requests else None,
        "latency_p95_s": quantile(0.95, buckets(sample, "d")),
    }


def judge(samples: dict[str, dict], states: dict[str, str], thresholds: Thresholds,
          window_s: float, now: float) -> dict:
    figures = {variant: window_figures(sample) for variant, sample in samples.items()}
    prod, canary = figures.get(BASELINE), figures.get(CANDIDATE)
    reasons = []

    present = (prod is not None and states.get(BASELINE) in ("up", "degraded")
               and prod["covered_s"] > 0)
    reasons.append({
        "check": "production_present", "status": "pass" if present else "fail",
        "message": "production is scraped and has data in the window" if present else
        "production is not being scraped (missing, down or stale): nothing to compare with",
        "production": states.get(BASELINE), "canary": states.get(CANDIDATE), "threshold": None})

    floor = thresholds.min_requests_per_s

    def enough(f):
        return (f is not None and f["requests_per_s"] is not None
                and f["requests_per_s"] > floor and f["requests"] >= MIN_REQUESTS)

    traffic = enough(prod) and enough(canary)
    rate = {name: (f["requests_per_s"] if f else None) for name, f in
            (("production", prod), ("canary", canary))}
    reasons.append({
        "check": "traffic", "status": "pass" if traffic else "insufficient",
        "message": (f"production {_rate(rate['production'])}, canary {_rate(rate['canary'])} "
                    f"(need more than {floor:g} req/s and {MIN_REQUESTS} requests each)"),
        "production": rate["production"], "canary": rate["canary"], "threshold": floor})

    comparable = present and traffic
    reasons.append(_error_check(prod, canary, thresholds, comparable))
    reasons.append(_latency_check(prod, canary, thresholds, comparable))

    if not comparable:
        verdict = "hold"
    elif any(reason["status"] == "fail" for reason in reasons[2:]):
        verdict = "rollback"
    else:
        verdict = "promote"
    window = int(window_s) if window_s == int(window_s) else window_s
    return {"verdict": verdict, "evaluated_at": now, "window_s": window, "reasons": reasons,
            "figures": figures}


def _rate(value) -> str:
    return "no data" if value is None else f"{value:.3g} req/s"


def _compare(check: str, figure: str, what: str, show, factor: float, margin: float,
             prod, canary, comparable: bool) -> dict:
    """One canary-vs-production rule: the canary fails when its figure > factor × (production's
    figure + margin), as the chart's comparison alert says."""
    p = prod[figure] if prod else None
    c = canary[figure] if canary else None
    if not comparable or p is None or c is None:
        return {"check": check, "status": "insufficient",
                "message": "not compared: not enough traffic or no production",
                "production": p, "canary": c, "threshold": None}
    limit = factor * (p + margin)
    return {"check": check, "status": "fail" if c > limit else "pass",
            "message": (f"canary {what} {show(c)} vs production {show(p)} (limit "
                        f"{factor:g} × ({show(p)} + {show(margin)}) = {show(limit)})"),
            "production": p, "canary": c, "threshold": limit}


def _error_check(prod, canary, th: Thresholds, comparable: bool) -> dict:
    return _compare("error_ratio", "error_ratio", "5xx", _percent, th.error_ratio_factor,
                    th.error_ratio_margin, prod, canary, comparable)


def _latency_check(prod, canary, th: Thresholds, comparable: bool) -> dict:
    return _compare("latency_p95", "latency_p95_s", "p95", _seconds, th.latency_p95_factor,
                    th.latency_p95_margin_s, prod, canary, comparable)
