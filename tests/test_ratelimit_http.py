"""Adaptive admission through the real proxy: shared budgets, bounded waits, admin, quota gate."""

from __future__ import annotations

import concurrent.futures
import signal
import threading
import time
from datetime import datetime, timezone

import psutil
import pytest
import requests

from tools.fake_zai import quota as fake_quota
from tools.redis_server import RedisServer

CHAT = {"model": "glm-4.7", "messages": [{"role": "user", "content": "hi"}]}
FIXED_RATE = {"RATE_LIMIT_ENABLED": "true", "RATE_LIMIT_INITIAL": "5", "RATE_LIMIT_MIN": "5",
              "RATE_LIMIT_MAX": "5", "RATE_LIMIT_MAX_WAIT": "30s", "MAX_WORKERS": "64"}


@pytest.fixture
def redis_url(tmp_path):
    with RedisServer(tmp_path / "redis") as server:
        yield server.url


def _blast(proxy, count: int, workers: int = 32) -> list[int]:
    def one(_):
        with requests.Session() as session:    # new connections: spread over both workers
            return session.post(proxy.url + "/v1/chat/completions", json=CHAT,
                                timeout=60).status_code
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        return list(pool.map(one, range(count)))


def _sessions_on_each_worker(proxy, per_worker: int) -> list[requests.Session]:
    """Kept-alive connections split evenly over the workers.

    The kernel tends to hand every new connection to one worker, which would hide a budget
    multiplied by the worker count; a connection stays with the worker that accepted it, so
    each batch is opened while the other workers are paused."""
    workers = psutil.Process(proxy.proc.pid).children()
    sessions = []
    for worker in workers:
        others = [w for w in workers if w.pid != worker.pid]
        for other in others:
            other.send_signal(signal.SIGSTOP)
        try:
            for _ in range(per_worker):
                session = requests.Session()
                assert session.get(proxy.url + "/health").json()["pid"] == worker.pid
                sessions.append(session)
        finally:
            for other in others:
                other.send_signal(signal.SIGCONT)
    return sessions


def _blast_over(proxy, sessions) -> list[int]:
    def one(session):
        with session:
            return session.post(proxy.url + "/v1/chat/completions", json=CHAT,
                                timeout=60).status_code
    with concurrent.futures.ThreadPoolExecutor(len(sessions)) as pool:
        return list(pool.map(one, sessions))


def _max_in_any_second(times: list[float]) -> int:
    times = sorted(times)
    return max(sum(1 for t in times if start <= t < start + 1.0) for start in times)


@pytest.mark.parametrize("storage", ["redis", "memory"])
def test_two_worker_processes_hold_one_global_rate(start_gunicorn, fake_zai, redis_url, storage):
    uri = redis_url if storage == "redis" else "memory://"
    proxy = start_gunicorn(WEB_CONCURRENCY="2", RATE_LIMIT_STORAGE_URI=uri, **FIXED_RATE)
    sessions = _sessions_on_each_worker(proxy, 15)
    started = time.monotonic()
    statuses = _blast_over(proxy, sessions)
    elapsed = time.monotonic() - started
    assert statuses == [200] * 30
    arrivals = sorted(r.time for r in fake_zai.requests)
    # 5 req/s for the pod, whichever worker admits. Budgets are per one-second window, so 30
    # requests need six windows: the first and last arrivals are at least four seconds apart
    # (a budget multiplied by two workers needs three windows: at most three seconds). A sliding
    # second holds about two windows' worth: 10 when admitted, a few more once the trip to the
    # upstream bunches them on a busy machine, never the 20 of a budget doubled by two workers.
    assert arrivals[-1] - arrivals[0] >= 3.9
    assert _max_in_any_second(arrivals) <= 15
    assert elapsed >= 3.9
    if storage == "memory":
        warning = [line for line in proxy.log_lines() if "RATE_LIMIT_STORAGE_URI" in
                   line.get("msg", "")]
        assert warning, "memory storage with two workers must say it divides the budget"
    health = requests.get(proxy.url + "/health").json()["rate_limit"]
    assert health["enabled"] is True and health["storage"] == storage
    assert health["rate"] == 5


