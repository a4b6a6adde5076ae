"""Configuration: every environment variable is read once here and validated.

A bad value stops the process with a message that names the variable; nothing silently falls
back to a default (the original did, and hid typos for weeks).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import os
import re
from typing import Mapping
from urllib.parse import urlsplit

VERSION = "0.1.0"

DEFAULT_MODEL_LABELS = (
    "glm-4.5,glm-4.5-air,glm-4.5-flash,glm-4.5v,glm-4.6,glm-4.7,glm-4.7-flash,"
    "glm-5,glm-5-turbo,glm-5.1"
)

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class ConfigError(ValueError):
    """A configuration value is missing or invalid; the message names the variable."""


class _Reader:
    """Typed access to an environment mapping, raising ConfigError that names the variable."""

    def __init__(self, env: Mapping[str, str]):
        self.env = env

    def raw(self, name: str, default: str | None = None) -> str | None:
        value = self.env.get(name)
        if value is None or value.strip() == "":
            return default
        return value.strip()

    def string(self, name: str, default: str) -> str:
        return self.raw(name, default)  # type: ignore[return-value]

    def integer(self, name: str, default: int, minimum: int | None = None,
                maximum: int | None = None) -> int:
        text = self.raw(name)
        if text is None:
            return default
        try:
            value = int(text)
        except ValueError:
            raise ConfigError(f"{name}={text!r} is not an integer") from None
        _check_bounds(name, value, minimum, maximum)
        return value

    def number(self, name: str, default: float, minimum: float | None = None,
               maximum: float | None = None) -> float:
        text = self.raw(name)
        if text is None:
            return default
        try:
            value = float(text)
        except ValueError:
            raise ConfigError(f"{name}={text!r} is not a number") from None
        _check_bounds(name, value, minimum, maximum)
        return value

    def boolean(self, name: str, default: bool) -> bool:
        text = self.raw(name)
        if text is None:
            return default
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        raise ConfigError(f"{name}={text!r} is not a boolean (use true or false)")

    def duration(self, name: str, default: float, minimum: float = 0.0) -> float:
        """Seconds, from '500ms', '30s', '5m', '6h' or a bare number of seconds."""
        text = self.raw(name)
        if text is None:
            return default
        match = _DURATION.match(text)
        if not match:
            raise ConfigError(f"{name}={text!r} is not a duration (examples: 500ms, 30s, 5m, 6h)")
        value = float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        _check_bounds(name, value, minimum, None)
        return value

    def secret(self, name: str) -> str | None:
        """NAME_FILE wins over NAME; a file that cannot be read is an error, not a fallback."""
        path = self.raw(name + "_FILE")
        if path is not None:
            try:
                with open(path, encoding="utf-8") as handle:
                    value = handle.read().strip()
            except OSError as exc:
                raise ConfigError(f"{name}_FILE={path!r} cannot be read: {exc.strerror}") from None
            if not value:
                raise ConfigError(f"{name}_FILE={path!r} is empty")
            return _printable(f"{name}_FILE", value)
        value = self.raw(name)
        return value if value is None else _printable(name, value)


def _printable(name: str, secret: str) -> str:
    """A secret that is sent as a header value: no line breaks or control characters.

    A pasted note on a second line of a key file would otherwise make every upstream call fail
    in a way that quotes the header, key included, in the exception. The message names the
    variable, never the value."""
    if any(ord(c) < 0x20 or ord(c) == 0x7f for c in secret):
        raise ConfigError(f"{name} contains a line break or a control character; a key must be "
                          "a single line")
    return secret


def _check_bounds(name, value, minimum, maximum):
    if minimum is not None and value < minimum:
        raise ConfigError(f"{name}={value} is below the minimum {minimum}")
    if maximum is not None and value > maximum:
        raise ConfigError(f"{name}={value} is above the maximum {maximum}")


def _origin(name: str, text: str) -> str:
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"{name}={text!r} must be an http(s) origin such as https://api.z.ai")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ConfigError(f"{name}={text!r} must be an origin only (no path); "
                          "set ZAI_OPENAI_PATH / ZAI_ANTHROPIC_PATH for paths")
    return f"{parts.scheme}://{parts.netloc}"


def _path(name: str, text: str) -> str:
    if not text.startswith("/") or "?" in text or "#" in text or ".." in text:
        raise ConfigError(f"{name}={text!r} must be an absolute URL path such as /api/paas/v4")
    return text.rstrip("/")


def sanitize_label(text: str) -> str:
    """A label value safe for dashboards: lower case, [a-z0-9_-], at most 32 characters."""
    cleaned = re.sub(r"[^a-z0-9_-]+", "-", text.lower()).strip("-")[:32]
    return cleaned or "unknown"


def _csv(text: str | None) -> tuple[str, ...]:
    if not text:
        return ()
    return tuple(item.strip() for item in text.split(",") if item.strip())


@dataclasses.dataclass(frozen=True)
class Config:
    # Listening and process model
    port: int = 8080
    web_concurrency: int = 1
    max_workers: int = 10
    graceful_timeout: float = 600.0
    log_level: str = "info"
    multiproc_dir: str = "/tmp/zai-proxy-metrics"
    # Upstream
    zai_base_url: str = "https://api.z.ai"
    zai_openai_path: str = "/api/paas/v4"
    zai_anthropic_path: str = "/api/anthropic"
    zai_api_key: str = dataclasses.field(default="", repr=False)
    connect_timeout: float = 10.0
    read_timeout: float = 300.0
    max_request_bytes: int = 10 * 1024 * 1024
    client_header_timeout: float = 10.0
    client_body_timeout: float = 60.0
    client_write_timeout: float = 60.0
    # Clients
    proxy_api_keys: tuple[str, ...] = dataclasses.field(default=(), repr=False)
    admin_token: str | None = dataclasses.field(default=None, repr=False)
    trusted_proxy_cidrs: tuple = ()
    # Metrics
    variant: str = "production"
    model_labels: tuple[str, ...] = tuple(DEFAULT_MODEL_LABELS.split(","))
    version: str = VERSION
    commit: str = "unknown"
    build_time: str = "unknown"
    # Rate limiting
    rate_limit_enabled: bool = True
    rate_limit_storage_uri: str = "memory://"
    rate_limit_initial: float = 10.0
    rate_limit_min: float = 1.0
    rate_limit_max: float = 50.0
    rate_limit_ceiling_alpha: float = 0.3
    rate_limit_hold_margin: float = 0.02
    rate_limit_probe_interval: int = 10
    rate_limit_window: float = 30.0
    rate_limit_state_file: str = "/tmp/zai-proxy/ceiling.json"
    rate_limit_state_max_age: float = 6 * 3600.0
    rate_limit_max_wait: float = 30.0
    # Retries
    max_retries: int = 3
    retry_backoff_base: float = 1.0
    # Tokens
    token_counting_enabled: bool = False
    tokenizer_encoding: str = "cl100k_base"
    token_count_max_chars: int = 200_000
    token_prices: dict | None = None
    # Quota
    quota_poll_enabled: bool = False
    quota_poll_interval: float = 60.0
    quota_poll_timeout: float = 5.0
    quota_stale_after: float = 900.0
    zai_quota_base_url: str = "https://api.z.ai"
    quota_enforcement_enabled: bool = False

    @property
    def openai_base(self) -> str:
        return self.zai_base_url + self.zai_openai_path

    @property
    def anthropic_base(self) -> str:
        return self.zai_base_url + self.zai_anthropic_path

    @property
    def max_in_flight_per_process(self) -> int:
        """The pod-wide MAX_WORKERS cap, split between gunicorn worker processes."""
        return max(1, self.max_workers // self.web_concurrency)

    @property
    def threads_per_process(self) -> int:
        """Enough threads that probes and 503s never queue behind MAX_WORKERS streams."""
        return self.max_in_flight_per_process + max(8, self.max_in_flight_per_process // 4)


def load(env: Mapping[str, str] | None = None) -> Config:
    """Read and validate the whole configuration. Raises ConfigError naming the variable."""
    r = _Reader(os.environ if env is None else env)

    api_key = r.secret("ZAI_API_KEY")
    if not api_key:
        raise ConfigError("ZAI_API_KEY (or ZAI_API_KEY_FILE) must be set to the Z.AI API key")

    base_url = _origin("ZAI_BASE_URL", r.string("ZAI_BASE_URL", "https://api.z.ai"))
    web_concurrency = r.integer("WEB_CONCURRENCY", 1, minimum=1, maximum=64)
    max_workers = r.integer("MAX_WORKERS", 10, minimum=1, maximum=10_000)
    if max_workers < web_concurrency:
        raise ConfigError(f"MAX_WORKERS={max_workers} must be at least WEB_CONCURRENCY="
                          f"{web_concurrency} (the cap is split between worker processes)")

    log_level = r.string("LOG_LEVEL", "info").lower()
    if log_level not in ("debug", "info", "warning", "error"):
        raise ConfigError(f"LOG_LEVEL={log_level!r} must be one of debug, info, warning, error")

    cidrs = []
    for item in _csv(r.raw("TRUSTED_PROXY_CIDRS")):
        try:
            cidrs.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ConfigError(f"TRUSTED_PROXY_CIDRS has an invalid network {item!r}") from None

    rate_min = r.number("RATE_LIMIT_MIN", 1.0, minimum=0.01)
    rate_max = r.number("RATE_LIMIT_MAX", 50.0, minimum=0.01)
    rate_initial = r.number("RATE_LIMIT_INITIAL", 10.0, minimum=0.01)
    if not rate_min <= rate_initial <= rate_max:
        raise ConfigError(f"RATE_LIMIT_INITIAL={rate_initial} must lie between RATE_LIMIT_MIN="
                          f"{rate_min} and RATE_LIMIT_MAX={rate_max}")
    # A secret: a Redis URI carries its password, so it may come from a mounted file.
    storage_uri = r.secret("RATE_LIMIT_STORAGE_URI") or "memory://"
    if not re.match(r"^(memory|redis|rediss|redis\+sentinel|redis\+cluster)://", storage_uri):
        raise ConfigError("RATE_LIMIT_STORAGE_URI must start with memory:// or redis:// "
                          "(or rediss://, redis+sentinel://, redis+cluster://)")

    prices = None
    prices_text = r.secret("TOKEN_PRICES")
    if prices_text:
        try:
            prices = json.loads(prices_text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"TOKEN_PRICES is not valid JSON: {exc.msg}") from None
        if not isinstance(prices, dict):
            raise ConfigError("TOKEN_PRICES must be a JSON object {model: {input, output, ...}}")
        from .pricing import PriceTable
        PriceTable(prices)  # raises ConfigError naming TOKEN_PRICES for a bad row

    model_labels = tuple(m.lower() for m in _csv(r.string("MODEL_LABELS", DEFAULT_MODEL_LABELS)))

    return Config(
        port=r.integer("PORT", 8080, minimum=1, maximum=65535),
        web_concurrency=web_concurrency,
        max_workers=max_workers,
        graceful_timeout=r.duration("GRACEFUL_TIMEOUT", 600.0),
        log_level=log_level,
        multiproc_dir=r.string("PROMETHEUS_MULTIPROC_DIR", "/tmp/zai-proxy-metrics"),
        zai_base_url=base_url,
        zai_openai_path=_path("ZAI_OPENAI_PATH", r.string("ZAI_OPENAI_PATH", "/api/paas/v4")),
        zai_anthropic_path=_path("ZAI_ANTHROPIC_PATH",
                                 r.string("ZAI_ANTHROPIC_PATH", "/api/anthropic")),
        zai_api_key=api_key,
        connect_timeout=r.duration("UPSTREAM_CONNECT_TIMEOUT", 10.0, minimum=0.001),
        read_timeout=r.duration("UPSTREAM_READ_TIMEOUT", 300.0, minimum=0.001),
        max_request_bytes=r.integer("MAX_REQUEST_BYTES", 10 * 1024 * 1024, minimum=1024),
        client_header_timeout=r.duration("CLIENT_HEADER_TIMEOUT", 10.0, minimum=0.1),
        client_body_timeout=r.duration("CLIENT_BODY_TIMEOUT", 60.0, minimum=0.1),
        client_write_timeout=r.duration("CLIENT_WRITE_TIMEOUT", 60.0, minimum=0.1),
        proxy_api_keys=_csv(r.secret("PROXY_API_KEYS")),
        admin_token=r.secret("ADMIN_TOKEN"),
        trusted_proxy_cidrs=tuple(cidrs),
        variant=sanitize_label(r.string("DEPLOYMENT_VARIANT", "production")),
        model_labels=model_labels,
        version=r.string("ZAI_PROXY_VERSION", VERSION),
        commit=r.string("ZAI_PROXY_COMMIT", "unknown"),
        build_time=r.string("ZAI_PROXY_BUILD_TIME", "unknown"),
        rate_limit_enabled=r.boolean("RATE_LIMIT_ENABLED", True),
        rate_limit_storage_uri=storage_uri,
        rate_limit_initial=rate_initial,
        rate_limit_min=rate_min,
        rate_limit_max=rate_max,
        rate_limit_ceiling_alpha=r.number("RATE_LIMIT_CEILING_ALPHA", 0.3, minimum=0.0,
                                          maximum=1.0),
        rate_limit_hold_margin=r.number("RATE_LIMIT_HOLD_MARGIN", 0.02, minimum=0.0,
                                        maximum=0.5),
        rate_limit_probe_interval=r.integer("RATE_LIMIT_PROBE_INTERVAL", 10, minimum=1),
        rate_limit_window=r.duration("RATE_LIMIT_WINDOW", 30.0, minimum=0.1),
        rate_limit_state_file=r.string("RATE_LIMIT_STATE_FILE", "/tmp/zai-proxy/ceiling.json")
        if r.env.get("RATE_LIMIT_STATE_FILE") is None else r.env["RATE_LIMIT_STATE_FILE"].strip(),
        rate_limit_state_max_age=r.duration("RATE_LIMIT_STATE_MAX_AGE", 6 * 3600.0),
        rate_limit_max_wait=r.duration("RATE_LIMIT_MAX_WAIT", 30.0),
        max_retries=r.integer("MAX_RETRIES", 3, minimum=0, maximum=20),
        retry_backoff_base=r.duration("RETRY_BACKOFF_BASE", 1.0),
        token_counting_enabled=r.boolean("TOKEN_COUNTING_ENABLED", False),
        tokenizer_encoding=r.string("TOKENIZER_ENCODING", "cl100k_base"),
        token_count_max_chars=r.integer("TOKEN_COUNT_MAX_CHARS", 200_000, minimum=0),
        token_prices=prices,
        quota_poll_enabled=r.boolean("QUOTA_POLL_ENABLED", False),
        quota_poll_interval=r.duration("QUOTA_POLL_INTERVAL", 60.0, minimum=1.0),
        quota_poll_timeout=r.duration("QUOTA_POLL_TIMEOUT", 5.0, minimum=0.1),
        quota_stale_after=r.duration("QUOTA_STALE_AFTER", 900.0, minimum=1.0),
        zai_quota_base_url=_origin("ZAI_QUOTA_BASE_URL",
                                   r.string("ZAI_QUOTA_BASE_URL", base_url)),
        quota_enforcement_enabled=r.boolean("QUOTA_ENFORCEMENT_ENABLED", False),
    )
