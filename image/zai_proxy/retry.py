"""Per-class retry policy and wait computation for upstream attempts.

The policy only decides; the pipeline sleeps (cancellably), re-acquires admission and counts
`zai_proxy_retry_attempts_total{reason}` once per retry it actually makes, so nothing is counted
twice. `attempt` is always the 0-based index of the attempt that just failed.

| class                      | retried? | wait before the next attempt                      |
|----------------------------|----------|---------------------------------------------------|
| refused, DNS, unreachable, connect timeout (nothing was sent) | yes | 0.1 s·2^attempt (0.1, 0.2, 0.4 s …) |
| TLS handshake failure      | never    | (a certificate or protocol mismatch does not heal) |
| reset, silent, not HTTP, other network error, before any status line | yes | base·2^attempt (1 s, 2 s, 4 s …) |
| anything after a status line (a head refused, a body cut, silent, not its JSON) | never | (the request was received: it may be billing) |
| concurrency (1302)         | yes      | max(base·2^attempt, advertised)                   |
| frequency (1303/1305/1313) | yes      | max(jittered base·2^attempt, advertised); slow down |
| congestion (1312)          | yes      | max(jittered base·2^attempt, advertised)          |
| overloaded (503/529)       | yes      | max(jittered base·2^attempt, advertised)          |
| unknown 429                | yes      | advertised + base·2^attempt (conservative); slow down |
| quota, daily limit, auth, account, bad request, content, server | never |           |

"advertised" is the larger of the Retry-After header (seconds or HTTP-date) and the body's
`retry_after`. Jitter draws from [b/2, b) so callers that failed together spread out without any
of them waiting longer than the plain curve. A wait longer than `max_wait` is not worth holding
the client for: the answer goes back at once.

What the client is told (`client_headers`) mirrors this policy, so that an SDK on its default
settings does what the proxy would do: `x-should-retry: false` for the classes never retried here
(except an upstream 5xx, which is left to the client's own policy: no header) and for waits longer than `max_wait` (retrying cannot help, or not soon: the official OpenAI and
Anthropic SDKs give up at once instead of waiting hours or retrying in vain), and for a class the
proxy retried until its attempts ran out, `x-should-retry: true` with the wait it would have made
next as `Retry-After` (whole seconds, unless the upstream sent its own) and `retry-after-ms`.
The reset instant of an exhausted window is `X-Zai-Rate-Limit-Reset`, never a Retry-After of hours.

What retries cost, with the defaults (MAX_RETRIES=3, RETRY_BACKOFF_BASE=1s): a refused
connection or a name that does not resolve answers 502 after 0.7 s of waits; a connect timeout
after 4 × UPSTREAM_CONNECT_TIMEOUT + 0.7 s; a TLS failure at once; a connection reset after 7 s.
Every network-error retry is counted with reason `network_error`. The pipeline makes no retry
whose wait would outlast the request's total deadline (UPSTREAM_TOTAL_TIMEOUT).
"""

from __future__ import annotations

import dataclasses
import random
from datetime import datetime, timezone
from typing import Callable, Mapping

from . import errors
from .zai_errors import ZaiError

JITTERED = frozenset({"frequency", "congestion", "overloaded"})
PLAIN = frozenset({"concurrency"})
SLOW_DOWN = frozenset({"frequency", "unknown"})
NEVER_RETRIED = frozenset({"quota", "daily_limit", "auth", "account", "bad_request", "content",
                           "server"})
# An upstream 5xx that is not "overloaded": the proxy does not send the request again (it was
# answered, so it may have been processed), but nothing says retrying is hopeless either, so
# the client's own policy decides (the official SDKs retry 5xx with their own backoff).
LEFT_TO_CLIENT = frozenset({"server"})
# Failed while connecting, so nothing reached the upstream: a quick retry costs it nothing.
CONNECT_BACKOFF = 0.1
QUICK = errors.CONNECT_PHASE - {errors.TLS}


@dataclasses.dataclass(frozen=True)
class Decision:
    retry: bool
    wait: float        # seconds to sleep before the next attempt
    reason: str        # bounded label for zai_proxy_retry_attempts_total (counted only on retry)
    slow_down: bool    # the controller should treat this answer as a frequency 429
    # Not retried here because the attempts ran out: the wait after which the client may try
    # again itself. None: trying again cannot help (or not within max_wait).
    client_wait: float | None = None


