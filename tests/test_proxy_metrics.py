"""The metrics move as they should, with bounded labels (in-process), and with two gunicorn
worker processes sharing one multiprocess directory."""

from __future__ import annotations

import signal
import time
import uuid
from pathlib import Path

import psutil

import requests
from prometheus_client.parser import text_string_to_metric_families

CHAT = {"model": "glm-4.7", "messages": [{"role": "user", "content": "hi"}]}


def test_request_families_count_each_request_with_bounded_labels(start_proxy):
    proxy = start_proxy(DEPLOYMENT_VARIANT="Canary!", RATE_LIMIT_ENABLED="false")
    for _ in range(3):
        assert requests.post(proxy.url + "/v1/chat/completions", json=CHAT).status_code == 200
    requests.post(proxy.url + "/v1/messages", data=b"{", headers={"Content-Type":
                                                                   "application/json"})
    for _ in range(5):
        requests.get(proxy.url + f"/v1/{uuid.uuid4().hex}/{uuid.uuid4().hex}")
    labels = dict(method="POST", path="/v1/chat/completions", status_code="200",
                  variant="canary")
    assert proxy.wait_value("zai_proxy_requests_total", 3, **labels) == 3
    assert proxy.wait_value("zai_proxy_request_duration_seconds_count", 3, **labels) == 3
    assert proxy.wait_value("zai_proxy_response_size_bytes_count", 3, **labels) == 3
    assert proxy.value("zai_proxy_response_size_bytes_sum", **labels) > 100
    assert proxy.value("zai_proxy_request_size_bytes_count", method="POST",
                       path="/v1/chat/completions") == 3
    assert proxy.wait_value("zai_proxy_requests_total", 1, path="/v1/messages",
                            status_code="400") == 1
    # Random paths all land on one series.
    assert proxy.wait_value("zai_proxy_requests_total", 5, path="other", method="GET") == 5
    paths = {dict(labels)["path"] for (name, labels) in proxy.metrics()
             if name == "zai_proxy_requests_total"}
    assert paths == {"/v1/chat/completions", "/v1/messages", "other"}


def test_every_family_carries_the_variant_and_build_info(start_proxy):
    proxy = start_proxy(DEPLOYMENT_VARIANT="canary", ZAI_PROXY_COMMIT="abc123",
                        TOKEN_COUNTING_ENABLED="true", ADMIN_TOKEN="t")
    requests.post(proxy.url + "/v1/chat/completions", json=CHAT)
    requests.post(proxy.url + "/v1/chat/completions", json={**CHAT, "stream": True})
    requests.post(proxy.url + "/v1/chat/completions", json=CHAT,
                  headers={"X-Fake-Scenario": "fail_first;n=1;key=fam;code=1302"})
    text = proxy.metrics_text()
    families = [f for f in text_string_to_metric_families(text)
                if f.name.startswith("zai_proxy_")]
    assert len(families) >= 16
    for family in families:
        for sample in family.samples:
            assert sample.labels.get("variant") == "canary", sample
    assert proxy.value("zai_proxy_build_info", commit="abc123", variant="canary") == 1
    assert "exported_variant" not in text


def test_metrics_path_is_exact_and_never_redirects(proxy):
    response = requests.get(proxy.url + "/metrics", allow_redirects=False)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    assert requests.get(proxy.url + "/metrics/", allow_redirects=False).status_code != 301
    assert requests.get(proxy.url + "//metrics", allow_redirects=False).status_code not in (
        301, 302, 307, 308)


def test_streams_record_time_to_first_byte_and_full_duration(proxy):
    response = requests.post(proxy.url + "/v1/chat/completions",
                             json={**CHAT, "stream": True},
                             headers={"X-Fake-Scenario": "ok;chunks=5;interval_ms=200"})
    assert response.status_code == 200
    labels = dict(path="/v1/chat/completions")
    assert proxy.wait_value("zai_proxy_time_to_first_byte_seconds_count", 1, **labels) == 1
    ttfb = proxy.value("zai_proxy_time_to_first_byte_seconds_sum", **labels)
    duration = proxy.value("zai_proxy_request_duration_seconds_sum", **labels)
    assert ttfb < 0.5
    assert duration > 0.8            # the whole stream, not just until the headers


