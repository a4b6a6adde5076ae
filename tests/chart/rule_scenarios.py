"""Synthetic series and, for every alert of the chart, the scenarios promtool must prove.

Each alert gets four proofs (see check_rules.py, which turns them into promtool test files):
  fires      - on a bad variant, after its `for`, with exact labels and description;
  before_for - same bad series, one minute before `for` has elapsed: pending, not firing;
  healthy    - a healthy variant (often next to a bad other variant): silent;
  quiet      - the alert's floor: below the traffic floor for the ratio/latency/comparison alerts,
               or the case that must not count (a scaled-to-zero Deployment, another pod, ...).
The series carry the labels the ServiceMonitor gives them (deployment_variant, namespace, job,
instance) next to the proxy's own `variant`. Values are per minute (`interval: 1m`); the numbers
are chosen so that each description renders an exact value.
"""

from __future__ import annotations

from dataclasses import dataclass, field

MINUTES = 45  # samples per series: enough for the longest `for` (15m) plus the rate windows

# Where each variant runs in the seed: namespace, Service/Deployment name, one pod address.
TARGETS = {
    "canary": ("devpod", "zai-proxy-canary", "10.0.1.7:8080"),
    "production": ("mcp", "zai-proxy", "10.0.0.7:8080"),
}
FLOOR_PER_MIN = 2  # 2 requests a minute: below the 0.05 req/s (3/min) default floor
TRAFFIC_PER_MIN = 60  # 1 req/s


def _selector(metric: str, labels: dict[str, str]) -> str:
    inner = ",".join(f'{key}="{value}"' for key, value in labels.items())
    return f"{metric}{{{inner}}}"


def target_labels(variant: str) -> dict[str, str]:
    namespace, job, instance = TARGETS[variant]
    return {"deployment_variant": variant, "namespace": namespace, "job": job,
            "instance": instance, "variant": variant}


def series(metric: str, labels: dict[str, str], values: str) -> dict:
    return {"series": _selector(metric, labels), "values": values}


def counter(per_min: float) -> str:
    return f"0+{per_min}x{MINUTES}"


def constant(value: float) -> str:
    return f"{value}+0x{MINUTES}"


def traffic(variant: str, per_min: int, errors: int = 0, slow: int = 0,
            buckets: dict[str, int] | None = None) -> list[dict]:
    """Requests per minute, `errors` of them 500s, `slow` of them taking 10-30s (the rest < 1s).

    `buckets` (le -> cumulative count per minute) replaces the duration histogram when given.
    """
    base = {**target_labels(variant), "method": "POST", "path": "/v1/messages"}
    out = [series("zai_proxy_requests_total", {**base, "status_code": "200"},
                   counter(per_min - errors))]
    if errors:
        out.append(series("zai_proxy_requests_total", {**base, "status_code": "500"},
                           counter(errors)))
    fast = per_min - slow
    buckets = buckets or {"1": fast, "10": fast, "30": per_min, "+Inf": per_min}
    for le, count in buckets.items():
        out.append(series("zai_proxy_request_duration_seconds_bucket",
                           {**base, "status_code": "200", "le": le}, counter(count)))
    return out


def token_counts(variant: str, per_min: int, slow: int = 0) -> list[dict]:
    """Local token counts per minute, `slow` of them beyond the top bucket (0.1s)."""
    base = target_labels(variant)
    fast = per_min - slow
    out = [series("zai_proxy_token_count_duration_seconds_bucket", {**base, "le": le},
                   counter(count))
           for le, count in (("0.05", fast), ("0.1", fast), ("+Inf", per_min))]
    out.append(series("zai_proxy_token_count_duration_seconds_count", base, counter(per_min)))
    return out


def upstream_429(variant: str, per_min: int) -> list[dict]:
    return [series("zai_proxy_upstream_errors_total", {**target_labels(variant), "error_type": "429"},
                    counter(per_min))]


