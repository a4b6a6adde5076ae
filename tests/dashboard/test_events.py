"""SSE over the real command (gunicorn, one process, threads) on loopback: heartbeat, resume
without loss or duplicates, a slow client dropped, the client cap, a clean close on SIGTERM, and
a full disk under way."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time

import pytest

from tests.dashboard.conftest import ExpositionServer
from tests.dashboard.helpers import requests_text
from tools.dashboard_process import DashboardProcess, EventStream

SEEDED_TICKS = 300
QUEUE = 2


def wait_for(condition, timeout=20.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def seed(path, ticks: int, now: float) -> None:
    """Ticks of the last minutes in the database the service will open (a restart's history)."""
    from zai_dashboard.figures import as_row, figures
    from zai_dashboard.storage import Storage
    storage = Storage(str(path), 86400, 7 * 86400).open(now)
    start = int(now) - ticks
    for t in range(start, int(now)):
        sample = {"dt": 1, "req": 5, "c2": 5, "g:pods_up": 1, "n:pods_up": 1,
                  "h:d:0.05~0.1": 5}
        row = (as_row(figures(sample)))
        storage.write_tick(t, [("production", "up", row, sample), ("canary", "up", row, sample)])
    storage.close()


@pytest.fixture(scope="module")
def target():
    server = ExpositionServer()
    server.set(requests_text({"200": 1}))
    yield server
    server.close()


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory, target):
    directory = tmp_path_factory.mktemp("dashboard")
    seed(directory / "dashboard.db", SEEDED_TICKS, time.time())
    process = DashboardProcess(directory, f"production={target.url()};canary={target.url()}",
                               DASHBOARD_SCRAPE_INTERVAL="1s", DASHBOARD_HEARTBEAT_INTERVAL="500ms",
                               DASHBOARD_MAX_CLIENTS="3", DASHBOARD_CLIENT_QUEUE=str(QUEUE))
    process.start()
    yield process
    process.stop()


def ticks_of(stream, count):
    ids = []
    for event in stream.events():
        if event["event"] == "tick":
            assert event["id"] == str(event["data"]["t"])
            assert set(event["data"]["variants"]) == {"production", "canary"}
            ids.append(int(event["id"]))
            if len(ids) == count:
                return ids
    raise AssertionError(f"the stream ended after {ids}")


def test_hello_then_ticks_and_a_visible_heartbeat(dashboard):
    stream = EventStream(dashboard.url + "/api/events")
    try:
        assert stream.status == 200
        assert stream.response.getheader("Content-Type").startswith("text/event-stream")
        hello = stream.next_event()
        assert hello["event"] == "hello"
        assert hello["data"]["variants"] == ["production", "canary"]
        assert hello["data"]["scrape_interval_s"] == 1
        assert stream.retry == 3000
        started = time.monotonic()
        kinds = []
        while "heartbeat" not in kinds or "tick" not in kinds:
            kinds.append(stream.next_event()["event"])
        assert time.monotonic() - started < 3
    finally:
        stream.close()


def test_resume_replays_each_missed_tick_exactly_once(dashboard):
    stream = EventStream(dashboard.url + "/api/events")
    seen = ticks_of(stream, 1)
    stream.close()

    def last_tick():
        return dashboard.get("/api/status").json()["variants"]["canary"]["last_scrape"]

    missed = wait_for(lambda: last_tick() >= seen[-1] + 2 and last_tick(), what="two more ticks")
    # The ticks stored while no one listened (usually one a second; a loaded machine skips one).
    body = dashboard.get("/api/series?range=15m").json()
    stored = [t for t, v in zip(body["t"], body["variants"]["canary"]["pods_up"]) if v]
    skipped = [t for t in stored if seen[-1] < t <= missed]
    assert len(skipped) >= 2
    resumed = EventStream(dashboard.url + "/api/events", last_id=str(seen[-1]))
    try:
        assert resumed.next_event()["event"] == "hello"
        ids = ticks_of(resumed, len(skipped) + 1)
    finally:
        resumed.close()
    # Every stored tick after the last one seen, once, in order, none left out; then a live one.
    assert ids[:-1] == skipped and ids[-1] > missed


def test_since_parameter_and_an_id_older_than_the_ring(dashboard):
    # The ring holds the ticks stored before this process started (a restart's history).
    body = dashboard.get("/api/series?range=15m").json()
    stored = [t for t, v in zip(body["t"], body["variants"]["canary"]["pods_up"]) if v]
    since = stored[10]
    stream = EventStream(dashboard.url + f"/api/events?since={since}")
    try:
        assert stream.next_event()["event"] == "hello"
        assert ticks_of(stream, 20) == stored[11:31]
    finally:
        stream.close()
    stream = EventStream(dashboard.url + "/api/events", last_id="1000")
    try:
        assert stream.next_event()["event"] == "hello"
        assert stream.next_event() == {"event": "reset", "id": None, "data": {}}
    finally:
        stream.close()


