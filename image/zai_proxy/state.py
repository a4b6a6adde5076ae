"""Everything one worker process shares between requests, built once by create_app().

Optional features (rate limiting, token counting, the quota poller) start as their do-nothing
objects, with the same interface as the real ones; create_app() replaces those that are enabled.
The pipeline therefore never asks whether a feature is on.
"""

from __future__ import annotations

import dataclasses
import threading
from typing import Callable

from .capacity import Capacity
from .config import Config
from .disconnect import DisconnectWatcher
from .logs import RequestLog
from .metrics import Metrics
from .quota import NoQuota
from .ratelimit import NoRateLimiter
from .retry import RetryPolicy
from .tokens import NoTokenAccounting
from .total_deadline import TotalDeadlines
from .upstream import Upstream
from .upstream_auth import UpstreamAuth


def cancellable_wait(seconds: float, cancel: threading.Event) -> bool:
    """Sleep before a retry; True when the request was stopped meanwhile (the client went
    away, or its total deadline passed)."""
    return cancel.wait(seconds)


@dataclasses.dataclass
class ProxyState:
    config: Config
    metrics: Metrics
    upstream: Upstream
    capacity: Capacity
    watcher: DisconnectWatcher
    request_log: RequestLog
    retry_policy: RetryPolicy
    limiter: object = dataclasses.field(default_factory=NoRateLimiter)
    tokens: object = dataclasses.field(default_factory=NoTokenAccounting)
    quota: object = dataclasses.field(default_factory=NoQuota)
    deadlines: TotalDeadlines = dataclasses.field(default_factory=TotalDeadlines)
    wait: Callable[[float, threading.Event], bool] = cancellable_wait
    upstream_auth: UpstreamAuth = dataclasses.field(default_factory=UpstreamAuth)

    def close(self) -> None:
        """Stop what create_app() started: for an app dropped inside a longer-lived process
        (the in-process tests); a worker process simply exits."""
        self.quota.stop()
        self.limiter.close()
        self.watcher.close()
        self.deadlines.close()
        self.upstream.close()