def zai_errors(variant: str, error_class: str, per_min: int, code: str = "other") -> list[dict]:
    labels = {**target_labels(variant), "class": error_class, "code": code}
    return [series("zai_proxy_zai_errors_total", labels, counter(per_min))]


def adjustments(variant: str, decreases_per_min: int) -> list[dict]:
    """Controller decisions: `decreases_per_min` cuts, and steady increases (never alerting)."""
    base = target_labels(variant)
    return [series("zai_proxy_rate_limit_adjustments_total", {**base, "direction": "decrease"},
                    counter(decreases_per_min)),
            series("zai_proxy_rate_limit_adjustments_total", {**base, "direction": "increase"},
                    counter(1))]


def utilization(variant: str, values: str) -> list[dict]:
    return [series("zai_proxy_worker_utilization_ratio", target_labels(variant), values)]


def quota(variant: str, start: float, per_min: float, reset_at: int) -> list[dict]:
    """Used quota ratio growing by `per_min` each minute; the window resets at `reset_at` (unix s)."""
    base = {**target_labels(variant), "window": "five_hour", "limit_type": "TOKENS_LIMIT"}
    return [series("zai_proxy_quota_usage_ratio", base, f"{start}+{per_min}x{MINUTES}"),
            series("zai_proxy_quota_reset_time_seconds", base, constant(reset_at))]


def up(variant: str, value: int = 1) -> list[dict]:
    namespace, job, instance = TARGETS[variant]
    return [series("up", {"deployment_variant": variant, "namespace": namespace, "job": job,
                           "instance": instance}, constant(value))]


KSM = {"job": "kube-state-metrics", "instance": "10.0.9.9:8080"}


def restarts(variant: str, values: str, pod: str | None = None) -> list[dict]:
    namespace, deployment, _ = TARGETS[variant]
    pod = pod or f"{deployment}-5d8f9c7b6d-x2x9k"
    return [series("kube_pod_container_status_restarts_total",
                    {**KSM, "namespace": namespace, "pod": pod, "container": "proxy"}, values)]


def deployment(variant: str, available: int, desired: int) -> list[dict]:
    namespace, name, _ = TARGETS[variant]
    labels = {**KSM, "namespace": namespace, "deployment": name}
    return [series("kube_deployment_status_replicas_available", labels, constant(available)),
            series("kube_deployment_spec_replicas", labels, constant(desired))]


@dataclass
class Scenario:
    """The proofs of one alert. `onset` is the minute its condition first holds on `bad`."""
    bad: list[dict]
    labels: dict[str, str]  # labels the expression yields on `bad` (rule labels are added)
    description: str
    healthy: list[dict]
    quiet: list[tuple[str, list[dict]]]  # (why it must stay silent, series)
    onset: int = 1
    notes: list[str] = field(default_factory=list)


def _own(variant: str) -> dict[str, str]:
    return {"deployment_variant": variant, "namespace": TARGETS[variant][0]}


def _pod(variant: str) -> dict[str, str]:
    namespace, deployment_name, _ = TARGETS[variant]
    return {"namespace": namespace, "pod": f"{deployment_name}-5d8f9c7b6d-x2x9k"}


def _other(variant: str) -> str:
    return "production" if variant == "canary" else "canary"


