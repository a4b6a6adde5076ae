"""The collector against real HTTP on loopback: exposition servers the test controls exactly, and
real proxies (in-process and under gunicorn) in front of the fake Z.AI."""

from __future__ import annotations

import socket

import pytest
import requests

from tests.dashboard.helpers import Exposition, make_app, make_service, requests_text

T0 = 1_765_000_000


def tick(service, clock, t):
    clock.now = t + 0.2
    return service.collector.tick(t)


def rate(payload, variant="production", figure="requests_per_s"):
    return payload["variants"][variant][figure]


def test_counter_resets_are_handled_per_pod_and_per_series(clock, exposition):
    a, b = exposition(), exposition()
    service = make_service(clock, f"production={a.url()},{b.url()}")
    a.set(requests_text({"200": 100, "500": 10}))
    b.set(requests_text({"200": 50}))
    first = tick(service, clock, T0)
    assert rate(first) is None                  # both pods only set their baseline

    a.set(requests_text({"200": 110, "500": 12}))
    b.set(requests_text({"200": 55}))
    assert rate(tick(service, clock, T0 + 5)) == 17 / 5

    # Pod a restarted: its 200 series went down and its 500 series is gone. Pod b did not.
    a.set(requests_text({"200": 3}))
    b.set(requests_text({"200": 60}))
    payload = tick(service, clock, T0 + 10)
    assert rate(payload) == (3 + 5) / 5
    assert rate(payload, figure="requests_5xx_per_s") == 0

    # A series the known pod did not have before counts whole (it was created since).
    a.set(requests_text({"200": 5, "500": 1}))
    assert rate(tick(service, clock, T0 + 15)) == (2 + 1) / 5

    # One series going down does not make the pod's other series count from zero.
    a.set(requests_text({"200": 9, "500": 0.0}))
    assert rate(tick(service, clock, T0 + 20)) == 4 / 5
    resets = service.metrics.counter_resets.labels("production")._value.get()
    assert resets == 2


def test_pods_appearing_and_leaving_behind_a_dns_name(clock, exposition):
    first = exposition("127.0.0.2")
    port = first.port
    pods = {"127.0.0.2": first}
    for address in ("127.0.0.3", "127.0.0.4"):
        try:
            pods[address] = exposition(address, port)
        except OSError:
            pytest.skip(f"port {port} is taken on {address}")
    resolved: list[str] = ["127.0.0.2"]
    looked_up = []

    def resolver(name, resolve_port):
        looked_up.append((name, resolve_port))
        return list(resolved)

    app, service = make_app(clock, f"production=dns+http://zai-proxy-headless.mcp:{port}/metrics;"
                                   f"canary=http://127.0.0.1:{port}/metrics", resolver=resolver)
    counts = {"127.0.0.2": 100, "127.0.0.3": 1000, "127.0.0.4": 7}

    def serve():
        for address, server in pods.items():
            server.set(requests_text({"200": counts[address]}))

    def status():
        return app.test_client().get("/api/status").get_json()["variants"]["production"]

    serve()
    tick(service, clock, T0)
    counts["127.0.0.2"] += 5
    serve()
    assert rate(tick(service, clock, T0 + 5)) == 1.0
    assert (status()["pods_up"], status()["pods_total"], status()["state"]) == (1, 1, "up")

    # A second replica appears: its lifetime total is a baseline, not this tick's traffic.
    resolved[:] = ["127.0.0.2", "127.0.0.3"]
    counts["127.0.0.2"] += 5
    serve()
    assert rate(tick(service, clock, T0 + 10)) == 1.0
    assert (status()["pods_up"], status()["pods_total"]) == (2, 2)

    counts["127.0.0.2"] += 5
    counts["127.0.0.3"] += 10
    serve()
    assert rate(tick(service, clock, T0 + 15)) == 3.0

    # The first replica leaves; a third one is added.
    resolved[:] = ["127.0.0.3", "127.0.0.4"]
    counts["127.0.0.3"] += 10
    serve()
    payload = tick(service, clock, T0 + 20)
    assert rate(payload) == 2.0
    assert rate(payload, figure="pods_up") == 2

    # The first comes back with a larger total: it was forgotten, so it is a baseline again.
    resolved[:] = ["127.0.0.2", "127.0.0.3", "127.0.0.4"]
    counts["127.0.0.2"] += 500
    counts["127.0.0.3"] += 5
    counts["127.0.0.4"] += 5
    serve()
    assert rate(tick(service, clock, T0 + 25)) == 2.0
    assert (status()["pods_up"], status()["pods_total"]) == (3, 3)
    assert looked_up and all(item == ("zai-proxy-headless.mcp", port) for item in looked_up)
    assert len(looked_up) == 6          # re-resolved every tick


