"""The dashboard's page in a real browser against the real service and real proxies.

Debian's chromium driven by playwright (tools/browser.py), the dashboard service under gunicorn
as in the image (tools/dashboard_process.py), scraping two in-process proxies (the real app on
loopback: production, and a canary whose every 5th request gets an upstream 500) that SDK
traffic keeps busy (tools/demo/traffic.py). A 1 s scrape interval keeps the file fast.

Every test fails on a console error or page exception and on any request that leaves loopback
(the context aborts it and records it). Screenshots go to out/test-artifacts/dashboard/.

The stack is shared by the module; the test that stops the canary runs last.
"""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import requests

from tools import browser
from tools.dashboard_process import DashboardProcess
from tools.demo.dashboard import build_ui, targets_value
from tools.demo.traffic import Traffic

pytestmark = pytest.mark.needs_tools     # the page is the built dashboard UI (make ui)

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "out" / "test-artifacts" / "dashboard"
INTERVAL_S = 1
VARIANTS = ["production", "canary"]
# Errors Chromium logs for requests that fail while the service is being restarted on purpose.
RESTART_NOISE = ("Failed to load resource", "net::ERR_CONNECTION_REFUSED", "net::ERR_EMPTY_RESPONSE")


@pytest.fixture(scope="module")
def stack(tmp_path_factory, request):
    from tests.inprocess import InProcessProxy
    from tools.fake_zai import FakeZai

    build_ui()
    workdir = tmp_path_factory.mktemp("dashboard-browser")
    with FakeZai() as fake:
        proxies = {
            "production": InProcessProxy(fake.url, DEPLOYMENT_VARIANT="production",
                                         RATE_LIMIT_ENABLED="false"),
            "canary": InProcessProxy(fake.url, DEPLOYMENT_VARIANT="canary",
                                     RATE_LIMIT_ENABLED="false"),
        }
        pods = {v: [SimpleNamespace(url=p.url)] for v, p in proxies.items()}
        traffic = Traffic(pods, rates={"production": 6.0, "canary": 5.0}, fault="errors",
                          workers=3, timeout=10).start()
        service = DashboardProcess(
            workdir, targets_value({v: [f"{p.url}/metrics"] for v, p in proxies.items()}),
            DASHBOARD_SCRAPE_INTERVAL=f"{INTERVAL_S}s", DASHBOARD_VERDICT_WINDOW="30s").start()
        try:
            yield SimpleNamespace(proxies=proxies, traffic=traffic, service=service)
        finally:
            service.stop()
            traffic.stop(timeout=5)
            for proxy in proxies.values():
                proxy.stop()
                proxy.server.server_close()


@pytest.fixture(scope="module")
def chromium():
    from playwright.sync_api import sync_playwright
    with sync_playwright() as playwright:
        instance = browser.launch(playwright)
        yield instance
        instance.close()


@pytest.fixture
def page(chromium, request):
    """A fresh page; afterwards no console error and no request off loopback, and a screenshot."""
    context = chromium.new_context(viewport=browser.VIEWPORT)
    guard = browser.LoopbackGuard().install(context)
    page = context.new_page()
    page.console_log = browser.ConsoleLog(page)
    page.allowed_errors = lambda _when, _text: False
    yield page
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        page.screenshot(path=ARTIFACTS / f"{request.node.name}.png", full_page=True)
    finally:
        context.close()
    assert guard.blocked == [], f"requests left loopback: {guard.blocked}"
    errors = [text for when, text in page.console_log.errors if not page.allowed_errors(when, text)]
    assert errors == [], f"console errors: {errors}"


def open_page(page, service, query: str = "range=5m") -> None:
    page.goto(f"{service.url}/?{query}")
    page.wait_for_selector("[data-testid=status-bar]")


def drawn(page, chart: str, variant: str, label: str) -> dict:
    report = browser.chart_report(page)
    if not report or chart not in report["charts"]:
        return {"points": 0, "sampled": 0, "hits": 0}
    return browser.series_of(report, chart, f"{variant} {label}")