def shared(variant: str, error_threshold: float) -> dict[str, Scenario]:
    """The alerts both variants own, for `variant` (names without the ZaiProxy<Variant> prefix)."""
    v, other, ns = variant, _other(variant), TARGETS[variant][0]
    title = variant.capitalize()
    deployment_name = TARGETS[variant][1]
    # A bad ratio well above the threshold: 10% for the canary (5%), 5% for production (2%).
    errors = 6 if error_threshold == 0.05 else 3
    shown = "10%" if errors == 6 else "5%"
    # Healthy: just under the threshold (production: 1/60 = 1.7% < 2%; canary: 2/60 = 3.3% < 5%).
    ok_errors = 2 if error_threshold == 0.05 else 1
    return {
        "HighErrorRate": Scenario(
            bad=traffic(v, TRAFFIC_PER_MIN, errors=errors) + traffic(other, TRAFFIC_PER_MIN),
            labels=_own(v),
            description=(f"{shown} of {variant} requests in namespace {ns} ended in a 5xx over the "
                         f"last 5 minutes (threshold {int(error_threshold * 100)}%)."),
            healthy=traffic(v, TRAFFIC_PER_MIN, errors=ok_errors)
            + traffic(other, TRAFFIC_PER_MIN, errors=30),
            quiet=[("below the traffic floor (2 req/min, half of them 5xx)",
                    traffic(v, FLOOR_PER_MIN, errors=1))]),
        "HighLatency": Scenario(
            bad=traffic(v, TRAFFIC_PER_MIN, slow=6) + traffic(other, TRAFFIC_PER_MIN),
            labels=_own(v),
            description=(f"{title} p95 request duration in namespace {ns} is 20s over the last 5 "
                         "minutes (threshold 10s; a stream counts until its last byte)."),
            healthy=traffic(v, TRAFFIC_PER_MIN, slow=2) + traffic(other, TRAFFIC_PER_MIN, slow=30),
            quiet=[("below the traffic floor (2 req/min, one of them slow)",
                    traffic(v, FLOOR_PER_MIN, slow=1))]),
        "CrashLooping": Scenario(
            bad=restarts(v, f"0 0 1+0x{MINUTES}"),
            labels=_pod(v),
            description=(f"Pod {ns}/{deployment_name}-5d8f9c7b6d-x2x9k restarted about 1 time(s) "
                         "in the last 15 minutes."),
            healthy=restarts(v, constant(3)),  # restarted long ago, not any more
            quiet=[("a pod that is not this Deployment's restarts (same namespace)",
                    restarts(v, f"0 0 1+1x{MINUTES}", pod=f"{deployment_name}-test-readyz")),
                   ("the other variant's pod restarts", restarts(other, f"0 0 1+1x{MINUTES}"))],
            onset=2),
        "NotReady": Scenario(
            bad=deployment(v, available=0, desired=2),
            labels={"namespace": ns, "deployment": deployment_name},
            description=(f"Deployment {ns}/{deployment_name} has no available replica although "
                         "it should run at least one."),
            healthy=deployment(v, available=1, desired=2),
            quiet=[("scaled to zero on purpose", deployment(v, available=0, desired=0)),
                   ("the other variant has no ready pod", deployment(other, available=0, desired=1))],
            onset=0),
        "MetricsAbsent": Scenario(
            bad=up(other),
            labels={},
            description=(f'No target with deployment_variant="{variant}" has been up: {variant} '
                         "is down, or its ServiceMonitor no longer matches its Service (labels "
                         "app and version, port http, namespace)."
                         if variant == "production" else
                         'No target with deployment_variant="canary" has been up: the canary is '
                         "down, or its ServiceMonitor no longer matches its Service (labels app "
                         "and version, port http, namespace)."),
            healthy=up(v) + up(other, 0),
            quiet=[("scraped and up while the other variant is gone", up(v))],
            onset=0),
        "TokenCountingSlow": Scenario(
            bad=token_counts(v, TRAFFIC_PER_MIN, slow=6) + token_counts(other, TRAFFIC_PER_MIN),
            labels=_own(v),
            description=(f"More than 5% of {'the canary' if v == 'canary' else 'production'}'s "
                         f"local token counts in namespace {ns} took 100ms or longer over the "
                         "last 5 minutes, which delays those requests."),
            healthy=token_counts(v, TRAFFIC_PER_MIN, slow=2)
            + token_counts(other, TRAFFIC_PER_MIN, slow=30),
            quiet=[("below the traffic floor (2 counts/min, one of them slow)",
                    token_counts(v, FLOOR_PER_MIN, slow=1))]),
    }