def test_dns_targets_go_through_the_system_resolver(clock, exposition):
    server = exposition()
    server.set(requests_text({"200": 1}))
    app, service = make_app(clock, f"production=dns+http://127.0.0.1:{server.port}/metrics;"
                                   f"canary=dns+http://no-such-name.invalid:{server.port}/metrics")
    tick(service, clock, T0)
    variants = app.test_client().get("/api/status").get_json()["variants"]
    assert variants["production"]["state"] == "up"
    assert variants["production"]["pods_total"] == 1
    assert variants["canary"]["state"] == "down"
    assert variants["canary"]["error"].startswith("DNS")


def test_histograms_are_merged_across_label_sets_and_pods(clock, exposition):
    a, b = exposition(), exposition()
    service = make_service(clock, f"production={a.url()},{b.url()}")
    name = "zai_proxy_request_duration_seconds"

    def serve(fast, slow, other_pod):
        # The 500s come first, the 200s last: a parser that kept only the last label set
        # would see the fast requests only.
        a.set(Exposition()
              .histogram(name, [20.0] * slow, status_code="500", variant="production")
              .histogram(name, [0.008] * fast, status_code="200", variant="production").text())
        b.set(Exposition().histogram(name, [0.008] * other_pod, status_code="200",
                                     variant="production").text())

    serve(0, 0, 0)
    tick(service, clock, T0)
    serve(50, 10, 40)
    payload = tick(service, clock, T0 + 5)
    figures = payload["variants"]["production"]
    # 90 requests in (0.005, 0.01], 10 in (10, 30]: Prometheus's interpolation.
    assert figures["latency_p50_s"] == pytest.approx(0.005 + 0.005 * 50 / 90)
    assert figures["latency_p95_s"] == pytest.approx(10 + 20 * 5 / 10)
    assert figures["latency_p99_s"] == pytest.approx(10 + 20 * 9 / 10)
    # The next tick only sees what happened since: windowed, never since the start.
    serve(150, 10, 140)
    figures = tick(service, clock, T0 + 10)["variants"]["production"]
    assert figures["latency_p99_s"] == pytest.approx(0.005 + 0.005 * (0.99 * 200) / 200)


def test_the_variant_comes_from_configuration_even_when_a_url_says_otherwise(clock, exposition):
    server = exposition()
    # Each path's URL and its samples' own `variant` label name the other variant.
    server.set(requests_text({"200": 0}, variant="production"), path="/canary/metrics")
    server.set(requests_text({"200": 0}, variant="canary"), path="/production/metrics")
    service = make_service(clock, f"production={server.url('/canary/metrics')};"
                                  f"canary={server.url('/production/metrics')}")
    tick(service, clock, T0)
    server.set(requests_text({"200": 10}, variant="production"), path="/canary/metrics")
    server.set(requests_text({"200": 40}, variant="canary"), path="/production/metrics")
    payload = tick(service, clock, T0 + 5)
    assert rate(payload, "production") == 10 / 5
    assert rate(payload, "canary") == 40 / 5


def test_failed_scrapes_are_reported_by_kind_without_addresses(clock, exposition):
    good, bad = exposition(), exposition()
    good.set(requests_text({"200": 1}))
    bad.set("<html>login</html>", status=200)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead_port = sock.getsockname()[1]
    app, service = make_app(clock, f"production={good.url()},{bad.url()};"
                                   f"canary=http://127.0.0.1:{dead_port}/metrics")
    payload = tick(service, clock, T0)
    assert payload["states"] == {"production": "degraded", "canary": "down"}
    client = app.test_client()
    body = client.get("/api/status").get_data(as_text=True)
    status = client.get("/api/status").get_json()["variants"]
    assert status["production"]["error"] == "not a Prometheus exposition"
    assert status["canary"]["error"] == "connection failed"
    bad.set("oops", status=503)
    tick(service, clock, T0 + 5)
    assert client.get("/api/status").get_json()["variants"]["production"]["error"] == "HTTP 503"
    for text in (body, client.get("/api/config").get_data(as_text=True)):
        assert str(good.port) not in text and str(dead_port) not in text
        assert "127.0.0.1" not in text


def test_a_hanging_pod_times_out_without_holding_back_the_others(clock, exposition):
    good = exposition()
    good.set(requests_text({"200": 1}))
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)   # accepts connections, never answers
    try:
        app, service = make_app(clock, f"production={good.url()},"
                                       f"http://127.0.0.1:{listener.getsockname()[1]}/metrics;"
                                       f"canary={good.url()}", DASHBOARD_SCRAPE_TIMEOUT="1s")
        payload = tick(service, clock, T0)
    finally:
        listener.close()
    assert payload["states"]["production"] == "degraded"
    assert payload["states"]["canary"] == "up"
    status = app.test_client().get("/api/status").get_json()["variants"]["production"]
    assert (status["pods_up"], status["pods_total"], status["error"]) == (1, 2, "timeout")


