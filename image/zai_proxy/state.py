"""Everything one worker process shares between requests, built once by create_app()."""

from __future__ import annotations

import dataclasses
import threading
from typing import Callable

import requests

from .capacity import Capacity
from .config import Config
from .disconnect import DisconnectWatcher
from .logs import RequestLog
from .metrics import Metrics


def cancellable_wait(seconds: float, cancel: threading.Event) -> bool:
    """Sleep before a retry; True when the client went away meanwhile."""
    return cancel.wait(seconds)


@dataclasses.dataclass
class ProxyState:
    config: Config
    metrics: Metrics
    session: requests.Session
    capacity: Capacity
    watcher: DisconnectWatcher
    request_log: RequestLog
    retry_policy: object
    limiter: object | None = None
    tokens: object | None = None
    quota: object | None = None
    wait: Callable[[float, threading.Event], bool] = cancellable_wait

    def close(self) -> None:
        """Stop what create_app() started: for an app dropped inside a longer-lived process
        (the in-process tests); a worker process simply exits."""
        if self.quota is not None:
            self.quota.stop()
        if self.limiter is not None:
            self.limiter.close()
        self.watcher.close()
        self.session.close()
