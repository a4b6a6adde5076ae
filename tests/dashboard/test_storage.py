"""Storage: incremental rollups, retention, 7 days that really are 7 days, and every kind of bad
database file, with a test clock (no waiting)."""

from __future__ import annotations

import json
import os
import sqlite3

import pytest

from tests.dashboard.helpers import make_app
from zai_dashboard import dbfile
from zai_dashboard.figures import as_row, figures
from zai_dashboard.storage import Storage

T0 = 1_765_000_000 - 1_765_000_000 % 3600
DAY = 86400
TARGETS = "production=http://127.0.0.1:9/metrics;canary=http://127.0.0.1:9/metrics"


def sample(requests: float, dt: float, errors: float = 0) -> dict:
    out = {"dt": dt, "req": requests, "c2": requests - errors, "c5": errors,
           "h:d:0.05~0.1": requests, "g:in_flight": 2, "n:in_flight": 1,
           "g:pods_up": 1, "n:pods_up": 1}
    return {k: v for k, v in out.items() if v}


def write(storage: Storage, t: int, per_s: float, interval: int, variants=("production",)):
    s = sample(per_s * interval, interval)
    storage.write_tick(t, [(v, "up", as_row(figures(s)), s) for v in variants])


def rows(path, table):
    conn = sqlite3.connect(path)
    try:
        return conn.execute(f"SELECT t, variant, fig, sample FROM {table} ORDER BY t, variant"
                            ).fetchall()
    finally:
        conn.close()


def test_rollups_are_incremental_and_idempotent(tmp_path):
    path = str(tmp_path / "d.db")
    storage = Storage(path, DAY, 7 * DAY).open(T0)
    for k in range(37):   # three minutes and one tick at 5 s
        write(storage, T0 + 5 * k, per_s=k, interval=5)
    storage.close()
    first = rows(path, "rollup")
    assert [row[0] for row in first] == [T0, T0 + 60, T0 + 120]
    # Each minute is the merge of its 12 ticks: counters summed, gauges averaged.
    minute = json.loads(first[1][3])
    assert minute["req"] == sum(5 * k for k in range(12, 24))
    assert minute["dt"] == 60 and minute["n:in_flight"] == 12
    assert json.loads(first[1][2])[0] == pytest.approx(minute["req"] / 60)

    # Rolling the same minutes up again (a watermark from before a crash) writes the same rows.
    conn = sqlite3.connect(path)
    conn.execute("UPDATE meta SET value=? WHERE key='watermark'", (T0,))
    conn.commit()
    conn.close()
    storage = Storage(path, DAY, 7 * DAY).open(T0 + 185)
    assert storage.watermark == T0
    write(storage, T0 + 185, per_s=1, interval=5)
    storage.close()
    assert rows(path, "rollup") == first


def test_seven_days_holds_seven_days_and_retention_is_enforced(tmp_path, clock):
    path = tmp_path / "dashboard.db"
    interval = 600           # ticks written every 10 minutes: 8 days in about a second
    storage = Storage(str(path), DAY, 7 * DAY).open(T0)
    end = T0 + 8 * DAY
    for t in range(T0, end + 1, interval):
        write(storage, t, per_s=1.0, interval=interval, variants=("production", "canary"))
    storage.close()
    raw = rows(path, "raw")
    rollup = rows(path, "rollup")
    # Raw ticks: the last 24 h only. Rollups: the last 7 days, from the rollup watermark on.
    assert min(r[0] for r in raw) >= end - DAY and max(r[0] for r in raw) == end
    assert min(r[0] for r in rollup) >= end - 7 * DAY
    assert min(r[0] for r in rollup) <= end - 7 * DAY + 60
    assert max(r[0] for r in rollup) == end - interval   # the minute of the tick before

    clock.now = end + 1
    app, _ = make_app(clock, TARGETS, tmp_path, DASHBOARD_SCRAPE_INTERVAL="300s")
    body = app.test_client().get("/api/series?range=7d&variant=production").get_json()
    assert body["step_s"] == 600 and body["resolution"] == "rollup"
    values = body["variants"]["production"]["requests_per_s"]
    assert body["t"][0] <= end - 7 * DAY and body["t"][-1] == end - end % 600
    filled = [t for t, v in zip(body["t"], values) if v is not None]
    # Data from the first bucket of the 7 days to the newest one (not only the last 24 h).
    assert filled[0] <= end - 7 * DAY + 600 and filled[-1] == body["t"][-1]
    assert len(filled) >= len(body["t"]) - 2
    assert all(v == pytest.approx(1.0) for v in values if v is not None)

    day = app.test_client().get("/api/series?range=24h&variant=canary&step=600").get_json()
    assert day["resolution"] == "rollup"
    assert sum(v is not None for v in day["variants"]["canary"]["requests_per_s"]) >= 144