def wait_drawn(page, chart: str, variant: str, label: str, points: int, timeout: float = 30):
    return browser.wait_until(
        page, lambda: (s := drawn(page, chart, variant, label))["points"] >= points and s,
        timeout, f"{points} points of {variant} {label} drawn in {chart}")


def server_series(service, range_: str = "5m") -> dict:
    return requests.get(f"{service.url}/api/series", params={"range": range_}, timeout=10).json()


def ui_series(page, chart: str, index: int) -> tuple[list, list]:
    return tuple(page.evaluate(
        "([id, i]) => { const u = window.__zaiDashboard.charts[id]; "
        "return [Array.from(u.data[0]), Array.from(u.data[i])]; }", [chart, index]))


def test_page_shows_both_variants_with_their_series_drawn(page, stack):
    open_page(page, stack.service)
    for variant in VARIANTS:
        browser.wait_until(
            page, lambda v=variant: page.get_attribute(f"[data-testid=variant-{v}]", "data-state") == "up",
            30, f"{variant} shown as up")
    # Pixels, not only DOM: each variant's line is on the canvas where uPlot placed its points.
    for chart, label in [("requests", "2xx"), ("latency", "p50"), ("concurrency", "max workers")]:
        for variant in VARIANTS:
            series = wait_drawn(page, chart, variant, label, points=5)
            assert series["hits"] >= series["sampled"] * 0.6 > 0, (chart, variant, series)
    canary_5xx = wait_drawn(page, "requests", "canary", "5xx", points=3)
    assert canary_5xx["hits"] > 0, canary_5xx
    # Production solid, canary dashed.
    report = browser.chart_report(page)
    assert browser.series_of(report, "requests", "production 2xx")["dash"] is None
    assert browser.series_of(report, "requests", "canary 2xx")["dash"]
    # The verdict is at the top and names its checks.
    verdict = page.locator("[data-testid=verdict]")
    browser.wait_until(page, lambda: verdict.get_attribute("data-verdict"), 20, "a verdict")
    assert verdict.locator("[data-check=error_ratio]").count() == 1
    assert page.locator("[data-testid=variant-production]").inner_text().count("req/s") == 1


def test_range_change_refetches_and_is_kept_in_the_url(page, stack):
    open_page(page, stack.service, "range=5m")
    wait_drawn(page, "requests", "production", "2xx", points=3)
    loads = browser.chart_report(page)["loads"]
    with page.expect_request(lambda r: "/api/series?" in r.url and "range=15m" in r.url):
        page.click("button[data-range='15m']")
    assert "range=15m" in page.url
    report = browser.wait_until(
        page, lambda: (r := browser.chart_report(page))["loads"] > loads and r, 15, "a new series load")
    span = report["charts"]["requests"]["xmax"] - report["charts"]["requests"]["xmin"]
    assert span == pytest.approx(900, abs=INTERVAL_S * 2)
    # Back restores the previous range, and refetches it.
    with page.expect_request(lambda r: "/api/series?" in r.url and "range=5m" in r.url):
        page.go_back()
    assert "range=15m" not in page.url
    # A shared link opens on its range.
    open_page(page, stack.service, "range=6h")
    assert page.locator("button[data-range='6h']").get_attribute("aria-pressed") == "true"


def test_theme_and_time_zone_switch_without_console_errors(page, stack):
    open_page(page, stack.service)
    wait_drawn(page, "requests", "canary", "2xx", points=3)
    page.click("[data-testid=theme-toggle]")
    page.click("[data-testid=tz-toggle]")
    assert page.get_attribute("html", "data-theme") in ("dark", "light")
    assert "tz=utc" in page.url
    browser.wait_until(page, lambda: "UTC" in page.inner_text("[data-testid=verdict]"), 20,
                       "the verdict's time in UTC")
    # Charts are rebuilt in the new theme and still draw both variants.
    for variant in VARIANTS:
        series = wait_drawn(page, "requests", variant, "2xx", points=3)
        assert series["hits"] > 0
    csv = page.get_attribute("[data-testid=csv-export]", "href")
    answer = requests.get(stack.service.url + csv, timeout=10)
    assert answer.status_code == 200 and answer.text.startswith("time_utc,variant,")


