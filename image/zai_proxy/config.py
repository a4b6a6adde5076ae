"""Configuration: every environment variable is read once here, through the table of settings
(settings.py), and validated.

A bad value stops the process with a message that names the variable (and never shows a key);
nothing silently falls back to a default, which would hide a typo for weeks. Checks that involve
two settings are written out in load().
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
from typing import Mapping

from .setting_kinds import ConfigError, Invalid, sanitize_label
from .settings import BY_FIELD, DEFAULTS, Setting

__all__ = ["VERSION", "Config", "ConfigError", "load", "sanitize_label"]

VERSION = "0.1.0"

_d = DEFAULTS.__getitem__


@dataclasses.dataclass(frozen=True)
class Config:
    # Listening and process model
    bind_host: str = _d("bind_host")
    port: int = _d("port")
    web_concurrency: int = _d("web_concurrency")
    max_workers: int = _d("max_workers")
    graceful_timeout: float = _d("graceful_timeout")
    log_level: str = _d("log_level")
    multiproc_dir: str | None = _d("multiproc_dir")   # None: a private folder per instance
    # Upstream
    zai_base_url: str = _d("zai_base_url")
    zai_openai_path: str = _d("zai_openai_path")
    zai_anthropic_path: str = _d("zai_anthropic_path")
    zai_api_key: str = dataclasses.field(default="", repr=False)   # required: no default
    connect_timeout: float = _d("connect_timeout")
    read_timeout: float = _d("read_timeout")
    total_timeout: float = _d("total_timeout")
    max_request_bytes: int = _d("max_request_bytes")
    client_header_timeout: float = _d("client_header_timeout")
    client_body_timeout: float = _d("client_body_timeout")
    client_write_timeout: float = _d("client_write_timeout")
    # Clients
    proxy_api_keys: tuple[str, ...] = dataclasses.field(default=_d("proxy_api_keys"), repr=False)
    admin_token: str | None = dataclasses.field(default=_d("admin_token"), repr=False)
    trusted_proxy_cidrs: tuple = _d("trusted_proxy_cidrs")
    # Metrics
    variant: str = _d("variant")
    model_labels: tuple[str, ...] = _d("model_labels")
    version: str = VERSION
    commit: str = _d("commit")
    build_time: str = _d("build_time")
    # Rate limiting
    rate_limit_enabled: bool = _d("rate_limit_enabled")
    rate_limit_storage_uri: str = dataclasses.field(default=_d("rate_limit_storage_uri"),
                                                    repr=False)
    rate_limit_initial: float = _d("rate_limit_initial")
    rate_limit_min: float = _d("rate_limit_min")
    rate_limit_max: float = _d("rate_limit_max")
    rate_limit_ceiling_alpha: float = _d("rate_limit_ceiling_alpha")
    rate_limit_hold_margin: float = _d("rate_limit_hold_margin")
    rate_limit_probe_interval: int = _d("rate_limit_probe_interval")
    rate_limit_window: float = _d("rate_limit_window")
    rate_limit_state_file: str = _d("rate_limit_state_file")
    rate_limit_state_max_age: float = _d("rate_limit_state_max_age")
    rate_limit_max_wait: float = _d("rate_limit_max_wait")
    # Retries
    max_retries: int = _d("max_retries")
    retry_backoff_base: float = _d("retry_backoff_base")
    # Tokens
    token_counting_enabled: bool = _d("token_counting_enabled")
    tokenizer_encoding: str = _d("tokenizer_encoding")
    token_count_max_chars: int = _d("token_count_max_chars")
    token_prices: dict | None = _d("token_prices")
    # Quota
    quota_poll_enabled: bool = _d("quota_poll_enabled")
    quota_poll_interval: float = _d("quota_poll_interval")
    quota_poll_timeout: float = _d("quota_poll_timeout")
    quota_stale_after: float = _d("quota_stale_after")
    zai_quota_base_url: str = _d("zai_base_url")   # unset: ZAI_BASE_URL
    quota_enforcement_enabled: bool = _d("quota_enforcement_enabled")

    @property
    def openai_base(self) -> str:
        return self.zai_base_url + self.zai_openai_path

    @property
    def anthropic_base(self) -> str:
        return self.zai_base_url + self.zai_anthropic_path

    @property
    def bind(self) -> str:
        """gunicorn's `bind`: host:port, with an IPv6 address in brackets."""
        host = f"[{self.bind_host}]" if ":" in self.bind_host else self.bind_host
        return f"{host}:{self.port}"

    @property
    def max_in_flight_per_process(self) -> int:
        """The pod-wide MAX_WORKERS cap, split between gunicorn worker processes."""
        return max(1, self.max_workers // self.web_concurrency)

    @property
    def threads_per_process(self) -> int:
        """Enough threads that probes and 503s never queue behind MAX_WORKERS streams."""
        return self.max_in_flight_per_process + max(8, self.max_in_flight_per_process // 4)


def _shown(text: str, limit: int = 80) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "…")


def read(setting: Setting, env: Mapping[str, str]):
    """One setting's value: NAME_FILE (when the setting has one) wins over NAME; unset or empty
    gives the table's default. Raises ConfigError naming the variable that was read."""
    source, text, from_file = setting.name, env.get(setting.name), False
    path = env.get(setting.name + "_FILE", "").strip() if setting.file else ""
    if path:
        source, from_file = setting.name + "_FILE", True
        try:
            with open(path, encoding="utf-8") as handle:
                text = handle.read()
        except (OSError, UnicodeDecodeError) as exc:
            reason = getattr(exc, "strerror", None) or "not UTF-8 text"
            raise ConfigError(f"{source}={path!r} cannot be read: {reason}") from None
        if not text.strip():
            raise ConfigError(f"{source}={path!r} is empty")
    if text is None or (not text.strip() and not setting.kind.accepts_empty):
        if setting.required:
            either = f"{setting.name} (or {setting.name}_FILE)" if setting.file else setting.name
            raise ConfigError(f"{either} must be set: {setting.help}")
        return DEFAULTS[setting.field]
    try:
        return setting.kind.parse(text.strip())
    except Invalid as invalid:
        if from_file:
            raise ConfigError(f"{source}={path!r} {invalid.problem}") from None
        if invalid.show_value and not setting.kind.secret:
            raise ConfigError(f"{source}={_shown(text.strip())} {invalid.problem}") from None
        raise ConfigError(f"{source} {invalid.problem}") from None


def load(env: Mapping[str, str] | None = None) -> Config:
    """Read and validate the whole configuration. Raises ConfigError naming the variable."""
    env = os.environ if env is None else env
    values = {field: read(setting, env) for field, setting in BY_FIELD.items()}

    if values["max_workers"] < values["web_concurrency"]:
        raise ConfigError(f"MAX_WORKERS={values['max_workers']} must be at least WEB_CONCURRENCY="
                          f"{values['web_concurrency']} (the cap is split between worker "
                          "processes)")
    low, start, high = (values["rate_limit_min"], values["rate_limit_initial"],
                        values["rate_limit_max"])
    if not low <= start <= high:
        raise ConfigError(f"RATE_LIMIT_INITIAL={start:g} must lie between RATE_LIMIT_MIN="
                          f"{low:g} and RATE_LIMIT_MAX={high:g}")
    if values["token_prices"] is not None:
        from .pricing import PriceTable
        PriceTable(values["token_prices"])  # raises ConfigError naming TOKEN_PRICES for a bad row
    values["zai_quota_base_url"] = values["zai_quota_base_url"] or values["zai_base_url"]
    values["version"] = values["version"] or VERSION
    return Config(**values)


def start_line(config: Config, metrics_dir: str) -> tuple[str, dict]:
    """What this instance is, in one log line: where it listens, where it sends, and what is on.
    Never a key; the storage URI (which may carry a Redis password) only by its scheme."""
    keys = len(config.proxy_api_keys)
    auth = f"on ({keys} key{'s' if keys > 1 else ''})" if keys else "off"
    processes = f"{config.web_concurrency} process" + ("es" if config.web_concurrency > 1 else "")
    storage = config.rate_limit_storage_uri.split("://", 1)[0]
    rate = (f"{config.rate_limit_initial:g} req/s to start, {storage}"
            if config.rate_limit_enabled else "off")
    fields = {
        "event": "start", "version": config.version, "variant": config.variant,
        "listen": config.bind, "upstream": config.zai_base_url,
        "openai_path": config.zai_openai_path, "anthropic_path": config.zai_anthropic_path,
        "client_auth": bool(config.proxy_api_keys), "token_counting":
        config.token_counting_enabled, "max_workers": config.max_workers,
        "workers": config.web_concurrency, "threads": config.threads_per_process,
        "rate_limit": storage if config.rate_limit_enabled else "off",
        "metrics_dir": metrics_dir,
    }
    message = (f"zai-proxy {config.version} ({config.variant}) listening on http://{config.bind}"
               f", upstream {config.zai_base_url}; client auth {auth}; token counting "
               f"{'on' if config.token_counting_enabled else 'off'}; capacity "
               f"{config.max_workers} in flight ({processes} x "
               f"{config.threads_per_process} threads); rate limit {rate}")
    return message, fields


def exposure_warning(config: Config) -> str | None:
    """A warning for a proxy that listens beyond this machine without client keys: anyone who
    reaches it may spend the Z.AI key."""
    if config.proxy_api_keys or ipaddress.ip_address(config.bind_host).is_loopback:
        return None
    return (f"client auth is off and the proxy listens on {config.bind_host}: anyone who can "
            "reach this port spends the Z.AI key. Set PROXY_API_KEYS, or limit who reaches it "
            "(BIND_HOST=127.0.0.1 on a workstation, a NetworkPolicy in Kubernetes); README: "
            "Expose it safely")
