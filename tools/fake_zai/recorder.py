"""Bounded request log and counters: what the fake received, for tests to assert on.

Recording keeps raw bytes only and decodes on access, so a benchmark pays one small object per
request; the log keeps the last `limit` requests so long runs do not grow memory.
"""

from __future__ import annotations

import base64
import collections
import json
import threading

from multidict import CIMultiDict

# Distinct paths counted by name in the stats; beyond this they are counted as "other" so random
# paths (cardinality tests) cannot grow the table without bound.
_MAX_PATHS = 1000
# Status recorded when the client went away before the answer was complete (nginx's convention).
CLIENT_CLOSED = 499


class RecordedRequest:
    """One request as received. `status` is what the fake answered (None while in progress,
    0 when it reset the connection on purpose, 499 when the client left first)."""

    __slots__ = ("method", "path", "query", "raw_headers", "body", "time", "scenario",
                 "status", "finished", "_headers")

    def __init__(self, method, path, query, raw_headers, body, when, scenario):
        self.method = method
        self.path = path
        self.query = query
        self.raw_headers = raw_headers
        self.body = body
        self.time = when
        self.scenario = scenario
        self.status = None
        self.finished = None
        self._headers = None

    @property
    def headers(self) -> CIMultiDict:
        if self._headers is None:
            self._headers = CIMultiDict(
                (k.decode("latin-1"), v.decode("latin-1")) for k, v in self.raw_headers)
        return self._headers

    def json(self):
        return json.loads(self.body)

    @property
    def disconnected(self) -> bool:
        return self.status == CLIENT_CLOSED

    def to_dict(self) -> dict:
        try:
            text = self.body.decode()
        except UnicodeDecodeError:
            text = None
        return {
            "method": self.method, "path": self.path, "query": self.query,
            "headers": [[k, v] for k, v in self.headers.items()],
            "body": text, "body_b64": base64.b64encode(self.body).decode(),
            "time": self.time, "finished": self.finished,
            "scenario": self.scenario, "status": self.status,
        }

    def __repr__(self) -> str:
        return f"<RecordedRequest {self.method} {self.path} status={self.status}>"


class Recorder:
    def __init__(self, limit: int = 10_000):
        self._lock = threading.Lock()
        self._log: collections.deque[RecordedRequest] = collections.deque(maxlen=max(limit, 0))
        self._by_path: collections.Counter = collections.Counter()
        self._by_status: collections.Counter = collections.Counter()
        self._by_path_status: collections.Counter = collections.Counter()
        self.total = 0

    def add(self, record: RecordedRequest) -> None:
        with self._lock:
            self._log.append(record)
            self.total += 1

    def finish(self, record: RecordedRequest, status: int, when: float) -> None:
        record.status = status
        record.finished = when
        with self._lock:
            path = record.path if (record.path in self._by_path
                                   or len(self._by_path) < _MAX_PATHS) else "other"
            self._by_path[path] += 1
            self._by_status[status] += 1
            self._by_path_status[(path, status)] += 1

    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._log)

    def clear(self) -> None:
        with self._lock:
            self._log.clear()
            self._by_path.clear()
            self._by_status.clear()
            self._by_path_status.clear()
            self.total = 0

    def stats(self) -> dict:
        with self._lock:
            by_path_status: dict[str, dict[str, int]] = {}
            for (path, status), count in self._by_path_status.items():
                by_path_status.setdefault(path, {})[str(status)] = count
            return {
                "total": self.total,
                "finished": sum(self._by_status.values()),
                "by_path": dict(self._by_path),
                "by_status": {str(s): c for s, c in self._by_status.items()},
                "by_path_status": by_path_status,
            }