def test_a_server_restart_resumes_without_a_gap(page, stack):
    open_page(page, stack.service)
    wait_drawn(page, "requests", "production", "2xx", points=5)
    events = []
    page.on("request", lambda r: events.append(r) if "/api/events" in r.url else None)
    restarted_at = time.monotonic()
    page.allowed_errors = lambda when, text: when >= restarted_at and any(
        noise in text for noise in RESTART_NOISE)
    stack.service.stop()  # SIGTERM: the service closes every stream and exits
    stack.service.start()  # same port, same database
    browser.wait_until(page, lambda: page.get_attribute("[data-testid=connection]", "data-state") == "live"
                       and events, 30, "the stream reconnected")
    resumed = events[-1].headers.get("last-event-id")
    assert resumed, "the reconnect did not send Last-Event-ID"
    # Let a few ticks arrive after the restart, then compare the page with the service.
    last_before = int(resumed)
    browser.wait_until(page, lambda: ui_series(page, "requests", 1)[0][-1] >= last_before + 4 * INTERVAL_S,
                       30, "ticks after the restart")
    ui_t, ui_2xx = ui_series(page, "requests", 1)  # series 1: production 2xx
    server = server_series(stack.service)
    server_2xx = dict(zip(server["t"], server["variants"]["production"]["requests_2xx_per_s"]))
    shown = dict(zip(ui_t, ui_2xx))
    # Every bucket the service holds (up to the page's last one) is on the page, with its value.
    window = [t for t in server["t"] if ui_t[0] <= t <= ui_t[-1] and server_2xx[t] is not None]
    assert len(window) >= 5
    missing = [t for t in window if shown.get(t) is None]
    assert missing == [], f"buckets the service has but the page lost: {missing}"
    assert all(shown[t] == pytest.approx(server_2xx[t], rel=1e-6) for t in window)
    assert ui_t == sorted(set(ui_t)), "a bucket appears twice or out of order"


def test_a_canary_that_goes_away_shows_stale_or_down_within_3_intervals(page, stack):
    open_page(page, stack.service)
    browser.wait_until(page, lambda: page.get_attribute("[data-testid=variant-canary]", "data-state") == "up",
                       30, "canary up")
    canary = stack.proxies["canary"]
    gone_at = time.monotonic()
    canary.stop()
    canary.server.server_close()
    state = browser.wait_until(
        page, lambda: page.get_attribute("[data-testid=variant-canary]", "data-state") in ("stale", "down")
        and page.get_attribute("[data-testid=variant-canary]", "data-state"),
        15, "canary shown stale or down")
    took = time.monotonic() - gone_at
    # 3 intervals, plus one for the tick that carries the news and the page's 1 s clock.
    assert took <= 3 * INTERVAL_S + 2, f"canary shown {state} only after {took:.1f} s"
    assert page.get_attribute("[data-testid=variant-production]", "data-state") == "up"
    page.screenshot(path=ARTIFACTS / "canary-gone.png")


def test_the_loopback_guard_catches_an_outside_request(chromium):
    """The guard the other tests rely on fails a request to a non-loopback address (on a page
    of its own: the dashboard's Content-Security-Policy would stop the request first)."""
    context = chromium.new_context()
    guard = browser.LoopbackGuard().install(context)
    page = context.new_page()
    page.set_content('<img src="http://192.0.2.1/pixel.png">')
    browser.wait_until(page, lambda: guard.blocked, 10, "the outside request recorded")
    context.close()
    assert guard.blocked == ["http://192.0.2.1/pixel.png"]