def test_waiting_longer_than_max_wait_is_429_with_retry_after(start_proxy, fake_zai):
    proxy = start_proxy(**{**FIXED_RATE, "RATE_LIMIT_INITIAL": "1", "RATE_LIMIT_MIN": "1",
                           "RATE_LIMIT_MAX": "1", "RATE_LIMIT_MAX_WAIT": "1s"})
    statuses = _blast(proxy, 8, workers=8)
    rejected = statuses.count(429)
    assert statuses.count(200) >= 1 and rejected >= 4
    assert len(fake_zai.requests) == statuses.count(200)
    response = requests.post(proxy.url + "/v1/messages", json={**CHAT, "max_tokens": 5})
    if response.status_code == 429:
        assert response.json()["error"]["type"] == "rate_limit_error"
        assert int(response.headers["Retry-After"]) >= 1
    assert proxy.value("zai_proxy_rate_limit_rejections_total") >= rejected
    clients = {dict(labels)["client"] for (name, labels) in proxy.metrics()
               if name == "zai_proxy_rate_limit_rejections_total"}
    assert clients and all(c.startswith("source-") and len(c) == 9 for c in clients)


def test_a_client_that_leaves_while_waiting_frees_its_place(start_proxy, fake_zai):
    proxy = start_proxy(**{**FIXED_RATE, "RATE_LIMIT_INITIAL": "1", "RATE_LIMIT_MIN": "1",
                           "RATE_LIMIT_MAX": "1"})
    assert requests.post(proxy.url + "/v1/chat/completions", json=CHAT).status_code == 200
    # The budget is spent for this second: the next requests wait. Their clients give up.
    def impatient():
        try:
            requests.post(proxy.url + "/v1/chat/completions", json=CHAT, timeout=0.3)
        except requests.Timeout:
            pass
    threads = [threading.Thread(target=impatient) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    deadline = time.monotonic() + 5
    while proxy.value("zai_proxy_concurrent_requests") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proxy.value("zai_proxy_concurrent_requests") == 0
    time.sleep(2.5)          # budget for two or three more requests has come and gone
    assert len(fake_zai.requests) <= 2   # the ones that left were never sent upstream


def test_admin_reset_needs_its_token(start_proxy):
    closed = start_proxy(RATE_LIMIT_ENABLED="true")
    assert requests.post(closed.url + "/admin/reset-rate-limit").status_code == 404
    proxy = start_proxy(RATE_LIMIT_ENABLED="true", ADMIN_TOKEN="s3cret-admin",
                        RATE_LIMIT_INITIAL="7")
    assert requests.post(proxy.url + "/admin/reset-rate-limit").status_code == 401
    assert requests.post(proxy.url + "/admin/reset-rate-limit",
                         headers={"Authorization": "Bearer wrong"}).status_code == 401
    response = requests.post(proxy.url + "/admin/reset-rate-limit",
                             headers={"Authorization": "Bearer s3cret-admin"})
    assert response.status_code == 200
    assert response.json()["rate_limit"]["rate"] == 7
    assert proxy.value("zai_proxy_rate_limit_requests_per_second") == 7
    assert "s3cret-admin" not in proxy.stdout() + proxy.stderr()


def test_quota_enforcement_answers_429_until_the_reset(start_proxy, fake_zai):
    reset_in = 3600
    fake_zai.set_quota(fake_quota.payload([fake_quota.limit(
        fake_quota.FIVE_HOUR_UNIT, 1000, 1000, int((time.time() + reset_in) * 1000))]))
    proxy = start_proxy(RATE_LIMIT_ENABLED="false", QUOTA_POLL_ENABLED="true",
                        QUOTA_ENFORCEMENT_ENABLED="true", QUOTA_POLL_INTERVAL="1s")
    deadline = time.monotonic() + 10
    while (requests.get(proxy.url + "/health").json()["quota"].get("fresh") is not True
           and time.monotonic() < deadline):
        time.sleep(0.1)
    fake_zai.clear()
    response = requests.post(proxy.url + "/v1/chat/completions", json=CHAT)
    assert response.status_code == 429
    assert response.json()["error"]["code"] == "quota_exhausted"
    # No retry can help before the reset: the SDKs are told not to, and when it comes.
    assert response.headers["x-should-retry"] == "false" and "Retry-After" not in response.headers
    reset_at = datetime.strptime(response.headers["X-Zai-Rate-Limit-Reset"],
                                 "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).timestamp()
    assert reset_in - 60 <= reset_at - time.time() <= reset_in + 1
    assert [r for r in fake_zai.requests if "chat" in r.path] == []
    health = requests.get(proxy.url + "/health").json()["quota"]
    assert "zai-test-key" not in repr(health)
    assert proxy.value("zai_proxy_quota_usage_ratio", window="five_hour") == 1.0
