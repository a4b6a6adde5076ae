"""Adaptive rate limiting: the entry point the request pipeline uses.

    limiter.admit(peer, forwarded_for, cancel)   before every upstream attempt (retries too)
    limiter.observe(outcome)                     after every finished attempt
    limiter.reset() / snapshot()                 admin reset and the /health block

With RATE_LIMIT_ENABLED=false the pipeline holds a `NoRateLimiter` instead, which admits every
attempt at once and learns nothing.

The pieces: `admission.FairQueue` (per-source fairness, cancellation, max wait),
`admission.Budget` (the global rate, enforced with `limits`), `controller` (the window arithmetic
and the state file) and `ratestate` (where state and counters live).

Storage (RATE_LIMIT_STORAGE_URI):
- memory:// — per process. With N gunicorn workers each process enforces rate/N, so the pod
  never multiplies the budget; a WARNING at start says so and names RATE_LIMIT_STORAGE_URI.
  Each process learns on its own share of the traffic; the state file is shared (last writer
  wins).
- redis://… — one budget, one controller state (rate, ceiling, probe state) and one set of window
  counters for every process and pod using that Redis; the state also goes to the state file.

When Redis goes away the proxy fails open, deliberately: refusing all traffic because the limiter's
bookkeeping is down would turn a Redis blip into an outage, while Z.AI's own 429s (retried and
fed to the controller) still protect the account. Concretely, on the first Redis error: one
WARNING line, `zai_proxy_rate_limit_storage_errors_total` counts every failed call, and this
process continues on a local memory budget of rate/N (N = its pod's worker processes) and a
local copy of the last shared controller state. Redis is tried again every
STORAGE_RETRY_INTERVAL seconds; when it answers, an INFO line is logged and the shared budget and
state are used again (re-seeded from the local copy if Redis came back empty).
"""

from __future__ import annotations

import dataclasses
import hashlib
import ipaddress
import logging
import math
import threading
import time
from typing import Callable

from limits.errors import StorageError
from limits.storage import storage_from_string

from . import admission, controller
from .config import Config
from .metrics import FAIRNESS_BUCKETS, Metrics
from .ratestate import LocalStore, RedisStore

log = logging.getLogger("zai_proxy.ratelimit")

STORAGE_RETRY_INTERVAL = 5.0


def _redis_options() -> dict:
    """Fail fast: redis-py's default retries a failing call 10 times with backoff, which would
    hold requests for seconds during an outage. One immediate retry still heals a pooled
    connection that broke while Redis restarted."""
    from redis.backoff import NoBackoff
    from redis.retry import Retry
    return {"socket_timeout": 0.5, "socket_connect_timeout": 0.5, "retry": Retry(NoBackoff(), 1)}


@dataclasses.dataclass(frozen=True)
class Admission:
    ok: bool
    waited: float
    retry_after: float | None
    bucket: int


def bucket_for(source: str) -> int:
    """Fairness bucket 0..63, stable across processes (unlike hash())."""
    digest = hashlib.blake2b(source.encode("utf-8", "replace"), digest_size=4).digest()
    return int.from_bytes(digest, "big") % FAIRNESS_BUCKETS


def source_key(peer_ip: str, forwarded_for: str | None, trusted: tuple) -> str:
    """The client address used for fairness. X-Forwarded-For is believed only when the peer is a
    trusted proxy; then the right-most address that is not itself trusted is the client."""
    peer = _ip(peer_ip)
    if not forwarded_for or peer is None or not _trusted(peer, trusted):
        return peer_ip or "unknown"
    client = peer_ip
    for item in reversed(forwarded_for.split(",")):
        address = _ip(item.strip())
        if address is None:
            break
        client = str(address)
        if not _trusted(address, trusted):
            break
    return client


def _ip(text: str):
    try:
        return ipaddress.ip_address(text.strip().strip("[]")) if text else None
    except ValueError:
        return None


def _trusted(address, networks) -> bool:
    return any(address.version == net.version and address in net for net in networks)


