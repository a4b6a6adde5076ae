"""The proxy's own Z.AI credentials, as Z.AI's answers judge them.

Every proxied request carries ZAI_API_KEY. When Z.AI refuses it (HTTP 401 or 403, or an auth
business code 1000–1004 whatever the status) the operator made a mistake that no client can fix,
so it is made visible rather than relayed as if the client's own key were wrong:
- the client gets 502 `upstream_auth_failed` with `x-should-retry: false` (errors.py), never the
  401 it would read as "my proxy key is wrong";
- it is counted as `zai_proxy_zai_errors_total{class="auth"}` (attempt.py), which the production
  alert ZaiProxyProductionUpstreamAuthFailing watches;
- it is logged as an error at once, then at most once per LOG_PERIOD (with how many requests were
  refused meanwhile) rather than once per request, and once more when Z.AI accepts the key again;
- /health shows it under `upstream_auth`.
Each worker process keeps its own view, like the rest of /health; the metric is the pod's.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable

from .logs import EveryPeriod
from .retry import rfc3339

log = logging.getLogger("zai_proxy.upstream_auth")

LOG_PERIOD = 60.0   # seconds between two error lines while the key keeps being refused

UNKNOWN, ACCEPTED, REFUSED = "unknown", "accepted", "refused"


class UpstreamAuth:
    def __init__(self, period: float = LOG_PERIOD, clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time):
        self._gate = EveryPeriod(period, clock)
        self._wall = wall
        self._lock = threading.Lock()
        self.state = UNKNOWN
        self._refused_total = 0
        self._streak = 0                      # refused since Z.AI last accepted the key
        self._last_refused: tuple[float, int, str | None] | None = None
        self._accepted_at: float | None = None   # when the current acceptance began

    def accepted(self) -> None:
        """Z.AI took the key: a 2xx, or a 429 (its limits are per account). Other answers prove
        nothing (a gateway in front of Z.AI may answer before any key is read)."""
        if self.state == ACCEPTED:   # every successful request comes here: one comparison
            return
        with self._lock:
            previous, streak = self.state, self._streak
            self.state, self._streak, self._accepted_at = ACCEPTED, 0, self._wall()
        if previous == REFUSED:
            log.warning("Z.AI accepts the proxy's credentials (ZAI_API_KEY) again, after %d "
                        "refused request(s)", streak,
                        extra={"fields": {"event": "upstream_auth_accepted",
                                          "refused_requests": streak}})

    def refused(self, status: int, code: str | None) -> None:
        """Z.AI refused the key: HTTP `status`, business code `code` (None when it gave none)."""
        with self._lock:
            self.state = REFUSED
            self._refused_total += 1
            self._streak += 1
            self._last_refused = (self._wall(), status, code)
            streak = self._streak
        held = self._gate.due()
        if held is None:
            return
        said = f"HTTP {status}" + (f", code {code}" if code else "")
        more = f"; {held} more refused since the last line" if held else ""
        log.error("Z.AI refused the proxy's own credentials (%s): clients get 502 "
                  "upstream_auth_failed until ZAI_API_KEY is fixed%s", said, more,
                  extra={"fields": {"event": "upstream_auth_refused", "upstream_status": status,
                                    "zai_code": code, "refused_since_last_line": held,
                                    "refused_requests": streak}})

    def snapshot(self) -> dict:
        """The /health block."""
        with self._lock:
            last = self._last_refused
            return {
                "status": self.state,
                "refused_requests": self._refused_total,
                "refused_since_accepted": self._streak,
                "last_refused_at": rfc3339(last[0]) if last else None,
                "last_refused_status": last[1] if last else None,
                "last_refused_code": last[2] if last else None,
                "accepted_since": rfc3339(self._accepted_at) if self._accepted_at else None,
            }
