"""Every setting of the proxy, declared once: variable, Config field, kind and bounds, default,
meaning, and the chart value that renders it.

config.load() reads the environment through this table; the README's configuration table is
generated from it (`make settings-docs`), and tests/test_settings.py checks the chart's
`_env.tpl`, values.yaml comments and schema bounds against it. A new setting is one row here,
one field of `config.Config`, and (if operators set it in Kubernetes) one chart value.
"""

from __future__ import annotations

import dataclasses

from .setting_kinds import (AbsolutePath, Boolean, Choice, Duration, Host, Integer, JsonObject,
                            Key, KeyList, Kind, Labels, Networks, Number, Origin, StorageUri, Text,
                            UrlPath, VariantLabel)

HOUR = 3600.0
DAY = 24 * HOUR


@dataclasses.dataclass(frozen=True)
class Setting:
    name: str                 # the environment variable
    field: str | None         # the Config attribute; None for a variable a library reads
    kind: Kind
    default: str | None       # as an operator would write it; None: unset
    help: str                 # the README's "meaning" column
    file: bool = False        # NAME_FILE holds the value instead, and wins over NAME
    required: bool = False
    chart: str | None = None  # the values.yaml key `_env.tpl` renders into this variable
    chart_default: str | None = None  # when the chart deliberately ships another default
    shown_default: str | None = None  # the README's default, when the text above would mislead

    @property
    def names(self) -> tuple[str, ...]:
        return (self.name, self.name + "_FILE") if self.file else (self.name,)


MODEL_LABELS = ("glm-4.5,glm-4.5-air,glm-4.5-flash,glm-4.5v,glm-4.6,glm-4.7,glm-4.7-flash,"
                "glm-5,glm-5-turbo,glm-5.1")

