"""The dashboard's configuration: every DASHBOARD_* variable is read once here and validated.

A bad value stops the service before it listens, with a message that names the variable (and
never a target's credentials).
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path
from typing import Mapping

from .targets import VARIANT_NAME, Target, TargetError, parse_targets

PACKAGE_DIR = Path(__file__).resolve().parent
DEFAULT_UI_DIR = PACKAGE_DIR.parent / "ui" / "dist"
MEMORY = ":memory:"

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


class ConfigError(ValueError):
    """A configuration value is missing or invalid; the message names the variable."""


@dataclasses.dataclass(frozen=True)
class Thresholds:
    """The canary-vs-production comparison alerts' figures (chart: prometheusRule.thresholds)."""
    error_ratio_factor: float = 2.0
    error_ratio_margin: float = 0.01
    latency_p95_factor: float = 1.5
    latency_p95_margin_s: float = 0.1
    min_requests_per_s: float = 0.05


@dataclasses.dataclass(frozen=True)
class Config:
    variants: tuple[str, ...] = ("production", "canary")
    targets: Mapping[str, tuple[Target, ...]] = dataclasses.field(default_factory=dict,
                                                                  repr=False)
    prometheus_url: str | None = dataclasses.field(default=None, repr=False)
    bind_host: str = "127.0.0.1"
    port: int = 8090
    db_path: str = "/tmp/zai-dashboard/dashboard.db"
    scrape_interval: int = 5
    scrape_timeout: float = 3.0
    verdict_window: float = 600.0
    raw_retention: float = 86400.0
    rollup_retention: float = 7 * 86400.0
    max_clients: int = 100
    client_queue: int = 32
    heartbeat_interval: float = 15.0
    thresholds: Thresholds = Thresholds()
    ui_dir: str = str(DEFAULT_UI_DIR)
    log_level: str = "info"
    version: str = "unknown"
    commit: str = "unknown"

    @property
    def source(self) -> str:
        return "prometheus" if self.prometheus_url else "scrape"

    @property
    def secrets(self) -> tuple[str, ...]:
        """Credentials in target URLs, which the logs must never show."""
        found = [t.auth[1] for ts in self.targets.values() for t in ts if t.auth and t.auth[1]]
        if self.prometheus_url:
            from urllib.parse import urlsplit
            password = urlsplit(self.prometheus_url).password
            if password:
                found.append(password)
        return tuple(found)


class _Reader:
    def __init__(self, env: Mapping[str, str]):
        self.env = env

    def raw(self, name: str) -> str | None:
        value = self.env.get(name)
        if value is None or value.strip() == "":
            return None
        return value.strip()

    def string(self, name: str, default: str) -> str:
        return self.raw(name) or default

    def integer(self, name: str, default: int, minimum: int, maximum: int) -> int:
        text = self.raw(name)
        if text is None:
            return default
        try:
            value = int(text)
        except ValueError:
            raise ConfigError(f"{name}={text!r} is not an integer") from None
        _bounds(name, value, minimum, maximum, str)
        return value

    def number(self, name: str, default: float, minimum: float, maximum: float) -> float:
        text = self.raw(name)
        if text is None:
            return default
        try:
            value = float(text)
        except ValueError:
            raise ConfigError(f"{name}={text!r} is not a number") from None
        if value != value:
            raise ConfigError(f"{name}={text!r} is not a number")
        _bounds(name, value, minimum, maximum, lambda v: f"{v:g}")
        return value

    def duration(self, name: str, default: float, minimum: float, maximum: float) -> float:
        """Seconds, from '500ms', '5s', '10m', '24h', '7d' or a bare number of seconds."""
        text = self.raw(name)
        if text is None:
            return default
        match = _DURATION.match(text)
        if not match:
            raise ConfigError(f"{name}={text!r} is not a duration (examples: 5s, 10m, 24h, 7d)")
        value = float(match.group(1)) * _UNITS[match.group(2)]
        _bounds(name, value, minimum, maximum, _show_duration)
        return value


def _show_duration(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds * 1000:g}ms"


def _bounds(name, value, minimum, maximum, show) -> None:
    if value < minimum:
        raise ConfigError(f"{name}={show(value)} is below the minimum {show(minimum)}")
    if value > maximum:
        raise ConfigError(f"{name}={show(value)} is above the maximum {show(maximum)}")


def _prometheus_url(text: str) -> str:
    from urllib.parse import urlsplit
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError("DASHBOARD_PROMETHEUS_URL must be an http(s) URL such as "
                          "http://prometheus.monitoring:9090")
    return text.rstrip("/")


def _variants(text: str) -> tuple[str, ...]:
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    for name in names:
        if not VARIANT_NAME.match(name):
            raise ConfigError(f"DASHBOARD_VARIANTS has an invalid name {name[:40]!r} (1-32 "
                              "characters of a-z, 0-9, '_' or '-')")
    if not names or len(set(names)) != len(names):
        raise ConfigError("DASHBOARD_VARIANTS must name each variant once, e.g. production,canary")
    return names