def test_over_the_client_cap_is_503_with_retry_after(dashboard):
    wait_for(lambda: dashboard.metric("zai_dashboard_sse_clients") == 0, what="no clients")
    streams = [EventStream(dashboard.url + "/api/events") for _ in range(3)]
    try:
        assert [s.status for s in streams] == [200, 200, 200]
        refused = EventStream(dashboard.url + "/api/events")
        assert refused.status == 503
        assert refused.response.getheader("Retry-After") == "5"
        assert "at most 3" in refused.response.read().decode()
        refused.close()
        streams.pop().close()
        # The service notices the closed client at its next write (heartbeat or tick).
        wait_for(lambda: dashboard.metric("zai_dashboard_sse_clients") == 2, what="a free slot")
        again = EventStream(dashboard.url + "/api/events")
        assert again.status == 200
        streams.append(again)
    finally:
        for stream in streams:
            stream.close()


def test_a_slow_client_is_dropped_and_others_keep_their_pace(dashboard):
    wait_for(lambda: dashboard.metric("zai_dashboard_sse_clients") == 0, what="no clients")
    oldest = int(time.time()) - SEEDED_TICKS

    def tiny_buffer(sock):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)

    # It asks for the whole replay (about a megabyte) and never reads: its socket buffers
    # fill, then its queue of QUEUE ticks.
    slow = EventStream(dashboard.url + f"/api/events?since={oldest}", before_connect=tiny_buffer)
    fast = EventStream(dashboard.url + "/api/events")
    received = []
    done = threading.Event()

    def read_fast():
        try:
            for event in fast.events():
                if event["event"] == "tick":
                    received.append((time.monotonic(), int(event["id"])))
                if done.is_set():
                    return
        except (OSError, AttributeError, ValueError):
            pass   # closed by the test while reading

    reader = threading.Thread(target=read_fast, daemon=True)
    reader.start()
    try:
        assert slow.status == 200
        dropped = 'zai_dashboard_sse_dropped_total{reason="slow"}'
        wait_for(lambda: dashboard.metric(dropped) == 1, what="the slow client dropped")
        wait_for(lambda: dashboard.metric("zai_dashboard_sse_clients") == 1,
                 what="the slow client gone")
        count = len(received)
        wait_for(lambda: len(received) > count, what="the fast client's next tick")
    finally:
        done.set()
        slow.close()
        fast.close()
    ids = [tick_id for _, tick_id in received]
    assert ids == list(range(ids[0], ids[0] + len(ids)))     # nothing skipped or repeated
    # Reading what it was sent, the slow client finds the stream cut short.
    assert "reason=\"slow\"" in dashboard.get("/metrics").text


def test_sigterm_ends_every_stream_cleanly_and_at_once(tmp_path, target):
    process = DashboardProcess(tmp_path, f"production={target.url()};canary={target.url()}",
                               DASHBOARD_SCRAPE_INTERVAL="1s").start()
    try:
        streams = [EventStream(process.url + "/api/events") for _ in range(2)]
        for stream in streams:
            assert stream.next_event()["event"] == "hello"
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        for stream in streams:
            # Read to the end: a clean end of a chunked body, not a reset or a cut.
            list(stream.events())
            assert stream.response.isclosed()
            stream.close()
        assert process.proc.wait(15) == 0
        # gunicorn's graceful_timeout is 10 s, after which it would cut the streams (and
        # reading them above would fail): ending them on SIGTERM is what makes this quick.
        assert time.monotonic() - started < 8
    finally:
        process.stop(signal.SIGKILL)
    assert "Traceback" not in process.stdout() + process.stderr()


def test_a_full_disk_keeps_ticks_flowing(tmp_path, target):
    if os.geteuid() != 0 or not shutil.which("unshare"):
        pytest.skip("mounting a small tmpfs needs root and unshare")
    mount = tmp_path / "small"
    mount.mkdir()
    # A private mount namespace with a 512 KiB tmpfs where the database lives, nearly full.
    script = (f"mount -t tmpfs -o size=512k tmpfs {mount} && "
              f"dd if=/dev/zero of={mount}/filler bs=1k count=480 status=none && exec \"$@\"")
    process = DashboardProcess(tmp_path, f"production={target.url()};canary={target.url()}",
                               prefix=("unshare", "-m", "--propagation", "private", "sh", "-c",
                                       script, "sh"),
                               DASHBOARD_SCRAPE_INTERVAL="1s",
                               DASHBOARD_DB_PATH=str(mount / "dashboard.db"))
    try:
        process.start()
        wait_for(lambda: process.get("/api/status").json()["storage"]["state"] == "degraded",
                 timeout=20, what="storage degraded")
        assert process.metric("zai_dashboard_storage_degraded") == 1
        stream = EventStream(process.url + "/api/events")
        try:
            assert stream.next_event()["event"] == "hello"
            live = ticks_of(stream, 2)
        finally:
            stream.close()
        body = process.get("/api/series?range=5m").json()
        stored = dict(zip(body["t"], body["variants"]["production"]["pods_up"]))
        assert stored[live[-1]] == 1.0      # served from memory while the disk is full
        # ENOSPC reaches SQLite as SQLITE_FULL or, in the WAL, as SQLITE_IOERR.
        assert re.search("database or disk is full|disk I/O error", process.stdout())
    finally:
        process.stop()
    assert subprocess.run(["mountpoint", "-q", str(mount)]).returncode != 0   # never leaked