def _fast_buckets(under_100ms: int) -> dict[str, int]:
    """All requests under 250ms, `under_100ms` of them under 100ms."""
    n = TRAFFIC_PER_MIN
    return {"0.1": under_100ms, "0.25": n, "1": n, "10": n, "30": n, "+Inf": n}


def canary_only() -> dict[str, Scenario]:
    return {
        "DegradedVsProduction": Scenario(
            # Production has never answered a 5xx: its ratio must count as 0, not be missing.
            bad=traffic("canary", TRAFFIC_PER_MIN, errors=6) + traffic("production", TRAFFIC_PER_MIN),
            labels={"deployment_variant": "canary"},
            description=("Canary 5xx ratio is 10%, above 2 x (production ratio + 1%) over the last "
                         "5 minutes, with both variants above the traffic floor."),
            # Both at 5%: 0.05 < 2 x (0.05 + 0.01).
            healthy=traffic("canary", TRAFFIC_PER_MIN, errors=3)
            + traffic("production", TRAFFIC_PER_MIN, errors=3),
            quiet=[("canary below the traffic floor",
                    traffic("canary", FLOOR_PER_MIN, errors=1) + traffic("production", TRAFFIC_PER_MIN)),
                   ("production below the traffic floor",
                    traffic("canary", TRAFFIC_PER_MIN, errors=6) + traffic("production", FLOOR_PER_MIN)),
                   # 1.7% > 2 x 0%, but not > 2 x (0% + 1%): the epsilon keeps one error quiet.
                   ("within the epsilon (canary 1.7%, production 0%)",
                    traffic("canary", TRAFFIC_PER_MIN, errors=1) + traffic("production", TRAFFIC_PER_MIN))]),
        "SlowerThanProduction": Scenario(
            bad=traffic("canary", TRAFFIC_PER_MIN, slow=6) + traffic("production", TRAFFIC_PER_MIN),
            labels={"deployment_variant": "canary"},
            description=("Canary p95 request duration is 20s, above 1.5 x (production p95 + 0.1s) "
                         "over the last 5 minutes, with both variants above the traffic floor."),
            healthy=traffic("canary", TRAFFIC_PER_MIN, slow=6)
            + traffic("production", TRAFFIC_PER_MIN, slow=6),
            quiet=[("canary below the traffic floor",
                    traffic("canary", FLOOR_PER_MIN, slow=1) + traffic("production", TRAFFIC_PER_MIN)),
                   ("production below the traffic floor",
                    traffic("canary", TRAFFIC_PER_MIN, slow=6) + traffic("production", FLOOR_PER_MIN)),
                   # p95 0.24s vs 0.095s: above 1.5 x 0.095, not above 1.5 x (0.095 + 0.1).
                   ("within the epsilon (canary p95 0.24s, production 0.095s)",
                    traffic("canary", TRAFFIC_PER_MIN, buckets=_fast_buckets(0))
                    + traffic("production", TRAFFIC_PER_MIN, buckets=_fast_buckets(TRAFFIC_PER_MIN)))]),
        "RateLimitAdjustingDown": Scenario(
            bad=adjustments("canary", 1) + traffic("canary", TRAFFIC_PER_MIN),
            labels=_own("canary"),
            description=("The canary in namespace devpod lowered its admission rate 5 time(s) in "
                         "the last 5 minutes: Z.AI answers 429 to more than 5% of attempts."),
            healthy=adjustments("canary", 0) + traffic("canary", TRAFFIC_PER_MIN)
            + adjustments("production", 1) + traffic("production", TRAFFIC_PER_MIN),
            quiet=[("below the traffic floor", adjustments("canary", 1) + traffic("canary", FLOOR_PER_MIN))]),
    }


