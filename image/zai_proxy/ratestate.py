"""Where the controller's state and window counters live: this process, or Redis.

Windows are aligned on wall-clock time (window id = floor(unix time / RATE_LIMIT_WINDOW)), so
every process and pod sharing a Redis agrees on which window an outcome belongs to without
talking to each other. Outcomes are counted per window; when a process notices that a window has
ended, it judges the finished windows it has not judged yet (at most the last KEEP_WINDOWS; older
ones have expired) and stores the new state. With Redis, exactly one process wins that update
(WATCH/MULTI on the state key), so adjustments are never counted twice across processes.

Both stores have the same methods; RedisStore raises redis errors to its caller, which decides
what an outage means (see ratelimit.py).
"""

from __future__ import annotations

import math
import threading
from typing import Callable

from .controller import OUTCOMES, Counts, Settings, State

KEEP_WINDOWS = 4
Judge = Callable[[State, Counts], "tuple[State, str | None]"]


class LocalStore:
    kind = "memory"

    def __init__(self, state: State, evaluated: int = -1):
        self._lock = threading.Lock()
        self._state = state
        self._evaluated = evaluated
        self._windows: dict[int, dict[str, int]] = {}

    def record(self, window_id: int, outcome: str) -> None:
        with self._lock:
            counts = self._windows.setdefault(window_id, dict.fromkeys(("total",) + OUTCOMES, 0))
            counts["total"] += 1
            counts[outcome] += 1

    def counts(self, window_id: int) -> Counts:
        with self._lock:
            return Counts.from_mapping(self._windows.get(window_id, {}))

    def judge(self, now_id: int, judge: Judge) -> tuple[bool, list[str]]:
        """Judge finished windows. Returns (any window had traffic, directions)."""
        with self._lock:
            if self._evaluated >= now_id - 1:
                return False, []
            ids = range(max(self._evaluated + 1, now_id - KEEP_WINDOWS), now_id)
            state, directions, judged = self._state, [], False
            for window_id in ids:
                counts = Counts.from_mapping(self._windows.get(window_id, {}))
                if counts.total:
                    judged = True
                    state, direction = judge(state, counts)
                    if direction:
                        directions.append(direction)
            self._state, self._evaluated = state, now_id - 1
            for window_id in [w for w in self._windows if w < now_id - KEEP_WINDOWS]:
                del self._windows[window_id]
            return judged, directions

    def current(self) -> State:
        with self._lock:
            return self._state

    def replace(self, state: State, evaluated: int | None = None) -> None:
        with self._lock:
            self._state = state
            if evaluated is not None:
                self._evaluated = max(self._evaluated, evaluated)

    @property
    def evaluated(self) -> int:
        return self._evaluated


class RedisStore:
    """The shared state: hash `<ns>:ctl:state`, counters `<ns>:ctl:w:<id>` (expiring)."""

    kind = "redis"

    def __init__(self, connection, namespace: str, settings: Settings, max_age: float,
                 clock: Callable[[], float], refresh: float = 1.0):
        self._redis = connection
        self._settings = settings
        self._max_age = max_age
        self._clock = clock
        self._refresh = refresh
        self._state_key = f"{namespace}:ctl:state"
        self._window_prefix = f"{namespace}:ctl:w:"
        self._window_ttl = max(1, math.ceil(settings.window * (KEEP_WINDOWS + 1)))
        self._cached: State | None = None
        self._cached_at = -math.inf
        self._evaluated = -1

    def ping(self) -> bool:
        return bool(self._redis.ping())

    # Counters ------------------------------------------------------------------------------
    def record(self, window_id: int, outcome: str) -> None:
        key = self._window_prefix + str(window_id)
        pipe = self._redis.pipeline(transaction=False)
        pipe.hincrby(key, "total", 1)
        pipe.hincrby(key, outcome, 1)
        pipe.expire(key, self._window_ttl)
        pipe.execute()

    def counts(self, window_id: int) -> Counts:
        return Counts.from_mapping(_decode(self._redis.hgetall(self._window_prefix +
                                                               str(window_id))))

    # State ---------------------------------------------------------------------------------
    def seed(self, state: State, wall: float) -> State:
        """Use the shared state if one is there; otherwise publish ours. Returns the one in use."""
        stored = self._read(self._redis)
        if stored is None:
            self._write(self._redis, state, wall, self._evaluated)
            stored = state
        self._remember(stored)
        return stored

    def current(self, wall: float, fallback: State) -> State:
        """The shared state, re-read at most every `refresh` seconds (clock time)."""
        if self._cached is not None and self._clock() - self._cached_at < self._refresh:
            return self._cached
        stored = self._read(self._redis)
        if stored is None:   # expired (idle past max age) or Redis restarted empty
            return self.seed(fallback, wall)
        self._remember(stored)
        return stored

    def replace(self, state: State, wall: float, evaluated: int | None = None) -> None:
        if evaluated is not None:
            self._evaluated = max(self._evaluated, evaluated)
        self._write(self._redis, state, wall, self._evaluated)
        self._remember(state)

    def judge(self, now_id: int, judge: Judge, wall: float,
              fallback: State) -> tuple[bool, list[str]]:
        if self._evaluated >= now_id - 1:
            return False, []
        import redis   # only needed with Redis storage
        with self._redis.pipeline() as pipe:
            try:
                pipe.watch(self._state_key)
                raw = _decode(pipe.hgetall(self._state_key))
                state = self._parse(raw) or fallback
                evaluated = int(raw.get("evaluated", -1)) if raw else -1
                if evaluated >= now_id - 1:
                    pipe.unwatch()
                    self._evaluated = evaluated
                    self._remember(state)
                    return False, []
                directions, judged = [], False
                for window_id in range(max(evaluated + 1, now_id - KEEP_WINDOWS), now_id):
                    counts = Counts.from_mapping(_decode(pipe.hgetall(
                        self._window_prefix + str(window_id))))
                    if counts.total:
                        judged = True
                        state, direction = judge(state, counts)
                        if direction:
                            directions.append(direction)
                pipe.multi()
                self._write(pipe, state, wall, now_id - 1)
                pipe.execute()
            except redis.WatchError:
                # Another process judged these windows first; take its result.
                self._cached_at = -math.inf
                self._evaluated = now_id - 1
                return False, []
        self._evaluated = now_id - 1
        self._remember(state)
        return judged, directions

    # Helpers -------------------------------------------------------------------------------
    def _read(self, conn) -> State | None:
        raw = _decode(conn.hgetall(self._state_key))
        if raw and "evaluated" in raw:
            self._evaluated = max(self._evaluated, int(raw["evaluated"]))
        return self._parse(raw)

    def _parse(self, raw: dict) -> State | None:
        if not raw:
            return None
        try:
            return State.from_mapping(raw, self._settings)
        except (KeyError, ValueError):
            return None

    def _write(self, conn, state: State, wall: float, evaluated: int) -> None:
        mapping = {k: (int(v) if isinstance(v, bool) else v) for k, v in state.as_dict().items()}
        mapping.update(saved_at=wall, evaluated=evaluated)
        conn.hset(self._state_key, mapping=mapping)
        if self._max_age > 0:
            # Shared state that nobody refreshed for RATE_LIMIT_STATE_MAX_AGE is forgotten, like
            # an old state file.
            conn.expire(self._state_key, max(1, math.ceil(self._max_age)))

    def _remember(self, state: State) -> None:
        self._cached, self._cached_at = state, self._clock()

    @property
    def evaluated(self) -> int:
        return self._evaluated


def _decode(raw) -> dict:
    return {(k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes)
                                                          else v)
            for k, v in (raw or {}).items()}