def test_upstream_statuses_are_counted_as_upstream_errors(start_proxy):
    proxy = start_proxy(RATE_LIMIT_ENABLED="false", MAX_RETRIES="1")
    for _ in range(2):
        response = requests.post(proxy.url + "/v1/chat/completions", json=CHAT,
                                 headers={"X-Fake-Scenario": "status;status=503"})
        assert response.status_code == 503
        assert response.headers["Retry-After"]          # added: the upstream sent none
        assert response.headers["X-Zai-Error-Class"] == "overloaded"
    # An overloaded upstream is retried once (MAX_RETRIES=1): every attempt is counted.
    assert proxy.value("zai_proxy_upstream_errors_total", error_type="503") == 4
    assert proxy.value("zai_proxy_retry_attempts_total", reason="overloaded") == 2
    assert proxy.wait_value("zai_proxy_requests_total", 2, status_code="503") == 2


def test_two_worker_processes_report_one_consistent_set(start_gunicorn):
    proxy = start_gunicorn(WEB_CONCURRENCY="2", MAX_WORKERS="8", RATE_LIMIT_ENABLED="false")
    workers = psutil.Process(proxy.proc.pid).children()
    assert len(workers) == 2
    served_by = set()
    # The kernel tends to hand every connection to one worker; pausing the other makes each
    # worker serve exactly 20 requests.
    for busy, paused in (workers, workers[::-1]):
        paused.send_signal(signal.SIGSTOP)
        try:
            for _ in range(20):
                with requests.Session() as session:
                    assert session.post(proxy.url + "/v1/chat/completions",
                                        json=CHAT).status_code == 200
                    served_by.add(session.get(proxy.url + "/health").json()["pid"])
        finally:
            paused.send_signal(signal.SIGCONT)
    assert served_by == {w.pid for w in workers}
    proxy.wait_value("zai_proxy_requests_total", 40, path="/v1/chat/completions")
    for _ in range(6):   # whichever worker answers the scrape, the totals are the pod's
        assert proxy.value("zai_proxy_requests_total", path="/v1/chat/completions") == 40
        assert proxy.value("zai_proxy_max_workers") == 8
        assert proxy.value("zai_proxy_concurrent_requests") == 0
        assert proxy.value("zai_proxy_build_info") == 1
    assert "pid=" not in proxy.metrics_text()


def test_a_dead_worker_is_marked_and_its_gauges_dropped(start_gunicorn):
    proxy = start_gunicorn(WEB_CONCURRENCY="2", MAX_WORKERS="8", RATE_LIMIT_ENABLED="false")
    for _ in range(4):
        requests.post(proxy.url + "/v1/chat/completions", json=CHAT)
    # A worker counts a request as gunicorn closes it, just after the client has the last byte;
    # killing it before then would lose the count for a reason this test is not about.
    assert proxy.wait_value("zai_proxy_requests_total", 4, path="/v1/chat/completions") == 4
    victim = psutil.Process(proxy.proc.pid).children()[0]
    victim.kill()
    victim.wait(10)
    # gunicorn replaces the worker. Once the new one has published its share, the dead one's
    # share must be gone (8, not 12).
    multiproc_dir = Path(proxy.env["PROMETHEUS_MULTIPROC_DIR"])
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        pids = {w.pid for w in psutil.Process(proxy.proc.pid).children()} - {victim.pid}
        if len(pids) == 2 and all((multiproc_dir / f"gauge_livesum_{pid}.db").exists()
                                  for pid in pids):
            break
        time.sleep(0.05)
    assert not (multiproc_dir / f"gauge_livesum_{victim.pid}.db").exists()
    assert proxy.value("zai_proxy_max_workers") == 8
    # Counters are cumulative: the dead worker's requests still count.
    assert proxy.value("zai_proxy_requests_total", path="/v1/chat/completions") == 4


def test_a_scrape_while_a_process_creates_its_metrics_file_still_succeeds(start_gunicorn):
    # prometheus_client creates a worker's `<type>_<pid>.db` empty and sizes it a moment later;
    # a scrape in that window must still answer 200, not 500 (struct.error). An empty file is
    # exactly that moment, frozen.
    proxy = start_gunicorn(RATE_LIMIT_ENABLED="false")
    assert requests.post(proxy.url + "/v1/chat/completions", json=CHAT).status_code == 200
    metrics_dir = Path(proxy.env["PROMETHEUS_MULTIPROC_DIR"])
    (metrics_dir / "histogram_999999.db").touch()
    (metrics_dir / "gauge_livesum_999999.db").touch()
    response = requests.get(proxy.url + "/metrics")
    assert response.status_code == 200, response.text
    assert proxy.wait_value("zai_proxy_requests_total", 1, path="/v1/chat/completions") == 1
    assert proxy.value("zai_proxy_max_workers") == 10