def test_default_24h_resolution_reads_rollups_and_the_newest_minute_from_raw(tmp_path, clock):
    path = tmp_path / "dashboard.db"
    storage = Storage(str(path), DAY, 7 * DAY).open(T0)
    for k in range(30):          # 2.5 minutes: the last half minute is not rolled up yet
        write(storage, T0 + 5 * k, per_s=2.0, interval=5)
    storage.close()
    clock.now = T0 + 150
    app, _ = make_app(clock, TARGETS, tmp_path)
    body = app.test_client().get("/api/series?range=24h&variant=production").get_json()
    assert body["step_s"] == 60 and body["resolution"] == "rollup"
    tail = dict(zip(body["t"], body["variants"]["production"]["requests_per_s"]))
    assert tail[T0] == 2.0 and tail[T0 + 60] == 2.0 and tail[T0 + 120] == 2.0
    assert body["t"][-1] == T0 + 120


def _dashboard_db(path, ticks: int = 30) -> None:
    storage = Storage(str(path), DAY, 7 * DAY).open(T0)
    for k in range(ticks):
        write(storage, T0 + 5 * k, per_s=1.0, interval=5)
    storage.close()


def _corrupt_pages(path) -> None:
    size = os.path.getsize(path)
    with open(path, "r+b") as handle:
        handle.seek(4096)
        handle.write(os.urandom(size - 4096))


def _other_program(path) -> None:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE users(name TEXT)")
    conn.execute("INSERT INTO users VALUES ('a')")
    conn.commit()
    conn.close()


def _newer(path) -> None:
    _dashboard_db(path)
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version={dbfile.SCHEMA_VERSION + 1}")
    conn.commit()
    conn.close()


