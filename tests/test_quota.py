"""Quota supervisor: normalisation, outcomes, last good sample, staleness, enforcement, /health
block and metrics, against a tiny loopback HTTP server (and once against the fake Z.AI)."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from prometheus_client import CollectorRegistry

from tools.fake_zai import quota as fake_quota
from zai_proxy.config import Config
from zai_proxy.metrics import Metrics
from zai_proxy.quota import QuotaSupervisor, normalize, PollError

KEY = "zai-secret-key-abcdef123456"
T0 = 1_800_000_000.0
RESET_5H = int((T0 + 7200) * 1000)
RESET_WEEK = int((T0 + 3 * 86400) * 1000)


class Clock:
    def __init__(self, t):
        self.t = t

    def __call__(self):
        return self.t


def entry(kind="TOKENS_LIMIT", unit=3, **fields):
    return dict({"type": kind, "unit": unit, "number": 5}, **fields)


def body(*limits, **top):
    return json.dumps(dict({"code": 200, "msg": "ok", "success": True,
                            "data": {"limits": list(limits), "level": "pro"}}, **top)).encode()


GOOD = body(entry(percentage=25, nextResetTime=RESET_5H),
            entry("CREDIT_LIMIT", 6, usage=1000, currentValue=400, remaining=600,
                  percentage=40, nextResetTime=RESET_WEEK))


class Upstream:
    """A loopback server answering the quota path with whatever the test sets."""

    def __init__(self):
        self.status, self.body, self.headers, self.delay = 200, GOOD, {}, 0.0
        self.seen = []
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                upstream.seen.append((self.path, dict(self.headers)))
                time.sleep(upstream.delay)
                self.send_response(upstream.status)
                for name, value in upstream.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(upstream.body)))
                self.end_headers()
                try:
                    self.wfile.write(upstream.body)
                except (BrokenPipeError, ConnectionResetError):
                    pass   # the poller gave up first (timeout, size cap): expected

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02},
                         daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def upstream():
    server = Upstream()
    yield server
    server.close()


def make(url, wall=None, **overrides):
    values = dict(zai_api_key=KEY, zai_quota_base_url=url, quota_poll_enabled=True,
                  quota_poll_timeout=0.2, quota_stale_after=900.0, quota_poll_interval=60.0)
    values.update(overrides)
    metrics = Metrics("test", CollectorRegistry())
    supervisor = QuotaSupervisor(Config(**values), metrics, requests.Session(),
                                 wall=wall or Clock(T0))
    return supervisor, metrics


def value(metrics, name, **labels):
    return metrics.registry.get_sample_value(name, dict(labels, variant="test"))


# Normalisation ------------------------------------------------------------------------------
def test_normalize_both_schemas_and_windows():
    sample = normalize(GOOD)
    assert sample == {"plan_tier": "pro", "windows": [
        {"window": "five_hour", "limit_type": "TOKENS_LIMIT", "used_fraction": 0.25,
         "reset_at": RESET_5H / 1000},
        {"window": "weekly", "limit_type": "CREDIT_LIMIT", "used_fraction": 0.4,
         "reset_at": RESET_WEEK / 1000, "limit": 1000.0, "used": 400.0, "remaining": 600.0}]}


def test_normalize_prefers_absolute_credit_amounts_and_clamps():
    sample = normalize(body(entry("credit_limit", 3, usage=200, currentValue=300, percentage=12)))
    window = sample["windows"][0]
    assert (window["used_fraction"], window["remaining"], window["reset_at"]) == (1.0, 0.0, None)
    only_pct = normalize(body(entry("CREDIT_LIMIT", 6, percentage=70)))["windows"][0]
    assert only_pct["used_fraction"] == 0.7 and "limit" not in only_pct


def test_normalize_skips_what_it_does_not_model():
    sample = normalize(body(
        entry(unit=5, percentage=10),                     # monthly tool quota: ignored
        entry("TIME_LIMIT", 3, percentage=10),            # unknown type: ignored
        entry(unit=3),                                    # no signal at all: ignored
        "not an object",
        entry(unit=6, percentage=90, nextResetTime=RESET_WEEK),
        entry(unit=3, percentage=5),
        entry(unit=3, percentage=99),                     # a second five-hour entry: first wins
    ))
    assert [(w["window"], w["used_fraction"]) for w in sample["windows"]] == [
        ("five_hour", 0.05), ("weekly", 0.9)]


@pytest.mark.parametrize("raw,outcome", [
    (b"<html>", "malformed"), (b"[]", "malformed"), (b'{"data": {}}', "malformed"),
    (b'{"success": true, "data": {"limits": {}}}', "malformed"),
    (b'{"success": false, "code": 1001, "msg": "bad key"}', "error"),
    (b'{"code": 401, "msg": "Unauthorized"}', "error"),
])
def test_normalize_failures(raw, outcome):
    with pytest.raises(PollError) as info:
        normalize(raw)
    assert info.value.outcome == outcome
    assert "bad key" not in str(info.value) and "Unauthorized" not in str(info.value)


# Polling ----------------------------------------------------------------------------------------
def test_success_publishes_gauges_and_sends_the_raw_key(upstream):
    supervisor, metrics = make(upstream.url)
    assert supervisor.poll_once() == "success"
    path, headers = upstream.seen[-1]
    assert path == "/api/monitor/usage/quota/limit"
    assert headers["Authorization"] == KEY    # raw, no Bearer
    assert value(metrics, "zai_proxy_quota_usage_ratio", window="five_hour",
                 limit_type="TOKENS_LIMIT") == 0.25
    assert value(metrics, "zai_proxy_quota_remaining_ratio", window="weekly",
                 limit_type="CREDIT_LIMIT") == 0.6
    assert value(metrics, "zai_proxy_quota_reset_time_seconds", window="weekly",
                 limit_type="CREDIT_LIMIT") == RESET_WEEK / 1000
    assert value(metrics, "zai_proxy_quota_sample_age_seconds") == 0
    assert value(metrics, "zai_proxy_quota_poll_total", result="success") == 1


@pytest.mark.parametrize("setup,outcome", [
    (dict(status=500), "error"),
    (dict(status=401, body=b'{"error": "no"}'), "error"),
    (dict(status=302, headers={"Location": "http://127.0.0.1:1/elsewhere"}), "error"),
    (dict(body=b"x" * (64 * 1024 + 1)), "error"),
    (dict(delay=0.5), "error"),                     # QUOTA_POLL_TIMEOUT=0.2s
    (dict(body=b"not json"), "malformed"),
    (dict(body=b'{"success": true, "data": null}'), "malformed"),
])
def test_failed_polls_keep_the_last_good_sample(upstream, setup, outcome):
    wall = Clock(T0)
    supervisor, metrics = make(upstream.url, wall=wall)
    assert supervisor.poll_once() == "success"
    for name, setting in setup.items():
        setattr(upstream, name, setting)
    wall.t += 60
    assert supervisor.poll_once() == outcome
    assert len(upstream.seen) == 2   # redirects are not followed
    snap = supervisor.snapshot()
    assert snap["last_outcome"] == outcome and snap["fresh"] is True
    assert [w["used_fraction"] for w in snap["windows"]] == [0.25, 0.4]
    assert snap["sample_age_seconds"] == 60
    assert value(metrics, "zai_proxy_quota_poll_total", result=outcome) == 1
    assert value(metrics, "zai_proxy_quota_usage_ratio", window="five_hour",
                 limit_type="TOKENS_LIMIT") == 0.25
    assert value(metrics, "zai_proxy_quota_sample_age_seconds") == 60


def test_stale_is_counted_once_per_staleness(upstream):
    wall = Clock(T0)
    supervisor, metrics = make(upstream.url, wall=wall, quota_stale_after=120.0)
    supervisor.poll_once()
    upstream.status = 503
    def stale():
        return value(metrics, "zai_proxy_quota_poll_total", result="stale") or 0
    for _ in range(2):
        wall.t += 60
        supervisor.poll_once()
    assert stale() == 0 and supervisor.snapshot()["fresh"]   # 120 s old: still fresh
    for _ in range(3):
        wall.t += 60
        supervisor.poll_once()
    assert stale() == 1 and not supervisor.snapshot()["fresh"]
    assert value(metrics, "zai_proxy_quota_poll_total", result="error") == 5
    upstream.status = 200
    wall.t += 60
    assert supervisor.poll_once() == "success" and supervisor.snapshot()["fresh"]
    upstream.status = 503
    wall.t += 181
    supervisor.poll_once()
    assert stale() == 2


def test_never_succeeded_is_stale_from_the_first_poll(upstream):
    upstream.status = 500
    supervisor, metrics = make(upstream.url)
    assert supervisor.poll_once() == "error"
    supervisor.poll_once()
    assert value(metrics, "zai_proxy_quota_poll_total", result="stale") == 1
    snap = supervisor.snapshot()
    assert (snap["fresh"], snap["windows"], snap["sample_age_seconds"]) == (False, [], None)
    assert value(metrics, "zai_proxy_quota_poll_total", result="error") == 2


def test_health_block_never_contains_the_key(upstream):
    supervisor, _ = make(upstream.url)
    supervisor.poll_once()
    snap = supervisor.snapshot()
    text = json.dumps(snap) + repr(supervisor)
    assert KEY not in text
    assert snap["windows"][0]["reset_at"] == "2027-01-15T10:00:00Z"
    assert snap["last_success_at"] == "2027-01-15T08:00:00Z"
    assert snap["plan_tier"] == "pro" and snap["enforcement"] is False


# Enforcement ------------------------------------------------------------------------------------
def exhausted_body():
    return body(entry(percentage=100, nextResetTime=RESET_5H),
                entry("CREDIT_LIMIT", 6, usage=1000, currentValue=400, nextResetTime=RESET_WEEK))


def test_enforcement_reports_seconds_until_reset(upstream):
    upstream.body = exhausted_body()
    wall = Clock(T0)
    supervisor, _ = make(upstream.url, wall=wall, quota_enforcement_enabled=True)
    assert supervisor.exhausted() is None        # no sample yet: never blocks
    supervisor.poll_once()
    assert supervisor.exhausted() == 7200
    wall.t += 600
    assert supervisor.exhausted() == 6600
    assert supervisor.snapshot()["exhausted_for_seconds"] == 6600
    wall.t += 7200                               # reset time passed: traffic flows again
    assert supervisor.exhausted() is None


def test_enforcement_off_or_stale_never_blocks(upstream):
    upstream.body = exhausted_body()
    off, _ = make(upstream.url)
    off.poll_once()
    assert off.exhausted() is None
    wall = Clock(T0)
    on, _ = make(upstream.url, wall=wall, quota_enforcement_enabled=True, quota_stale_after=60.0)
    on.poll_once()
    wall.t += 61
    assert on.exhausted() is None


def test_enforcement_credit_window_used_up_and_unknown_reset(upstream):
    upstream.body = body(entry("CREDIT_LIMIT", 6, usage=1000, currentValue=1000, remaining=0))
    supervisor, _ = make(upstream.url, quota_enforcement_enabled=True, quota_poll_interval=45.0)
    supervisor.poll_once()
    assert supervisor.exhausted() == 45.0   # hold until the next poll can tell more


def test_not_exhausted_below_100_percent(upstream):
    supervisor, _ = make(upstream.url, quota_enforcement_enabled=True)
    supervisor.poll_once()
    assert supervisor.exhausted() is None


# Lifecycle and the shared fake ----------------------------------------------------------------
def test_start_polls_at_once_and_stop_ends_the_thread(upstream):
    supervisor, metrics = make(upstream.url, wall=time.time)
    supervisor.start()
    deadline = time.monotonic() + 5
    while not upstream.seen and time.monotonic() < deadline:
        time.sleep(0.01)
    supervisor.stop()
    assert len(upstream.seen) == 1 and supervisor._thread is None
    assert [t.name for t in threading.enumerate() if t.name == "quota-poller"] == []


def test_against_the_fake_zai_quota_endpoint(fake_zai):
    fake_zai.set_quota(fake_quota.payload([
        fake_quota.limit(fake_quota.FIVE_HOUR_UNIT, 100, 100, RESET_5H),
        fake_quota.limit(fake_quota.WEEKLY_UNIT, 1000, 250, RESET_WEEK, kind="CREDIT_LIMIT")]))
    supervisor, metrics = make(fake_zai.url, quota_enforcement_enabled=True)
    assert supervisor.poll_once() == "success"
    assert [(w["window"], w["used_fraction"]) for w in supervisor.snapshot()["windows"]] == [
        ("five_hour", 1.0), ("weekly", 0.25)]
    assert supervisor.exhausted() == 7200
    recorded = fake_zai.requests_to("/monitor/usage/quota/limit")
    assert recorded and recorded[-1].headers.get("authorization", recorded[-1].headers.get(
        "Authorization")) == KEY