def _chat(url, model="glm-4.7", fail=False):
    if fail:
        model += "@status;code=500"
    return requests.post(url + "/v1/chat/completions", timeout=10, json={
        "model": model, "messages": [{"role": "user", "content": "hello"}]})


def wait_counted(requests: dict) -> None:
    for proxy, count in requests.items():
        assert proxy.wait_value("zai_proxy_requests_total", count) == count


def test_real_proxies_feed_the_collector(clock, fake_zai, inprocess_proxy):
    production = inprocess_proxy(DEPLOYMENT_VARIANT="production", RATE_LIMIT_ENABLED="false",
                                 MAX_RETRIES="0", MAX_WORKERS="20")
    canary = inprocess_proxy(DEPLOYMENT_VARIANT="canary", RATE_LIMIT_ENABLED="false",
                             MAX_RETRIES="0", TOKEN_COUNTING_ENABLED="true")
    app, service = make_app(clock, f"production={production.url}/metrics;"
                                   f"canary={canary.url}/metrics")
    _chat(production.url)
    _chat(canary.url)
    # A request is counted when its response closes, just after the client has it: each tick
    # waits for the counts it reads (a loaded machine once counted the canary's first after it).
    wait_counted({production: 1, canary: 1})
    tick(service, clock, T0)
    for _ in range(6):
        assert _chat(production.url).status_code == 200
    for _ in range(3):
        assert _chat(canary.url).status_code == 200
    assert _chat(canary.url, fail=True).status_code == 500
    wait_counted({production: 7, canary: 5})
    payload = tick(service, clock, T0 + 5)
    prod, can = payload["variants"]["production"], payload["variants"]["canary"]
    assert prod["requests_per_s"] == 6 / 5 and prod["requests_5xx_per_s"] == 0
    assert can["requests_per_s"] == 4 / 5 and can["error_ratio"] == 0.25
    assert prod["max_workers"] == 20 and can["max_workers"] == 10
    assert prod["in_flight"] == 0
    assert prod["latency_p95_s"] is not None and prod["latency_p95_s"] < 1
    # Production does not count tokens: its token figures are null, never 0.
    assert prod["input_tokens_per_s"] is None and prod["cost_usd_per_h"] is None
    # The fake answers 12 prompt and 5 completion tokens per request, and prices them.
    assert can["input_tokens_per_s"] == 3 * 12 / 5
    assert can["output_tokens_per_s"] == 3 * 5 / 5
    assert can["cost_usd"] > 0 and can["cost_usd_per_h"] == pytest.approx(
        can["cost_usd"] / 5 * 3600, rel=1e-5)
    status = app.test_client().get("/api/status").get_json()["variants"]
    assert status["canary"]["build"]["version"] == production.config.version
    breakdown = app.test_client().get("/api/breakdown?by=status&range=5m").get_json()["rows"]
    assert {(row["variant"], row["key"], row["requests"]) for row in breakdown} == {
        ("production", "200", 6), ("canary", "200", 3), ("canary", "500", 1)}


def test_a_proxy_under_gunicorn_is_read_from_its_multiprocess_metrics(clock, start_gunicorn):
    proxy = start_gunicorn(RATE_LIMIT_ENABLED="false", WEB_CONCURRENCY="2", MAX_WORKERS="4")
    # Each worker process adds its share of the cap once it has booted.
    assert proxy.wait_value("zai_proxy_max_workers", 4, timeout=15) == 4
    service = make_service(clock, f"production={proxy.url}/metrics")
    tick(service, clock, T0)
    for _ in range(4):
        assert _chat(proxy.url).status_code == 200
    proxy.wait_value("zai_proxy_requests_total", 4)
    payload = tick(service, clock, T0 + 5)
    service.close()    # its kept-alive connection would hold the proxy's stop back
    assert rate(payload) == 4 / 5
    assert rate(payload, figure="max_workers") == 4


def test_a_restart_within_an_interval_never_overwrites_the_stored_tick(clock, exposition,
                                                                       tmp_path):
    server = exposition()
    server.set(requests_text({"200": 10}))
    first = make_service(clock, f"production={server.url()}", tmp_path)
    tick(first, clock, T0)
    server.set(requests_text({"200": 20}))
    tick(first, clock, T0 + 5)
    first.close()

    clock.now = T0 + 7           # the same interval as the last stored tick
    second = make_service(clock, f"production={server.url()}", tmp_path)
    ticked = []
    original = second.collector.tick

    def recording(t):
        ticked.append(t)
        if len(ticked) >= 2:
            second.collector._stop.set()
        return original(t)

    second.collector.tick = recording
    second.collector._run()
    assert ticked[:2] == [T0 + 10, T0 + 15]
    rows = {t: fig for t, _, _, fig, _ in second.storage.raw(T0, T0 + 20)}
    assert rows[T0 + 5][0] == 2.0      # the stored tick kept its rate