def load(env: Mapping[str, str] | None = None) -> Config:
    """Read and validate the whole configuration. Raises ConfigError naming the variable."""
    r = _Reader(os.environ if env is None else env)

    prometheus_url = r.raw("DASHBOARD_PROMETHEUS_URL")
    targets_text = r.raw("DASHBOARD_TARGETS")
    targets: dict[str, tuple[Target, ...]] = {}
    if prometheus_url:
        if targets_text:
            raise ConfigError("set DASHBOARD_TARGETS (scrape the pods) or DASHBOARD_PROMETHEUS_URL "
                              "(read Prometheus), not both")
        prometheus_url = _prometheus_url(prometheus_url)
        variants = _variants(r.string("DASHBOARD_VARIANTS", "production,canary"))
    else:
        if not targets_text:
            raise ConfigError("DASHBOARD_TARGETS must be set, e.g. "
                              "production=http://127.0.0.1:8080/metrics;"
                              "canary=dns+http://zai-proxy-canary-headless:8080/metrics "
                              "(or set DASHBOARD_PROMETHEUS_URL)")
        if r.raw("DASHBOARD_VARIANTS"):
            raise ConfigError("DASHBOARD_VARIANTS is only for DASHBOARD_PROMETHEUS_URL; with "
                              "DASHBOARD_TARGETS the variants are the names it gives")
        try:
            targets = parse_targets(targets_text)
        except TargetError as exc:
            raise ConfigError(f"DASHBOARD_TARGETS: {exc}") from None
        variants = tuple(targets)

    interval = r.duration("DASHBOARD_SCRAPE_INTERVAL", 5.0, 1.0, 300.0)
    if interval != int(interval):
        raise ConfigError(f"DASHBOARD_SCRAPE_INTERVAL={_show_duration(interval)} must be a whole "
                          "number of seconds (tick ids are unix seconds)")
    interval = int(interval)
    timeout = r.duration("DASHBOARD_SCRAPE_TIMEOUT", min(3.0, float(interval)), 0.1,
                         float(interval))
    raw_retention = r.duration("DASHBOARD_RAW_RETENTION", 86400.0, 3600.0, 7 * 86400.0)
    rollup_retention = r.duration("DASHBOARD_ROLLUP_RETENTION", 7 * 86400.0, 3600.0,
                                  90 * 86400.0)
    verdict_window = r.duration("DASHBOARD_VERDICT_WINDOW", 600.0, 2.0 * interval,
                                raw_retention)

    log_level = r.string("DASHBOARD_LOG_LEVEL", "info").lower()
    if log_level not in ("debug", "info", "warning", "error"):
        raise ConfigError(f"DASHBOARD_LOG_LEVEL={log_level!r} must be one of debug, info, "
                          "warning, error")

    db_path = r.string("DASHBOARD_DB_PATH", Config.db_path)
    if db_path != MEMORY and db_path.endswith("/"):
        raise ConfigError(f"DASHBOARD_DB_PATH={db_path!r} must be a file path, not a directory")

    from zai_proxy.config import VERSION

    return Config(
        variants=variants,
        targets=targets,
        prometheus_url=prometheus_url,
        bind_host=r.string("DASHBOARD_BIND_HOST", "127.0.0.1"),
        port=r.integer("DASHBOARD_PORT", 8090, 1, 65535),
        db_path=db_path,
        scrape_interval=interval,
        scrape_timeout=timeout,
        verdict_window=verdict_window,
        raw_retention=raw_retention,
        rollup_retention=max(rollup_retention, raw_retention),
        max_clients=r.integer("DASHBOARD_MAX_CLIENTS", 100, 1, 10_000),
        client_queue=r.integer("DASHBOARD_CLIENT_QUEUE", 32, 1, 10_000),
        heartbeat_interval=r.duration("DASHBOARD_HEARTBEAT_INTERVAL", 15.0, 0.1, 300.0),
        thresholds=Thresholds(
            error_ratio_factor=r.number("DASHBOARD_ERROR_RATIO_FACTOR", 2.0, 1.0, 1000.0),
            error_ratio_margin=r.number("DASHBOARD_ERROR_RATIO_MARGIN", 0.01, 0.0, 1.0),
            latency_p95_factor=r.number("DASHBOARD_LATENCY_P95_FACTOR", 1.5, 1.0, 1000.0),
            latency_p95_margin_s=r.duration("DASHBOARD_LATENCY_P95_MARGIN", 0.1, 0.0, 3600.0),
            min_requests_per_s=r.number("DASHBOARD_MIN_REQUEST_RATE", 0.05, 0.0, 1e6),
        ),
        ui_dir=r.string("DASHBOARD_UI_DIR", str(DEFAULT_UI_DIR)),
        log_level=log_level,
        version=r.string("ZAI_PROXY_VERSION", VERSION),
        commit=r.string("ZAI_PROXY_COMMIT", "unknown"),
    )