def production_only() -> dict[str, Scenario]:
    reset_at = 2 * 3600  # the window resets two hours after the test starts (time() = 0)
    return {
        "ZaiRateLimited": Scenario(
            bad=upstream_429("production", 6) + traffic("production", TRAFFIC_PER_MIN),
            labels=_own("production"),
            description=("Production in namespace mcp drew 10% upstream 429s per request over the "
                         "last 5 minutes (threshold 5%; retried attempts count). The Z.AI errors "
                         "panel shows the business codes."),
            healthy=upstream_429("production", 2) + traffic("production", TRAFFIC_PER_MIN)
            + upstream_429("canary", 30) + traffic("canary", TRAFFIC_PER_MIN),
            quiet=[("below the traffic floor (2 req/min, both drew a 429)",
                    upstream_429("production", 2) + traffic("production", FLOOR_PER_MIN))]),
        "AtCapacity": Scenario(
            # Full, with one scrape at 70% at minute 5: the 5-minute average (95%) keeps the
            # `for` clock running where the raw gauge would restart it.
            bad=utilization("production", f"1 1 1 1 1 0.7 1+0x{MINUTES}"),
            labels=_own("production"),
            description=("Production pods in namespace mcp used 100% of their in-flight cap "
                         "(MAX_WORKERS) on average over the last 5 minutes; when it is full, new "
                         "requests get 503."),
            healthy=utilization("production", constant(0.5)) + utilization("canary", constant(1)),
            quiet=[("full only every other scrape (5-minute average 75%)",
                    utilization("production", " ".join(["1", "0.5"] * (MINUTES // 2 + 1))))],
            onset=0),
        "UpstreamAuthFailing": Scenario(
            # A wrong ZAI_API_KEY: Z.AI refuses every request.
            bad=zai_errors("production", "auth", TRAFFIC_PER_MIN, "1002")
            + traffic("production", TRAFFIC_PER_MIN),
            labels=_own("production"),
            description=("Z.AI refused the proxy's own credentials for 100% of production's "
                         "requests in namespace mcp over the last 5 minutes; clients get 502 "
                         "upstream_auth_failed until ZAI_API_KEY is fixed."),
            healthy=traffic("production", TRAFFIC_PER_MIN)
            + zai_errors("canary", "auth", TRAFFIC_PER_MIN, "1002")
            + traffic("canary", TRAFFIC_PER_MIN),
            quiet=[("a client probing a forbidden endpoint (6 of 60 requests refused)",
                    zai_errors("production", "auth", 6) + traffic("production", TRAFFIC_PER_MIN)),
                   ("other Z.AI errors on every request (quota used up)",
                    zai_errors("production", "quota", TRAFFIC_PER_MIN, "1308")
                    + traffic("production", TRAFFIC_PER_MIN))]),
        "QuotaBurn": Scenario(
            # 60% used, +1%/min, reset in 2h: projected 0.6 + 0.01 t + (0.01/60)(7200 - 60 t) = 1.8.
            bad=quota("production", 0.6, 0.01, reset_at),
            labels={**_own("production"), "window": "five_hour", "limit_type": "TOKENS_LIMIT"},
            description=("The five_hour TOKENS_LIMIT quota is on course to reach 180% of its "
                         "allowance by the reset, at the last 30 minutes' pace; requests will get "
                         "429 (code 1308/1310) until then."),
            healthy=quota("production", 0.6, 0, reset_at),
            quiet=[("burning fast but less than half used (projected 140%, used 20-37%)",
                    quota("production", 0.2, 0.01, reset_at))]),
    }


def scenarios() -> dict[str, Scenario]:
    """Alert name -> its scenario, for every alert either release can render."""
    out: dict[str, Scenario] = {}
    for variant, threshold in (("canary", 0.05), ("production", 0.02)):
        prefix = f"ZaiProxy{variant.capitalize()}"
        for name, scenario in shared(variant, threshold).items():
            out[prefix + name] = scenario
    out.update({f"ZaiProxyCanary{k}": s for k, s in canary_only().items()})
    out.update({f"ZaiProxyProduction{k}": s for k, s in production_only().items()})
    return out