FINAL = Decision(False, 0.0, "", False)   # an answer that is what the client gets: no question


class RetryPolicy:
    def __init__(self, max_retries: int, backoff_base: float,
                 rng: Callable[[], float] = random.random, max_wait: float = 30.0):
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.max_wait = max_wait
        self._rng = rng

    def backoff(self, attempt: int) -> float:
        return self.backoff_base * (2 ** min(attempt, 30))

    def jittered(self, attempt: int) -> float:
        base = self.backoff(attempt)
        u = self._rng()
        if not 0.0 <= u < 1.0:   # a broken source (or NaN) falls back to no jitter
            u = 0.0
        return base / 2 + base / 2 * u

    def on_network_error(self, attempt: int) -> Decision:
        return self._decide(attempt, self.backoff(attempt), "network_error", False)

    def on_transport_error(self, attempt: int, kind: str, answered: bool = False) -> Decision:
        """A transport failure by its cause (errors.TRANSPORT_KINDS, errors.TIMEOUT), and
        whether the upstream's status line had arrived before it."""
        if kind == errors.TLS or answered:
            return Decision(False, 0.0, "network_error", False)
        if kind in QUICK:
            wait = CONNECT_BACKOFF * (2 ** min(attempt, 30))
            return self._decide(attempt, wait, "network_error", False)
        return self.on_network_error(attempt)

    def on_bad_success(self, attempt: int, kind: str) -> Decision:
        """A 2xx that is empty, cut, undecodable or silent: answered, so never sent again."""
        return Decision(False, 0.0, kind, False)

    def on_zai_error(self, attempt: int, error: ZaiError) -> Decision:
        cls = error.error_class
        slow_down = cls in SLOW_DOWN
        if cls in NEVER_RETRIED:
            return Decision(False, 0.0, cls, slow_down)
        advertised = error.retry_after or 0.0
        if cls in PLAIN:
            wait = max(self.backoff(attempt), advertised)
        elif cls in JITTERED:
            wait = max(self.jittered(attempt), advertised)
        else:
            # Unknown: nothing says what ran out, so honour the hint and then back off too.
            cls = "unknown"
            wait = advertised + self.backoff(attempt)
        return self._decide(attempt, wait, cls, slow_down)

    def _decide(self, attempt: int, wait: float, reason: str, slow_down: bool) -> Decision:
        if wait > self.max_wait:
            return Decision(False, 0.0, reason, slow_down)
        if attempt >= self.max_retries:
            return Decision(False, 0.0, reason, slow_down, client_wait=wait)
        return Decision(True, wait, reason, slow_down)


def client_headers(error: ZaiError, decision: Decision,
                   upstream_headers: Mapping[str, str] | None) -> dict:
    """Headers added to an upstream error answer that goes back to the client (body verbatim):
    what the error is, when its window resets, and whether and when to try again."""
    headers = {"X-Zai-Error-Class": error.error_class}
    if error.code:
        headers["X-Zai-Error-Code"] = error.code
    if error.reset_at is not None:
        headers["X-Zai-Rate-Limit-Reset"] = rfc3339(error.reset_at)
    if error.error_class in LEFT_TO_CLIENT:
        return headers
    headers.update(should_retry_headers(decision.client_wait, upstream_headers))
    return headers


def should_retry_headers(wait: float | None,
                         upstream_headers: Mapping[str, str] | None = None) -> dict:
    """`x-should-retry` (honoured by the official SDKs over their own judgement) and, when a
    retry is advised, the wait: `Retry-After` in whole seconds (the upstream's own wins) and
    `retry-after-ms`, which the SDKs read first and which is never below the upstream's
    Retry-After (the wait already includes what it advertised)."""
    if wait is None:
        return dict(errors.NOT_RETRIED)
    headers = errors.retry_in(wait)
    for name in ("Retry-After", "retry-after-ms"):
        if _has_header(upstream_headers, name):
            del headers[name]
    return headers


def rfc3339(when: float) -> str:
    return datetime.fromtimestamp(when, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _has_header(headers: Mapping[str, str] | None, name: str) -> bool:
    if not headers:
        return False
    lower = name.lower()
    return any(isinstance(key, str) and key.lower() == lower and str(value).strip()
               for key, value in headers.items())