SETTINGS: tuple[Setting, ...] = (
    # Upstream
    Setting("ZAI_API_KEY", "zai_api_key", Key(), None, "the Z.AI key, injected upstream",
            file=True, required=True, shown_default="— (required)"),
    Setting("ZAI_BASE_URL", "zai_base_url", Origin(), "https://api.z.ai", "upstream origin",
            chart="zai.baseUrl"),
    Setting("ZAI_OPENAI_PATH", "zai_openai_path", UrlPath(), "/api/paas/v4",
            "OpenAI surface (Coding Plan: `/api/coding/paas/v4`)", chart="zai.openaiPath"),
    Setting("ZAI_ANTHROPIC_PATH", "zai_anthropic_path", UrlPath(), "/api/anthropic",
            "Anthropic surface", chart="zai.anthropicPath"),
    Setting("UPSTREAM_CONNECT_TIMEOUT", "connect_timeout", Duration(0.001, 10 * 60), "10s",
            "connect timeout", chart="config.upstreamConnectTimeout"),
    Setting("UPSTREAM_READ_TIMEOUT", "read_timeout", Duration(0.001, DAY), "300s",
            "idle time allowed between upstream bytes (not a total cap)",
            chart="config.upstreamReadTimeout"),
    Setting("UPSTREAM_TOTAL_TIMEOUT", "total_timeout", Duration(0.1, DAY), "10m",
            "total time for a request's upstream work, from its first attempt to the last byte "
            "of the answer (retries, waits and streams included); then 504, or a stream ends "
            "with an error event", chart="config.upstreamTotalTimeout"),
    # Listening and process model
    Setting("BIND_HOST", "bind_host", Host(), "127.0.0.1",
            "address to listen on: this machine only unless told otherwise (`0.0.0.0`: every "
            "interface; the image and the chart set it)", chart="config.bindHost",
            chart_default="0.0.0.0"),
    Setting("PORT", "port", Integer(1, 65535), "8080", "listen port", chart="config.port"),
    Setting("DEPLOYMENT_VARIANT", "variant", VariantLabel(), "production",
            "the `variant` label on every metric", chart="variant"),
    Setting("MAX_WORKERS", "max_workers", Integer(1, 10_000), "10",
            "proxied requests in flight per pod; beyond → 503 + `Retry-After`",
            chart="config.maxWorkers"),
    Setting("WEB_CONCURRENCY", "web_concurrency", Integer(1, 64), "1",
            "gunicorn worker processes; `MAX_WORKERS` is split between them",
            chart="config.webConcurrency"),
    Setting("GRACEFUL_TIMEOUT", "graceful_timeout", Duration(0, DAY), "600s",
            "how long SIGTERM waits for in-flight streams", chart="config.gracefulTimeout"),
    # Clients
    Setting("PROXY_API_KEYS", "proxy_api_keys", KeyList(), None,
            "comma-separated client keys; when set, clients must send one (`Authorization: "
            "Bearer` or `x-api-key`); compared in constant time, never forwarded. A list with no "
            "key in it is refused", file=True, chart="proxyApiKeys.keys"),
    Setting("ADMIN_TOKEN", "admin_token", Key(), None,
            "enables `POST /admin/reset-rate-limit` (`Authorization: Bearer <token>`)",
            file=True, chart="adminToken.value"),
    Setting("MAX_REQUEST_BYTES", "max_request_bytes", Integer(1024, 1024 ** 3), "10485760",
            "larger bodies → 413", chart="config.maxRequestBytes"),
    Setting("CLIENT_HEADER_TIMEOUT", "client_header_timeout", Duration(0.1, HOUR), "10s",
            "total time for a request head (from the connection's start, or from the first byte "
            "on a kept-alive one); then 408 and the connection is closed. Heads are read without "
            "holding a worker thread", chart="config.clientHeaderTimeout"),
    Setting("CLIENT_BODY_TIMEOUT", "client_body_timeout", Duration(0.1, HOUR), "60s",
            "total time for a request body (not a pause between bytes); then 408 (the body is "
            "read before a `MAX_WORKERS` slot is taken)", chart="config.clientBodyTimeout"),
    Setting("CLIENT_WRITE_TIMEOUT", "client_write_timeout", Duration(0.1, HOUR), "60s",
            "total time a client may take to accept one write of the answer (a piece of a "
            "stream, or a whole answer); then the connection is reset, the slot freed and a "
            "streaming upstream connection closed; logged `write_timeout`",
            chart="config.clientWriteTimeout"),
    Setting("TRUSTED_PROXY_CIDRS", "trusted_proxy_cidrs", Networks(), None,
            "peers whose `X-Forwarded-For` is believed for fairness",
            chart="config.trustedProxyCidrs"),
    # Metrics and logs
    Setting("MODEL_LABELS", "model_labels", Labels(), MODEL_LABELS,
            "allowed values of the `model` label; anything else is `other`",
            chart="config.modelLabels"),
    Setting("LOG_LEVEL", "log_level", Choice("debug", "info", "warning", "error"), "info",
            "log level", chart="config.logLevel"),
    Setting("PROMETHEUS_MULTIPROC_DIR", "multiproc_dir", AbsolutePath(), None,
            "multiprocess metrics folder, wiped at start; unset, each instance makes its own "
            "under the temp dir and removes it at exit. A folder in use by another live "
            "instance is refused (the image sets `/tmp/zai-proxy-metrics`)",
            shown_default="unset: a private folder"),
    # Rate limiting
    Setting("RATE_LIMIT_ENABLED", "rate_limit_enabled", Boolean(), "true",
            "adaptive admission on/off", chart="rateLimit.enabled"),
    Setting("RATE_LIMIT_STORAGE_URI", "rate_limit_storage_uri", StorageUri(), "memory://",
            "`redis://…` shares budget and learned state across workers and pods (the file form "
            "keeps a Redis password out of the environment)", file=True,
            chart="rateLimit.storageUri"),
    Setting("RATE_LIMIT_INITIAL", "rate_limit_initial", Number(0.01, 1_000_000), "10",
            "starting rate, req/s (between `RATE_LIMIT_MIN` and `RATE_LIMIT_MAX`)",
            chart="rateLimit.initial"),
    Setting("RATE_LIMIT_MIN", "rate_limit_min", Number(0.01, 1_000_000), "1",
            "lowest rate, req/s", chart="rateLimit.min"),
    Setting("RATE_LIMIT_MAX", "rate_limit_max", Number(0.01, 1_000_000), "50",
            "highest rate, req/s", chart="rateLimit.max"),
    Setting("RATE_LIMIT_WINDOW", "rate_limit_window", Duration(0.1, HOUR), "30s",
            "controller window", chart="rateLimit.window"),
    Setting("RATE_LIMIT_CEILING_ALPHA", "rate_limit_ceiling_alpha", Number(0, 1), "0.3",
            "EWMA weight of the learned ceiling", chart="rateLimit.ceilingAlpha"),
    Setting("RATE_LIMIT_HOLD_MARGIN", "rate_limit_hold_margin", Number(0, 0.5), "0.02",
            "hold point below the ceiling", chart="rateLimit.holdMargin"),
    Setting("RATE_LIMIT_PROBE_INTERVAL", "rate_limit_probe_interval", Integer(1, 10_000), "10",
            "clean windows between probes above the ceiling", chart="rateLimit.probeInterval"),
    Setting("RATE_LIMIT_STATE_FILE", "rate_limit_state_file", AbsolutePath(empty_disables=True),
            "/tmp/zai-proxy/ceiling.json", "learned state file (empty disables)",
            chart="rateLimit.stateFile"),
    Setting("RATE_LIMIT_STATE_MAX_AGE", "rate_limit_state_max_age", Duration(0, 30 * DAY), "6h",
            "older state is ignored", chart="rateLimit.stateMaxAge"),
    Setting("RATE_LIMIT_MAX_WAIT", "rate_limit_max_wait", Duration(0, HOUR), "30s",
            "longer waits (admission, or a retry) → 429 + `Retry-After` (`0`: never wait)",
            chart="rateLimit.maxWait"),
    # Retries
    Setting("MAX_RETRIES", "max_retries", Integer(0, 20), "3", "upstream retries per request",
            chart="config.maxRetries"),
    Setting("RETRY_BACKOFF_BASE", "retry_backoff_base", Duration(0, 10 * 60), "1s",
            "backoff base: 1 s, 2 s, 4 s…", chart="config.retryBackoffBase"),
    # Tokens
    Setting("TOKEN_COUNTING_ENABLED", "token_counting_enabled", Boolean(), "false",
            "tokens and cost metrics (needs tiktoken's files: `TIKTOKEN_CACHE_DIR`)",
            chart="tokenCounting.enabled"),
    Setting("TOKENIZER_ENCODING", "tokenizer_encoding", Text(), "cl100k_base",
            "tiktoken encoding (GLM's own tokenizer differs: local counts are estimates)",
            chart="tokenCounting.encoding"),
    Setting("TOKEN_COUNT_MAX_CHARS", "token_count_max_chars", Integer(0, 100_000_000), "200000",
            "input beyond this is estimated (chars/4) so counting time stays bounded",
            chart="tokenCounting.maxChars"),
    Setting("TOKEN_PRICES", "token_prices", JsonObject(), None,
            "USD per 1M tokens, merged over the built-in table: `{\"glm-4.7\": {\"input\": 0.6, "
            "\"output\": 2.2, \"cache_read\": 0.11, \"cache_write\": 0}}`; a `default` row prices "
            "unknown models", file=True, chart="tokenCounting.prices", shown_default="built-in"),
    Setting("TIKTOKEN_CACHE_DIR", None, AbsolutePath(), None,
            "where tiktoken's files are read from; nothing is downloaded at run time (the image "
            "bakes them in `/opt/tiktoken`; locally `make tiktoken-cache` fills "
            "`.cache/tiktoken`, which the Makefile sets)", shown_default="baked in the image"),
    # Quota
    Setting("QUOTA_POLL_ENABLED", "quota_poll_enabled", Boolean(), "false",
            "poll Z.AI's quota endpoint", chart="config.quota.pollEnabled"),
    Setting("QUOTA_POLL_INTERVAL", "quota_poll_interval", Duration(1, DAY), "60s",
            "quota poll interval", chart="config.quota.pollInterval"),
    Setting("QUOTA_POLL_TIMEOUT", "quota_poll_timeout", Duration(0.1, 10 * 60), "5s",
            "quota poll timeout", chart="config.quota.pollTimeout"),
    Setting("QUOTA_STALE_AFTER", "quota_stale_after", Duration(1, 30 * DAY), "15m",
            "an older quota sample counts as unknown", chart="config.quota.staleAfter"),
    Setting("ZAI_QUOTA_BASE_URL", "zai_quota_base_url", Origin(), None,
            "quota endpoint origin", chart="config.quota.baseUrl",
            shown_default="`ZAI_BASE_URL`"),
    Setting("QUOTA_ENFORCEMENT_ENABLED", "quota_enforcement_enabled", Boolean(), "false",
            "answer 429 while a quota window is confirmed exhausted",
            chart="config.quota.enforcementEnabled"),
    # Build facts, baked into the image
    Setting("ZAI_PROXY_VERSION", "version", Text(), None, "`zai_proxy_build_info` label",
            shown_default="the code's version"),
    Setting("ZAI_PROXY_COMMIT", "commit", Text(), "unknown", "`zai_proxy_build_info` label"),
    Setting("ZAI_PROXY_BUILD_TIME", "build_time", Text(), "unknown",
            "`zai_proxy_build_info` label"),
)

BY_NAME = {setting.name: setting for setting in SETTINGS}
BY_FIELD = {setting.field: setting for setting in SETTINGS if setting.field}


def _default(setting: Setting):
    return setting.kind.unset if setting.default is None else setting.kind.parse(setting.default)


# Parsed once: a default the table cannot parse fails at import, not at the first request.
DEFAULTS = {field: _default(setting) for field, setting in BY_FIELD.items()}