class RateLimiter:
    def __init__(self, config: Config, metrics: Metrics, *, clock=time.monotonic, wall=time.time,
                 worker_processes: int = 1, namespace: str = "zai-proxy",
                 storage_retry_interval: float = STORAGE_RETRY_INTERVAL):
        self.config = config
        self.metrics = metrics
        self.settings = controller.Settings.from_config(config)
        self._clock, self._wall = clock, wall
        self._retry_interval = storage_retry_interval
        self._lock = threading.Lock()
        self._queue = admission.FairQueue(clock)
        self._state_file = config.rate_limit_state_file
        self.storage_kind = config.rate_limit_storage_uri.split("://", 1)[0]
        self.remote = self.storage_kind != "memory"
        # Memory storage is per process: the budget is split so N workers never multiply it.
        self.workers = max(1, worker_processes)
        self._down_until = -math.inf
        self._down = False

        start = (controller.load_state_file(self._state_file, config.rate_limit_state_max_age,
                                            wall(), self.settings)
                 or controller.initial_state(self.settings))
        self._local = LocalStore(start, evaluated=self._window_id() - 1)
        self._local_budget = admission.Budget(storage_from_string("memory://"), namespace,
                                              self._process_rate(start.rate, local=True))
        self._remote_store: RedisStore | None = None
        self._remote_budget: admission.Budget | None = None
        self._rate_seen = start.rate
        if self.remote:
            storage = storage_from_string(config.rate_limit_storage_uri, wrap_exceptions=True,
                                          **_redis_options())
            self._remote_budget = admission.Budget(storage, namespace, start.rate)
            self._remote_store = RedisStore(storage.get_connection(), namespace, self.settings,
                                            config.rate_limit_state_max_age, clock)
            self._remote(lambda: self._remote_store.seed(start, wall()))
        elif self.workers > 1:
            log.warning("RATE_LIMIT_STORAGE_URI=memory:// with %d worker processes: the rate "
                        "budget is divided between them (each enforces 1/%d of the rate); set "
                        "RATE_LIMIT_STORAGE_URI=redis://… to share one budget and one learned "
                        "state across processes and pods", self.workers, self.workers)
        self._apply(self._state())
        if self.enabled:
            metrics.rate_limiter_started()

    enabled = True

    # Public interface -----------------------------------------------------------------------
    def admit(self, peer: str, forwarded_for: str | None, cancel: threading.Event) -> Admission:
        """acquire() for a client known by its peer address and its X-Forwarded-For."""
        source = source_key(peer, forwarded_for, self.config.trusted_proxy_cidrs)
        return self.acquire(source, cancel)

    def acquire(self, source: str, cancel: threading.Event) -> Admission:
        bucket = bucket_for(source)
        self.tick()
        rate = self._process_rate(self._rate_seen)
        outcome, waited, retry_after = self._queue.acquire(
            bucket, cancel, self._take, rate, self.config.rate_limit_max_wait)
        if outcome == "admitted":
            self.metrics.admission_wait(bucket, waited)
            return Admission(True, waited, None, bucket)
        if outcome == "rejected":
            self.metrics.admission_rejected(bucket)
            return Admission(False, waited, max(retry_after or 0.0, admission.MIN_HINT), bucket)
        return Admission(False, waited, None, bucket)

    def observe(self, outcome: str) -> None:
        if outcome not in controller.OUTCOMES:
            raise ValueError(f"unknown outcome {outcome!r}")
        window_id = self._window_id()
        self._local.record(window_id, outcome)
        if self._use_remote():
            self._remote(lambda: self._remote_store.record(window_id, outcome))
        self.tick()

    def tick(self) -> None:
        """Judge windows that have ended, and pick up state changed by other processes."""
        now_id = self._window_id()
        def judge(state, counts):
            return controller.evaluate(state, counts, self.settings)
        with self._lock:
            result = None
            if self._use_remote():
                result = self._remote(lambda: self._remote_store.judge(
                    now_id, judge, self._wall(), self._local.current()))
                if result is not None:
                    # Mark the local copy judged too: its counters are this process's share
                    # only, kept for an outage, and must not be judged again afterwards.
                    self._local.judge(now_id, lambda state, counts: (state, None))
            if result is None:
                result = self._local.judge(now_id, judge)
            judged, directions = result
            for direction in directions:
                self.metrics.adjustment(direction)
            state = self._state()
            if judged:
                controller.save_state_file(self._state_file, state, self._wall())
            self._apply(state)

    def reset(self) -> None:
        """Admin reset: back to RATE_LIMIT_INITIAL, learned ceiling forgotten, gauges updated."""
        state = controller.initial_state(self.settings)
        # The window in progress counted outcomes from before the reset: it is not judged.
        now_id = self._window_id()
        with self._lock:
            self._local.replace(state, evaluated=now_id)
            if self._use_remote():
                self._remote(lambda: self._remote_store.replace(state, self._wall(), now_id))
            controller.save_state_file(self._state_file, state, self._wall())
            self._apply(state)
        log.info("rate limit reset to RATE_LIMIT_INITIAL=%s req/s", state.rate)

    def snapshot(self) -> dict:
        self.tick()
        state = self._state()
        window_id = self._window_id()
        counts = None
        if self._use_remote():
            counts = self._remote(lambda: self._remote_store.counts(window_id))
        counts = counts or self._local.counts(window_id)
        return {
            "enabled": True,
            "storage": self.storage_kind,
            "shared": self.remote and not self._down,
            "degraded": self._down,
            "worker_processes": self.workers,
            "rate": round(state.rate, 4),
            "process_rate": round(self._process_rate(state.rate), 4),
            "ceiling": round(state.ceiling, 4),
            "ceiling_learned": state.learned,
            "min": self.settings.minimum,
            "max": self.settings.maximum,
            "probing": state.probe_step > 0,
            "clean_windows": state.clean_windows,
            "window_seconds": self.settings.window,
            "window": dict(counts.as_dict(), started_at=window_id * self.settings.window),
            "last_window": {"total": state.last_total,
                            "frequency_429": state.last_frequency_429,
                            "decision": state.last_decision},
            "queued": self._queue.size,
            "max_wait_seconds": self.config.rate_limit_max_wait,
        }

    def close(self) -> None:
        if self._remote_budget is not None:
            try:
                self._remote_budget.storage.get_connection().close()
            except Exception:   # closing a broken connection is not worth an error
                pass

    # Internals ------------------------------------------------------------------------------
    def _window_id(self) -> int:
        return math.floor(self._wall() / self.settings.window)

    def _process_rate(self, rate: float, local: bool = False) -> float:
        shared = self.remote and not local and not self._down
        return rate if shared else rate / self.workers

    def _state(self) -> controller.State:
        if self._use_remote():
            state = self._remote(lambda: self._remote_store.current(
                self._wall(), self._local.current()))
            if state is not None:
                self._local.replace(state)
                return state
        return self._local.current()

    def _apply(self, state: controller.State) -> None:
        self._rate_seen = state.rate
        self._local_budget.set_rate(state.rate / self.workers)
        if self._remote_budget is not None:
            self._remote_budget.set_rate(state.rate)
        self.metrics.rate_limit_rps.set(state.rate)

    def _take(self) -> float:
        if self._use_remote():
            hint = self._remote(self._remote_budget.try_take)
            if hint is not None:
                return hint
        return self._local_budget.try_take()

    def _use_remote(self) -> bool:
        if not self.remote or not self._down:
            return self.remote
        if self._clock() < self._down_until:
            return False
        # Time to try again: a PING decides, so recovery is declared only on a real answer.
        return self._remote(self._remote_store.ping) is not None

    def _remote(self, call: Callable):
        """Run one Redis call; None (and fail open) when Redis is unavailable."""
        try:
            result = call()
        except (StorageError, OSError) + _redis_errors() as exc:
            self.metrics.rate_limit_storage_error()
            self._down_until = self._clock() + self._retry_interval
            if not self._down:
                self._down = True
                log.warning("rate-limit storage (%s) unavailable: %s; failing open to a "
                            "per-process budget of rate/%d until it answers again (retrying "
                            "every %.0f s)", self.storage_kind, type(exc).__name__,
                            self.workers, self._retry_interval)
            return None
        if self._down:
            self._down = False
            log.info("rate-limit storage (%s) is back: shared budget and state in use again",
                     self.storage_kind)
        return result


class NoRateLimiter:
    """Rate limiting off: every attempt is admitted at once, nothing is learned or exported."""

    enabled = False
    _ADMITTED = Admission(True, 0.0, None, 0)

    def admit(self, peer: str, forwarded_for: str | None, cancel) -> Admission:
        return self._ADMITTED

    def observe(self, outcome: str) -> None:
        pass

    def snapshot(self) -> dict:
        return {"enabled": False}

    def close(self) -> None:
        pass


def _redis_errors() -> tuple:
    try:
        import redis
    except ImportError:   # memory:// needs no redis client
        return ()
    return (redis.RedisError,)
