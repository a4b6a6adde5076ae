"""Quota supervisor: an out-of-band poller of Z.AI's quota endpoint, observe-only by default.

`GET {ZAI_QUOTA_BASE_URL}/api/monitor/usage/quota/limit` with the raw key in Authorization (no
Bearer; that is how Z.AI's own plugins call it), QUOTA_POLL_TIMEOUT, a 64 KiB cap, no redirects.
The payload's `data.limits[]` entries are normalised into windows:

    type  TOKENS_LIMIT (percentage only) | CREDIT_LIMIT (usage = allowance, currentValue = used)
    unit  3 → five_hour, 6 → weekly (other units, e.g. monthly tool quotas, are ignored)
    nextResetTime  epoch ms

Outcomes (`zai_proxy_quota_poll_total{result}`): success; error (transport, HTTP status, a
provider rejection inside a 200, an oversized body); malformed (not JSON, no data.limits); stale,
counted once when the last good sample becomes older than QUOTA_STALE_AFTER (or when polls fail
before any success). A failed poll keeps the last good sample; only a success replaces it.

With QUOTA_ENFORCEMENT_ENABLED, `exhausted()` reports how long until reset while a fresh sample
shows a window at 100 %, so the proxy answers 429 at once instead of spending upstream calls. A
stale or missing sample never blocks traffic.

The key is sent to the quota endpoint only: it is never logged, returned or put in /health.
With QUOTA_POLL_ENABLED=false the pipeline holds a `NoQuota` instead.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from datetime import datetime, timezone

import requests

from .config import Config
from .metrics import Metrics

log = logging.getLogger("zai_proxy.quota")

QUOTA_PATH = "/api/monitor/usage/quota/limit"
MAX_BODY_BYTES = 64 * 1024
WINDOW_UNITS = {3: "five_hour", 6: "weekly"}
LIMIT_TYPES = ("TOKENS_LIMIT", "CREDIT_LIMIT")


class PollError(Exception):
    """The poll failed; `outcome` is error or malformed. Messages never quote the payload."""

    def __init__(self, outcome: str, reason: str):
        super().__init__(reason)
        self.outcome = outcome


def normalize(body: bytes) -> dict:
    """{"plan_tier": str|None, "windows": [{window, limit_type, used_fraction, reset_at, …}]}."""
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):
        raise PollError("malformed", "response is not JSON") from None
    if not isinstance(payload, dict):
        raise PollError("malformed", "response is not a JSON object")
    success, code = payload.get("success"), payload.get("code")
    if success is False or (success is None and code not in (None, 0, 200, "0", "200")):
        raise PollError("error", f"quota endpoint rejected the request (provider code {code!r})"
                        if isinstance(code, (int, str)) and len(str(code)) <= 8 else
                        "quota endpoint rejected the request")
    data = payload.get("data")
    limits = data.get("limits") if isinstance(data, dict) else None
    if not isinstance(limits, list):
        raise PollError("malformed", "response has no data.limits array")
    windows, seen = [], set()
    for entry in limits:
        window = _window(entry) if isinstance(entry, dict) else None
        if window and window["window"] not in seen:
            seen.add(window["window"])
            windows.append(window)
    windows.sort(key=lambda w: list(WINDOW_UNITS.values()).index(w["window"]))
    level = data.get("level")
    return {"plan_tier": level if isinstance(level, str) and len(level) <= 32 else None,
            "windows": windows}


def _window(entry: dict) -> dict | None:
    kind = str(entry.get("type", "")).upper()
    name = WINDOW_UNITS.get(_number(entry.get("unit")))
    if kind not in LIMIT_TYPES or name is None:
        return None
    used, allowance = _number(entry.get("currentValue")), _number(entry.get("usage"))
    percentage, remaining = _number(entry.get("percentage")), _number(entry.get("remaining"))
    fraction = None
    if kind == "CREDIT_LIMIT" and allowance is not None and allowance > 0 and used is not None:
        fraction = used / allowance
    elif percentage is not None:
        fraction = percentage / 100
    if fraction is None:
        return None
    window = {"window": name, "limit_type": kind, "used_fraction": min(1.0, max(0.0, fraction)),
              "reset_at": _reset(entry.get("nextResetTime"))}
    if kind == "CREDIT_LIMIT" and allowance is not None and used is not None:
        window.update(limit=max(0.0, allowance), used=max(0.0, used),
                      remaining=max(0.0, remaining if remaining is not None
                                    else allowance - used))
    return window


def _number(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _reset(value) -> float | None:
    millis = _number(value)
    if millis is None or millis <= 0:
        return None
    seconds = millis / 1000 if millis >= 1e12 else millis   # tolerate epoch seconds too
    return seconds if 1e9 <= seconds <= 2e10 else None


def _rfc3339(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class QuotaSupervisor:
    def __init__(self, config: Config, metrics: Metrics, session: requests.Session, *,
                 wall=time.time):
        self._config = config
        self._metrics = metrics
        self._session = session
        self._wall = wall
        self._url = config.zai_quota_base_url.rstrip("/") + QUOTA_PATH
        self._lock = threading.Lock()
        self._sample: dict | None = None
        self._last_success: float | None = None
        self._last_outcome: str | None = None
        self._stale_counted = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:   # never the key
        return f"QuotaSupervisor(url={self._url!r})"

    # Lifecycle ------------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="quota-poller", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self._config.quota_poll_timeout + 1)
            self._thread = None
        self._session.close()   # its kept-alive connection to Z.AI (a new poll opens another)

    def _run(self) -> None:
        while not self._stop.is_set():   # poll at once, so /health fills without waiting
            try:
                self.poll_once()
            except Exception:   # the poller must outlive any surprise; it is observe-only
                log.exception("quota poll crashed")
            self._stop.wait(self._config.quota_poll_interval)

    # One poll -------------------------------------------------------------------------------
    def poll_once(self) -> str:
        """Poll once; returns the poll's outcome: success, error or malformed. (The stale
        outcome is counted on its own, once, when the sample goes stale.)"""
        try:
            sample = normalize(self._fetch())
            outcome = "success"
        except PollError as exc:
            sample, outcome = None, exc.outcome
            log.warning("quota poll %s: %s", outcome, exc)
        now = self._wall()
        with self._lock:
            if sample is not None:
                self._sample, self._last_success, self._stale_counted = sample, now, False
            self._last_outcome = outcome
            went_stale = not self._fresh(now) and not self._stale_counted
            if went_stale:
                self._stale_counted = True
        self._metrics.quota_polls.labels(outcome, self._metrics.variant).inc()
        if went_stale:
            self._metrics.quota_polls.labels("stale", self._metrics.variant).inc()
        if sample is not None:
            self._publish(sample)
        self._publish_age(now)
        return outcome

    def _fetch(self) -> bytes:
        headers = {"Authorization": self._config.zai_api_key, "Accept": "application/json"}
        timeout = self._config.quota_poll_timeout
        try:
            response = self._session.get(self._url, headers=headers, timeout=(timeout, timeout),
                                         allow_redirects=False, stream=True)
        except requests.RequestException as exc:
            raise PollError("error", f"request failed ({type(exc).__name__})") from None
        try:
            if response.status_code != 200:
                raise PollError("error", f"HTTP {response.status_code}")
            body = bytearray()
            for chunk in response.iter_content(16 * 1024):
                body += chunk
                if len(body) > MAX_BODY_BYTES:
                    raise PollError("error", f"response larger than {MAX_BODY_BYTES} bytes")
            return bytes(body)
        except requests.RequestException as exc:
            raise PollError("error", f"reading the response failed ({type(exc).__name__})") \
                from None
        finally:
            response.close()

    def _publish(self, sample: dict) -> None:
        m, variant = self._metrics, self._metrics.variant
        for w in sample["windows"]:
            labels = (w["window"], w["limit_type"], variant)
            m.quota_usage.labels(*labels).set(w["used_fraction"])
            m.quota_remaining.labels(*labels).set(1 - w["used_fraction"])
            if w["reset_at"] is not None:
                m.quota_reset.labels(*labels).set(w["reset_at"])

    def _publish_age(self, now: float) -> None:
        # No sample, no age: exporting 0 would read as a fresh sample that does not exist.
        if self._last_success is not None:
            self._metrics.quota_sample_age.set(max(0.0, now - self._last_success))

    def _fresh(self, now: float) -> bool:
        return (self._last_success is not None
                and now - self._last_success <= self._config.quota_stale_after)

    # Readers --------------------------------------------------------------------------------
    def exhausted(self) -> float | None:
        """Seconds until reset while a fresh sample shows a window used up (enforcement on)."""
        if not self._config.quota_enforcement_enabled:
            return None
        now = self._wall()
        with self._lock:
            if self._sample is None or not self._fresh(now):
                return None
            waits = []
            for w in self._sample["windows"]:
                full = w["used_fraction"] >= 1.0 or (w.get("limit") and w.get("remaining") == 0)
                if not full:
                    continue
                if w["reset_at"] is None:
                    # Used up, reset unknown: hold until the next poll can tell more.
                    waits.append(self._config.quota_poll_interval)
                elif w["reset_at"] > now:
                    waits.append(w["reset_at"] - now)
            return max(waits) if waits else None

    def snapshot(self) -> dict:
        now = self._wall()
        with self._lock:
            block = {
                "enabled": True,
                "enforcement": self._config.quota_enforcement_enabled,
                "fresh": self._fresh(now),
                "interval_seconds": self._config.quota_poll_interval,
                "stale_after_seconds": self._config.quota_stale_after,
                "last_outcome": self._last_outcome,
                "last_success_at": (_rfc3339(self._last_success)
                                    if self._last_success is not None else None),
                "sample_age_seconds": (round(max(0.0, now - self._last_success), 3)
                                       if self._last_success is not None else None),
                "plan_tier": self._sample["plan_tier"] if self._sample else None,
                "windows": [dict(w, reset_at=_rfc3339(w["reset_at"]) if w["reset_at"] else None)
                            for w in (self._sample["windows"] if self._sample else [])],
            }
        self._publish_age(now)
        exhausted = self.exhausted()
        block["exhausted_for_seconds"] = round(exhausted, 3) if exhausted is not None else None
        return block


class NoQuota:
    """Quota polling off: nothing is polled, nothing is ever exhausted."""

    def exhausted(self) -> float | None:
        return None

    def snapshot(self) -> dict:
        return {"enabled": False}

    def stop(self) -> None:
        pass
