"""SQLite storage: per-tick rows, incremental 1-minute rollups, retention, and a memory fallback.

Tables (one row per time and variant; `fig` is the figures in FIGURES order as a JSON array,
`sample` the mergeable sample as a JSON object, see figures.py):
- `raw(t, variant, state, fig, sample)`: every tick, kept DASHBOARD_RAW_RETENTION (24 h);
- `rollup(t, variant, fig, sample)`: one row per minute, the merge of that minute's ticks, kept
  DASHBOARD_ROLLUP_RETENTION (7 d). Written from a watermark (the first minute not rolled up
  yet) in the same transaction as the tick that completes the minute, so the rollups never
  depend on raw rows that retention has already deleted and 7 d really holds 7 days. Rolling a
  minute up twice writes the same row.

One writer (the collector thread) in WAL mode with synchronous=NORMAL; API threads read through
their own read-only connections, so a long query never blocks a tick. When a write fails (disk
full, I/O error, read-only file) the rows are kept in memory and still served, the storage
reports `degraded`, and the file is tried again every minute; what was kept in memory is written
then.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import time

from . import dbfile
from .figures import FIGURES, as_row, figures, merge_into
from .memstore import MemoryRows

ROLLUP_STEP = 60
RETRY_AFTER = 60.0
MEMORY = ":memory:"

log = logging.getLogger("zai_dashboard.storage")

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS raw(t INTEGER NOT NULL, variant TEXT NOT NULL, "
    "state TEXT NOT NULL, fig TEXT NOT NULL, sample TEXT NOT NULL, "
    "PRIMARY KEY (t, variant)) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS rollup(t INTEGER NOT NULL, variant TEXT NOT NULL, "
    "fig TEXT NOT NULL, sample TEXT NOT NULL, PRIMARY KEY (t, variant)) WITHOUT ROWID",
)
FIGURES_KEY = ",".join(FIGURES)


def _dumps(value) -> str:
    return json.dumps(value, separators=(",", ":"))


class Storage:
    def __init__(self, path: str, raw_retention: float, rollup_retention: float,
                 metrics=None):
        self.path = path
        self.raw_retention = raw_retention
        self.rollup_retention = rollup_retention
        self.metrics = metrics
        self.reset: dbfile.Reset | None = None
        self.degraded = False
        self.watermark: int | None = None
        self._db: sqlite3.Connection | None = None
        self._writable = False
        self._mem = MemoryRows()
        self._lock = threading.Lock()
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        self._retry_at = 0.0
        self._cleaned_at = 0

    # ---- opening -------------------------------------------------------------------------
    def open(self, now: float | None = None) -> "Storage":
        now = time.time() if now is None else now
        if self.path == MEMORY:
            return self
        try:
            directory = os.path.dirname(os.path.abspath(self.path))
            os.makedirs(directory, exist_ok=True)
            reason = dbfile.problem(self.path)
            if reason:
                self.reset = dbfile.move_aside(self.path, reason, now)
                if self.metrics:
                    self.metrics.storage_resets.labels(reason).inc()
            self._db = sqlite3.connect(self.path, timeout=10, check_same_thread=False,
                                       isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            self._fail("cannot open the database", exc)
            self._db = None
            return self
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA journal_size_limit=16777216")
            self._db.execute("BEGIN IMMEDIATE")
            for statement in SCHEMA:
                self._db.execute(statement)
            self._db.execute(f"PRAGMA application_id={dbfile.APPLICATION_ID}")
            self._db.execute(f"PRAGMA user_version={dbfile.SCHEMA_VERSION}")
            stored = self._meta("figures")
            if stored is not None and stored != FIGURES_KEY:
                self._refigure()
            self._set_meta("figures", FIGURES_KEY)
            self._db.execute("COMMIT")
            self._writable = True
        except sqlite3.Error as exc:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            self._fail("cannot write the database", exc)
        try:
            watermark = self._meta("watermark")
            self.watermark = int(watermark) if watermark is not None else None
        except sqlite3.Error:
            self._db.close()
            self._db = None
        return self

    def _meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else None

    def _set_meta(self, key: str, value) -> None:
        self._db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)",
                         (key, str(value)))

    def _refigure(self) -> None:
        """The figures changed between versions: recompute the stored ones from the samples."""
        for table in ("raw", "rollup"):
            rows = self._db.execute(f"SELECT t, variant, sample FROM {table}").fetchall()
            self._db.executemany(f"UPDATE {table} SET fig=? WHERE t=? AND variant=?",
                                 [(_dumps(as_row(figures(json.loads(sample)))), t, variant)
                                  for t, variant, sample in rows])

    def _fail(self, what: str, exc: Exception) -> None:
        if not self.degraded:
            log.error("%s (%s): serving live data from memory until the file takes writes "
                      "again", what, exc.__class__.__name__,
                      extra={"fields": {"error": str(exc)}})
        self.degraded = True
        if self.metrics:
            self.metrics.storage_degraded.set(1)
            self.metrics.storage_write_errors.inc()

    # ---- status --------------------------------------------------------------------------
    @property
    def path_ok(self) -> bool:
        return self._db is not None and self._writable and not self.degraded

    def status(self) -> dict:
        return {"state": "degraded" if self.degraded else "ok", "path_ok": self.path_ok,
                "reset": self.reset.as_dict() if self.reset else None}

    def size_bytes(self) -> int:
        if self.path == MEMORY:
            return 0
        total = 0
        for suffix in ("", "-wal", "-shm"):
            try:
                total += os.path.getsize(self.path + suffix)
            except OSError:
                pass
        return total

    # ---- writing -------------------------------------------------------------------------
    def write_tick(self, t: int, rows: list[tuple]) -> None:
        """rows: [(variant, state, fig list, sample dict)] of one tick."""
        with self._lock:
            if self.watermark is None:
                self.watermark = t - t % ROLLUP_STEP
            if self._db is not None and (not self.degraded or t >= self._retry_at):
                try:
                    self._write_db(t, rows)
                    if self.degraded:
                        log.warning("the database takes writes again; rows kept in memory "
                                    "meanwhile are now in it")
                        self.degraded = False
                        self._writable = True
                        if self.metrics:
                            self.metrics.storage_degraded.set(0)
                    return
                except sqlite3.Error as exc:
                    if self._db.in_transaction:
                        self._db.execute("ROLLBACK")
                    self._fail("writing to the database failed", exc)
                    self._retry_at = t + RETRY_AFTER
            self._write_memory(t, rows)

    def _write_db(self, t: int, rows: list[tuple]) -> None:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        if self._mem:
            db.executemany("INSERT OR REPLACE INTO raw VALUES (?, ?, ?, ?, ?)",
                           [(mt, v, state, _dumps(fig), _dumps(sample))
                            for mt, v, state, fig, sample in self._mem.raw.items()])
            db.executemany("INSERT OR REPLACE INTO rollup VALUES (?, ?, ?, ?)",
                           [(mt, v, _dumps(fig), _dumps(sample))
                            for mt, v, fig, sample in self._mem.rollup.items()])
        db.executemany("INSERT OR REPLACE INTO raw VALUES (?, ?, ?, ?, ?)",
                       [(t, variant, state, _dumps(fig), _dumps(sample))
                        for variant, state, fig, sample in rows])
        target = t - t % ROLLUP_STEP
        if target > self.watermark:
            for row in self._rollups(self.watermark, target, self._db_raw_samples):
                db.execute("INSERT OR REPLACE INTO rollup VALUES (?, ?, ?, ?)",
                           (row[0], row[1], _dumps(row[2]), _dumps(row[3])))
            self._set_meta("watermark", target)
        if target > self._cleaned_at:
            db.execute("DELETE FROM raw WHERE t < ?", (t - self.raw_retention,))
            db.execute("DELETE FROM rollup WHERE t < ?", (t - self.rollup_retention,))
        db.execute("COMMIT")
        self._mem.clear()
        self.watermark = max(self.watermark, target)
        self._cleaned_at = max(self._cleaned_at, target)

    def _write_memory(self, t: int, rows: list[tuple]) -> None:
        for variant, state, fig, sample in rows:
            self._mem.raw.put(t, variant, (state, fig, sample))
        target = t - t % ROLLUP_STEP
        if target > self.watermark:
            for minute, variant, fig, sample in self._rollups(
                    self.watermark, target, lambda a, b: self._union_raw_samples(a, b)):
                self._mem.rollup.put(minute, variant, (fig, sample))
            self.watermark = target
        self._mem.raw.drop_before(t - self.raw_retention)
        self._mem.rollup.drop_before(t - self.rollup_retention)

    def _rollups(self, start: int, end: int, read) -> list[tuple]:
        """[(minute, variant, fig, sample)] for every minute in [start, end) with raw rows."""
        merged: dict[tuple[int, str], dict] = {}
        for t, variant, sample in read(start, end):
            minute = t - t % ROLLUP_STEP
            merge_into(merged.setdefault((minute, variant), {}), sample)
        return [(minute, variant, as_row(figures(sample)), sample)
                for (minute, variant), sample in sorted(merged.items())]

    def _db_raw_samples(self, start: int, end: int) -> list[tuple]:
        rows = self._db.execute("SELECT t, variant, sample FROM raw WHERE t >= ? AND t < ?",
                                (start, end)).fetchall()
        return [(t, variant, json.loads(sample)) for t, variant, sample in rows]

    def _union_raw_samples(self, start: int, end: int) -> list[tuple]:
        rows = [(t, variant, sample) for t, variant, _, _, sample
                in self._mem.raw.between(start, end)]
        if self._db is not None:
            seen = {(t, variant) for t, variant, _ in rows}
            try:
                rows += [row for row in self._db_raw_samples(start, end)
                         if (row[0], row[1]) not in seen]
            except sqlite3.Error:
                pass
        return rows

    # ---- reading -------------------------------------------------------------------------
    def _reader(self) -> sqlite3.Connection | None:
        if self._db is None:
            return None
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=10,
                                   check_same_thread=False)
            self._local.conn = conn
            with self._readers_lock:
                self._readers.append(conn)
        return conn

    def _select(self, table: str, columns: str, start, end, variants) -> list[tuple]:
        conn = self._reader()
        if conn is None:
            return []
        sql = f"SELECT {columns} FROM {table} WHERE t >= ? AND t < ?"
        args: list = [start, end]
        if variants is not None:
            sql += f" AND variant IN ({','.join('?' * len(variants))})"
            args += list(variants)
        try:
            return conn.execute(sql + " ORDER BY t", args).fetchall()
        except sqlite3.Error as exc:
            log.warning("reading the database failed (%s)", exc.__class__.__name__)
            return []

    def raw(self, start: float, end: float, variants=None, samples: bool = False) -> list[tuple]:
        """[(t, variant, state, fig list, sample dict or None)] with start <= t < end."""
        columns = "t, variant, state, fig" + (", sample" if samples else "")
        out = []
        for row in self._select("raw", columns, start, end, variants):
            out.append((row[0], row[1], row[2], json.loads(row[3]),
                        json.loads(row[4]) if samples else None))
        with self._lock:
            memory = self._mem.raw.between(start, end, variants)
        if memory:
            out = _union(out, [(t, v, state, fig, sample if samples else None)
                               for t, v, state, fig, sample in memory])
        return out

    def rollups(self, start: float, end: float, variants=None,
                samples: bool = False) -> list[tuple]:
        """[(minute, variant, fig list, sample dict or None)] with start <= minute < end."""
        columns = "t, variant, fig" + (", sample" if samples else "")
        out = []
        for row in self._select("rollup", columns, start, end, variants):
            out.append((row[0], row[1], json.loads(row[2]),
                        json.loads(row[3]) if samples else None))
        with self._lock:
            memory = self._mem.rollup.between(start, end, variants)
        if memory:
            out = _union(out, [(t, v, fig, sample if samples else None)
                               for t, v, fig, sample in memory])
        return out

    def last_tick_time(self) -> int | None:
        conn = self._reader()
        found = None
        if conn is not None:
            try:
                found = conn.execute("SELECT max(t) FROM raw").fetchone()[0]
            except sqlite3.Error:
                pass
        with self._lock:
            memory = self._mem.raw.items()
        if memory:
            found = max(found or memory[-1][0], memory[-1][0])
        return found

    def close(self) -> None:
        with self._readers_lock:
            for conn in self._readers:
                conn.close()
            self._readers.clear()
        with self._lock:
            if self._db is not None:
                try:
                    self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                except sqlite3.Error:
                    pass
                self._db.close()
                self._db = None


def _union(stored: list[tuple], memory: list[tuple]) -> list[tuple]:
    """Rows of the file and of memory, by time; memory wins for the same time and variant."""
    keys = {(row[0], row[1]) for row in memory}
    rows = [row for row in stored if (row[0], row[1]) not in keys] + memory
    rows.sort(key=lambda row: row[0])
    return rows
