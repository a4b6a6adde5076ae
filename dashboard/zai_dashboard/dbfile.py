"""Opening the database file safely: a bad file is moved aside, never fatal.

Checked before the service uses a file (in this order):
- `truncated`: shorter than SQLite's 100-byte header, or than the size its header declares;
- `foreign`: not an SQLite file at all, or an SQLite database of some other program;
- `corrupt`: SQLite's own `quick_check` fails, or SQLite cannot read it;
- `newer_schema`: written by a newer dashboard (its `user_version` is higher than ours).
The database file and its `-wal`/`-shm` companions are then renamed with the reason and a UTC
timestamp (`dashboard.db.corrupt-20250101T000000Z`), and a new database is started. A `-wal`
file of garbage is not a reason: SQLite ignores a WAL whose header or checksums do not match.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import sqlite3
import struct
import time

SCHEMA_VERSION = 1
APPLICATION_ID = 0x7A616944   # "zaiD"
SQLITE_MAGIC = b"SQLite format 3\x00"
COMPANIONS = ("", "-wal", "-shm", "-journal")

log = logging.getLogger("zai_dashboard.storage")


@dataclasses.dataclass(frozen=True)
class Reset:
    at: float
    reason: str          # corrupt | truncated | foreign | newer_schema
    moved_to: str        # file name only, never the directory

    def as_dict(self) -> dict:
        return {"at": self.at, "reason": self.reason, "moved_to": self.moved_to}


def problem(path: str) -> str | None:
    """Why the file at `path` cannot be used, or None when it can (or does not exist)."""
    try:
        size = os.path.getsize(path)
    except FileNotFoundError:
        return None
    if size == 0:
        return None
    with open(path, "rb") as handle:
        header = handle.read(100)
    if len(header) < len(SQLITE_MAGIC):
        return "truncated" if SQLITE_MAGIC.startswith(header) else "foreign"
    if header[:16] != SQLITE_MAGIC:
        return "foreign"
    if len(header) < 100:
        return "truncated"
    page_size = struct.unpack(">H", header[16:18])[0]
    page_size = 65536 if page_size == 1 else page_size
    pages = struct.unpack(">I", header[28:32])[0]
    change_counter = header[24:28]
    valid_for = header[92:96]
    # The in-header size is only meaningful while its "valid for" counter matches.
    if pages and change_counter == valid_for and size < pages * page_size:
        return "truncated"
    # Read-write, so that SQLite recovers a -wal file as it would on any open (and ignores one
    # whose header or checksums do not match this database).
    try:
        conn = sqlite3.connect(path, timeout=5)
        try:
            rows = conn.execute("PRAGMA quick_check").fetchall()
            if rows != [("ok",)]:
                return "corrupt"
            application_id = conn.execute("PRAGMA application_id").fetchone()[0]
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.DatabaseError:
        return "corrupt"
    if application_id != APPLICATION_ID:
        return "foreign" if tables or application_id else None
    if version > SCHEMA_VERSION:
        return "newer_schema"
    return None


def move_aside(path: str, reason: str, now: float | None = None) -> Reset:
    """Rename the database and its companions; returns what the status reports."""
    now = time.time() if now is None else now
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
    target = f"{path}.{reason}-{stamp}"
    suffix = 0
    while os.path.exists(target):
        suffix += 1
        target = f"{path}.{reason}-{stamp}-{suffix}"
    for companion in COMPANIONS:
        if os.path.exists(path + companion):
            os.replace(path + companion, target + companion)
    log.error("database %s was %s: moved it aside as %s and started a new one",
              os.path.basename(path), _WORDS[reason], os.path.basename(target),
              extra={"fields": {"reason": reason, "moved_to": os.path.basename(target)}})
    return Reset(at=now, reason=reason, moved_to=os.path.basename(target))


_WORDS = {"corrupt": "corrupt", "truncated": "truncated", "foreign": "not a dashboard database",
          "newer_schema": "written by a newer dashboard version"}