def _truncated(path) -> None:
    _dashboard_db(path, ticks=400)
    size = os.path.getsize(path)
    with open(path, "r+b") as handle:
        handle.truncate(size // 2)


@pytest.mark.parametrize("reason, make", [
    ("foreign", lambda p: p.write_text("this is a text file, not a database\n" * 10)),
    ("foreign", _other_program),
    ("truncated", _truncated),
    ("truncated", lambda p: p.write_bytes(dbfile.SQLITE_MAGIC[:10])),
    ("corrupt", lambda p: (_dashboard_db(p, ticks=400), _corrupt_pages(p))),
    ("newer_schema", _newer),
], ids=["text-file", "other-program", "truncated", "header-only", "bad-pages", "newer-schema"])
def test_a_bad_database_is_moved_aside_and_reported(tmp_path, clock, capsys, reason, make):
    path = tmp_path / "dashboard.db"
    make(path)
    before = path.read_bytes()
    clock.now = T0 + 3600
    app, service = make_app(clock, TARGETS, tmp_path)
    moved = [p for p in tmp_path.iterdir() if p.name.startswith(f"dashboard.db.{reason}-")]
    assert len(moved) == 1 and moved[0].read_bytes() == before
    status = app.test_client().get("/api/status").get_json()["storage"]
    assert status["state"] == "ok" and status["path_ok"] is True
    assert status["reset"] == {"at": clock.now, "reason": reason, "moved_to": moved[0].name}
    metrics = app.test_client().get("/metrics").get_data(as_text=True)
    assert f'zai_dashboard_storage_resets_total{{reason="{reason}"}} 1.0' in metrics
    logged = [json.loads(line) for line in capsys.readouterr().out.splitlines()
              if line.startswith("{")]
    assert any(line["level"] == "error" and line.get("moved_to") == moved[0].name
               and line.get("reason") == reason for line in logged)
    # The new database works.
    service.collector.tick(int(clock.now))
    assert dbfile.problem(str(path)) is None
    assert len(rows(path, "raw")) == 2


def test_a_wal_of_garbage_is_ignored_and_the_data_kept(tmp_path, clock):
    path = tmp_path / "dashboard.db"
    _dashboard_db(path)
    kept = rows(path, "raw")
    (tmp_path / "dashboard.db-wal").write_bytes(os.urandom(64 * 1024))
    clock.now = T0 + 200
    app, service = make_app(clock, TARGETS, tmp_path)
    status = app.test_client().get("/api/status").get_json()["storage"]
    assert status == {"state": "ok", "path_ok": True, "reset": None}
    body = app.test_client().get("/api/series?range=5m&variant=production").get_json()
    assert sum(v is not None for v in body["variants"]["production"]["requests_per_s"]) == 30
    service.collector.tick(T0 + 200)
    service.storage.close()
    assert rows(path, "raw")[:len(kept)] == kept


def test_a_full_disk_keeps_serving_live_data_and_catches_up_later(tmp_path, clock):
    path = tmp_path / "dashboard.db"
    _dashboard_db(path)
    clock.now = T0 + 150
    app, service = make_app(clock, TARGETS, tmp_path)
    client = app.test_client()
    db = service.storage._db
    pages = db.execute("PRAGMA page_count").fetchone()[0]
    # SQLite's own limit gives the same SQLITE_FULL ("database or disk is full") as a full disk.
    db.execute(f"PRAGMA max_page_count={pages}")
    for k in range(30):   # the same tick rate, 150 s past the stored ones
        write(service.storage, T0 + 150 + 5 * k, per_s=3.0, interval=5)
    clock.now = T0 + 300
    status = client.get("/api/status").get_json()["storage"]
    assert status["state"] == "degraded" and status["path_ok"] is False
    assert "zai_dashboard_storage_degraded 1.0" in client.get("/metrics").get_data(as_text=True)
    body = client.get("/api/series?range=5m&variant=production").get_json()
    values = dict(zip(body["t"], body["variants"]["production"]["requests_per_s"]))
    assert values[T0 + 295] == 3.0 and values[T0 + 145] == 1.0   # memory and file together
    rollup = client.get("/api/series?range=24h&variant=production").get_json()
    minutes = dict(zip(rollup["t"], rollup["variants"]["production"]["requests_per_s"]))
    assert minutes[T0 + 180] == 3.0
    written = len(rows(path, "raw"))     # what fitted in the last free page
    assert 30 <= written < 40

    db.execute("PRAGMA max_page_count=1073741823")    # space again
    write(service.storage, T0 + 330, per_s=3.0, interval=5)   # before the retry time: memory
    assert len(rows(path, "raw")) == written
    write(service.storage, T0 + 400, per_s=3.0, interval=5)
    assert client.get("/api/status").get_json()["storage"]["state"] == "ok"
    stored = rows(path, "raw")
    assert len(stored) == 30 + 32 and stored[-1][0] == T0 + 400
    assert {row[0] for row in rows(path, "rollup")} >= {T0, T0 + 60, T0 + 180, T0 + 240}


def test_memory_only_storage_keeps_rollups_too(clock):
    storage = Storage(":memory:", DAY, 7 * DAY).open(T0)
    for k in range(25):
        write(storage, T0 + 5 * k, per_s=1.0, interval=5)
    assert storage.status() == {"state": "ok", "path_ok": False, "reset": None}
    assert [row[0] for row in storage.rollups(T0, T0 + 3600)] == [T0, T0 + 60]
    assert len(storage.raw(T0, T0 + 3600)) == 25
