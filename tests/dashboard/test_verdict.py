"""The canary verdict: healthy, failing, slower, too little traffic, production missing, and how
fast it follows a canary that starts (and stops) failing half its requests."""

from __future__ import annotations

import json

import requests

from tests.dashboard.helpers import Exposition, make_app, requests_text

T0 = 1_765_000_000
DURATION = "zai_proxy_request_duration_seconds"


def by_check(body):
    return {reason["check"]: reason for reason in body["reasons"]}


def run(clock, exposition, ticks, prod_load, canary_load, **env):
    """`ticks` ticks of 5 s; each load is (requests, errors, seconds per request) per tick."""
    prod, canary = exposition(), exposition()
    app, service = make_app(clock, f"production={prod.url()};canary={canary.url()}", **env)
    totals = {"prod": [0, 0, []], "canary": [0, 0, []]}
    for k in range(ticks):
        for name, server, (count, errors, seconds) in (("prod", prod, prod_load),
                                                       ("canary", canary, canary_load)):
            total = totals[name]
            total[0] += count - errors
            total[1] += errors
            total[2] += [seconds] * count
            server.set(Exposition().histogram(DURATION, total[2], variant=name).text()
                       + requests_text({"200": total[0], "500": total[1]}, variant=name))
        clock.now = T0 + 5 * k + 0.5
        service.collector.tick(T0 + 5 * k)
    return app.test_client().get("/api/verdict").get_json()


def test_a_healthy_canary_is_promoted(clock, exposition):
    body = run(clock, exposition, 13, (10, 0, 0.2), (10, 0, 0.22))
    assert body["verdict"] == "promote", json.dumps(body, indent=1)
    checks = by_check(body)
    assert [checks[name]["status"] for name in
            ("production_present", "traffic", "error_ratio", "latency_p95")] == ["pass"] * 4
    assert body["window_s"] == 600
    assert body["figures"]["canary"]["requests"] == 120


def test_a_canary_failing_half_its_requests_is_rolled_back(clock, exposition):
    body = run(clock, exposition, 13, (10, 0, 0.2), (10, 5, 0.2))
    assert body["verdict"] == "rollback"
    check = by_check(body)["error_ratio"]
    assert check["status"] == "fail"
    assert check["canary"] == 0.5 and check["production"] == 0.0
    assert check["threshold"] == 2 * (0 + 0.01)
    assert check["message"] == ("canary 5xx 50 % vs production 0 % (limit 2 × (0 % + 1 %) = "
                                "2 %)")
    assert by_check(body)["latency_p95"]["status"] == "pass"


def test_a_slower_canary_is_rolled_back_on_latency(clock, exposition):
    # p95: production's requests all in (0.1, 0.25], the canary's in (2.5, 5].
    body = run(clock, exposition, 13, (10, 0, 0.2), (10, 0, 3.0))
    assert body["verdict"] == "rollback"
    check = by_check(body)["latency_p95"]
    assert check["status"] == "fail"
    assert check["threshold"] == 1.5 * (check["production"] + 0.1)
    assert by_check(body)["error_ratio"]["status"] == "pass"


def test_too_little_traffic_holds(clock, exposition):
    # One request per 50 s: 0.02 req/s, below the 0.05 req/s of the alerts.
    body = run(clock, exposition, 13, (10, 0, 0.2), (0, 0, 0.2))
    assert body["verdict"] == "hold"
    assert by_check(body)["traffic"]["status"] == "insufficient"
    assert by_check(body)["error_ratio"]["status"] == "insufficient"
    # Even a failing canary is not rolled back on a handful of requests.
    body = run(clock, exposition, 3, (10, 0, 0.2), (1, 1, 0.2))
    assert body["verdict"] == "hold"


def test_a_missing_production_holds(clock, exposition):
    canary = exposition()
    app, service = make_app(clock, f"production=http://127.0.0.1:9/metrics;canary={canary.url()}")
    for k in range(13):
        canary.set(requests_text({"200": 10 * k}, variant="canary"))
        clock.now = T0 + 5 * k + 0.5
        service.collector.tick(T0 + 5 * k)
    body = app.test_client().get("/api/verdict").get_json()
    assert body["verdict"] == "hold"
    assert by_check(body)["production_present"]["status"] == "fail"


def test_the_verdict_follows_a_failing_canary_within_one_window(clock, fake_zai,
                                                                 inprocess_proxy):
    """A one-minute window, 1.2 req/s per variant: real proxies, real /metrics, a test clock."""
    settings = dict(RATE_LIMIT_ENABLED="false", MAX_RETRIES="0", LOG_LEVEL="error")
    production = inprocess_proxy(DEPLOYMENT_VARIANT="production", **settings)
    canary = inprocess_proxy(DEPLOYMENT_VARIANT="canary", **settings)
    app, service = make_app(clock, f"production={production.url}/metrics;"
                                   f"canary={canary.url}/metrics", DASHBOARD_VERDICT_WINDOW="1m")
    session = requests.Session()

    def send(url, count, failing=0):
        for i in range(count):
            model = "glm-4.7@status;code=503" if i < failing else "glm-4.7"
            status = session.post(url + "/v1/chat/completions", timeout=10, json={
                "model": model, "messages": [{"role": "user", "content": "hi"}]}).status_code
            assert status == (503 if i < failing else 200)

    verdicts = {}

    def step(t, canary_failing):
        send(production.url, 6)
        send(canary.url, 6, canary_failing)
        clock.now = t + 0.5
        service.collector.tick(t)
        verdicts[t] = app.test_client().get("/api/verdict").get_json()["verdict"]

    t = T0
    for _ in range(4):                        # enough healthy traffic to promote
        step(t, 0)
        t += 5
    assert verdicts[t - 5] == "promote"
    fault = t
    for _ in range(13):                       # half of the canary's requests fail
        step(t, 3)
        t += 5
    recovered = t
    for _ in range(13):
        step(t, 0)
        t += 5
    flipped = min(k for k, v in verdicts.items() if k >= fault and v == "rollback")
    assert flipped - fault <= 60
    assert all(v == "rollback" for k, v in verdicts.items() if flipped <= k < recovered)
    back = min(k for k, v in verdicts.items() if k >= recovered and v == "promote")
    assert back - recovered <= 60
    assert verdicts[t - 5] == "promote"
