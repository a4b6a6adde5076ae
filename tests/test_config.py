"""Configuration is read once, validated, and a bad value names its variable."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tools.proxy_process import IMAGE
from zai_proxy import config


def test_defaults():
    cfg = config.load({"ZAI_API_KEY": "k"})
    assert cfg.port == 8080
    assert cfg.openai_base == "https://api.z.ai/api/paas/v4"
    assert cfg.anthropic_base == "https://api.z.ai/api/anthropic"
    assert cfg.max_workers == 10 and cfg.variant == "production"
    assert cfg.max_request_bytes == 10 * 1024 * 1024
    assert cfg.token_counting_enabled is False
    assert cfg.threads_per_process > cfg.max_workers


def test_key_file_wins_over_the_variable(tmp_path):
    key_file = tmp_path / "key"
    key_file.write_text("from-file\n")
    cfg = config.load({"ZAI_API_KEY": "from-env", "ZAI_API_KEY_FILE": str(key_file)})
    assert cfg.zai_api_key == "from-file"
    assert "from-file" not in repr(cfg)


@pytest.mark.parametrize("env, variable", [
    ({}, "ZAI_API_KEY"),
    ({"ZAI_API_KEY_FILE": "/nonexistent/key"}, "ZAI_API_KEY_FILE"),
    ({"ZAI_API_KEY": "k", "MAX_WORKERS": "ten"}, "MAX_WORKERS"),
    ({"ZAI_API_KEY": "k", "MAX_WORKERS": "0"}, "MAX_WORKERS"),
    ({"ZAI_API_KEY": "k", "PORT": "70000"}, "PORT"),
    ({"ZAI_API_KEY": "k", "ZAI_BASE_URL": "api.z.ai"}, "ZAI_BASE_URL"),
    ({"ZAI_API_KEY": "k", "ZAI_BASE_URL": "https://api.z.ai/api/paas/v4"}, "ZAI_BASE_URL"),
    ({"ZAI_API_KEY": "k", "ZAI_OPENAI_PATH": "api/paas"}, "ZAI_OPENAI_PATH"),
    ({"ZAI_API_KEY": "k", "UPSTREAM_READ_TIMEOUT": "5 minutes"}, "UPSTREAM_READ_TIMEOUT"),
    ({"ZAI_API_KEY": "k", "TOKEN_COUNTING_ENABLED": "maybe"}, "TOKEN_COUNTING_ENABLED"),
    ({"ZAI_API_KEY": "k", "RATE_LIMIT_INITIAL": "100"}, "RATE_LIMIT_INITIAL"),
    ({"ZAI_API_KEY": "k", "RATE_LIMIT_STORAGE_URI": "mongodb://x"}, "RATE_LIMIT_STORAGE_URI"),
    ({"ZAI_API_KEY": "k", "LOG_LEVEL": "loud"}, "LOG_LEVEL"),
    ({"ZAI_API_KEY": "k", "TOKEN_PRICES": "{"}, "TOKEN_PRICES"),
    ({"ZAI_API_KEY": "k", "TOKEN_PRICES": '{"glm-4.7": {"input": "cheap"}}'}, "TOKEN_PRICES"),
    ({"ZAI_API_KEY": "k", "TRUSTED_PROXY_CIDRS": "10.0.0.0/33"}, "TRUSTED_PROXY_CIDRS"),
    ({"ZAI_API_KEY": "k", "WEB_CONCURRENCY": "4", "MAX_WORKERS": "2"}, "MAX_WORKERS"),
])
def test_bad_values_name_the_variable(env, variable):
    with pytest.raises(config.ConfigError, match=variable):
        config.load(env)


def test_a_key_with_a_line_break_is_refused_without_printing_it(tmp_path):
    key_file = tmp_path / "key"
    key_file.write_text("sk-secret-value\nrotated by ops\n")
    with pytest.raises(config.ConfigError, match="ZAI_API_KEY_FILE") as refused:
        config.load({"ZAI_API_KEY_FILE": str(key_file)})
    assert "sk-secret-value" not in str(refused.value)
    with pytest.raises(config.ConfigError, match="PROXY_API_KEYS"):
        config.load({"ZAI_API_KEY": "k", "PROXY_API_KEYS": "a,b\x07c"})


def test_storage_uri_may_come_from_a_file(tmp_path):
    uri_file = tmp_path / "uri"
    uri_file.write_text("redis://:s3cret@redis:6379/0\n")
    cfg = config.load({"ZAI_API_KEY": "k", "RATE_LIMIT_STORAGE_URI_FILE": str(uri_file)})
    assert cfg.rate_limit_storage_uri == "redis://:s3cret@redis:6379/0"


def test_durations_and_variant_sanitising():
    cfg = config.load({"ZAI_API_KEY": "k", "UPSTREAM_READ_TIMEOUT": "5m",
                       "UPSTREAM_CONNECT_TIMEOUT": "250ms", "GRACEFUL_TIMEOUT": "90",
                       "DEPLOYMENT_VARIANT": "Canary {x=\"1\"}"})
    assert cfg.read_timeout == 300 and cfg.connect_timeout == 0.25
    assert cfg.graceful_timeout == 90
    assert cfg.variant == "canary-x-1"


@pytest.mark.parametrize("env, variable", [
    ({"PROXY_API_KEYS": ","}, "PROXY_API_KEYS"),
    ({"PROXY_API_KEYS": " , ,, "}, "PROXY_API_KEYS"),
    ({"PROXY_API_KEYS": ""}, "PROXY_API_KEYS"),
])
def test_a_key_list_with_no_key_refuses_to_start_instead_of_turning_auth_off(env, variable):
    with pytest.raises(config.ConfigError, match=f"^{variable} holds no key"):
        config.load({"ZAI_API_KEY": "k", **env})


def test_a_key_file_of_separators_only_refuses_to_start(tmp_path):
    key_file = tmp_path / "keys"
    key_file.write_text(" ,\n, ,\n")
    with pytest.raises(config.ConfigError, match="^PROXY_API_KEYS_FILE=.* holds no key"):
        config.load({"ZAI_API_KEY": "k", "PROXY_API_KEYS_FILE": str(key_file)})


@pytest.mark.parametrize("variable", ["ZAI_BASE_URL", "ZAI_QUOTA_BASE_URL"])
@pytest.mark.parametrize("url", ["http://ops-login:s3cret-pw@upstream.example",
                                 "https://ops-login:s3cret-pw@upstream.example:8443/api/paas/v4",
                                 "https://s3cret-pw@upstream.example"])
def test_credentials_in_an_upstream_url_are_refused_without_echoing_them(variable, url):
    with pytest.raises(config.ConfigError, match=f"^{variable} must not carry credentials") as e:
        config.load({"ZAI_API_KEY": "k", variable: url})
    assert "s3cret-pw" not in str(e.value) and "ops-login" not in str(e.value)


# Values that, accepted at start, would fail every request (or the boot with a traceback). Each is
# refused at start with a message that names the variable.
@pytest.mark.parametrize("env, variable", [
    ({"UPSTREAM_READ_TIMEOUT": "99999999h"}, "UPSTREAM_READ_TIMEOUT"),
    ({"UPSTREAM_CONNECT_TIMEOUT": "9" * 400}, "UPSTREAM_CONNECT_TIMEOUT"),
    ({"GRACEFUL_TIMEOUT": "100000h"}, "GRACEFUL_TIMEOUT"),
    ({"RATE_LIMIT_MAX_WAIT": "1000000000"}, "RATE_LIMIT_MAX_WAIT"),
    ({"RETRY_BACKOFF_BASE": "1000h"}, "RETRY_BACKOFF_BASE"),
    ({"CLIENT_BODY_TIMEOUT": "1000000h"}, "CLIENT_BODY_TIMEOUT"),
    ({"QUOTA_POLL_INTERVAL": "100000h"}, "QUOTA_POLL_INTERVAL"),
    ({"ZAI_BASE_URL": "https://api.z.ai:99999"}, "ZAI_BASE_URL"),
    ({"ZAI_BASE_URL": "https://api.z.ai:0"}, "ZAI_BASE_URL"),
    ({"ZAI_QUOTA_BASE_URL": "https://api.z.ai:port"}, "ZAI_QUOTA_BASE_URL"),
    ({"RATE_LIMIT_STORAGE_URI": "redis://redis:70000/0"}, "RATE_LIMIT_STORAGE_URI"),
    ({"RATE_LIMIT_MAX": "inf"}, "RATE_LIMIT_MAX"),
    ({"RATE_LIMIT_MAX": "nan"}, "RATE_LIMIT_MAX"),
    ({"RATE_LIMIT_MIN": "-inf"}, "RATE_LIMIT_MIN"),
    ({"RATE_LIMIT_CEILING_ALPHA": "nan"}, "RATE_LIMIT_CEILING_ALPHA"),
    ({"RATE_LIMIT_HOLD_MARGIN": "NaN"}, "RATE_LIMIT_HOLD_MARGIN"),
    ({"MAX_REQUEST_BYTES": str(10 ** 13)}, "MAX_REQUEST_BYTES"),
    ({"RATE_LIMIT_PROBE_INTERVAL": str(10 ** 12)}, "RATE_LIMIT_PROBE_INTERVAL"),
    ({"BIND_HOST": "all-interfaces"}, "BIND_HOST"),
])
def test_absurd_values_are_refused_at_start_naming_the_variable(env, variable):
    with pytest.raises(config.ConfigError, match=f"^{variable}[= ]"):
        config.load({"ZAI_API_KEY": "k", **env})


@pytest.mark.parametrize("variable, value", [
    ("ZAI_API_KEY", "sk-ключ-secret"),
    ("PROXY_API_KEYS", "client-one,klient-zwei-ü-secret"),
    ("ADMIN_TOKEN", "admin-tök-secret"),
    ("ZAI_API_KEY", "sk-secret\u2028rotated"),
])
def test_keys_that_cannot_be_header_values_are_refused_without_printing_them(variable, value):
    env = {"ZAI_API_KEY": "k", variable: value}
    with pytest.raises(config.ConfigError, match=f"^{variable} holds a character") as refused:
        config.load(env)
    assert "secret" not in str(refused.value) and "ключ" not in str(refused.value)


def test_a_storage_uri_error_never_shows_the_uri():
    with pytest.raises(config.ConfigError, match="^RATE_LIMIT_STORAGE_URI") as refused:
        config.load({"ZAI_API_KEY": "k", "RATE_LIMIT_STORAGE_URI": "redis://:pw-s3cret@r:0/0"})
    assert "pw-s3cret" not in str(refused.value)


def test_a_price_file_may_be_pretty_printed(tmp_path):
    prices = tmp_path / "prices.json"
    prices.write_text('{\n  "glm-4.7": {\n    "input": 0.6,\n    "output": 2.2\n  }\n}\n')
    cfg = config.load({"ZAI_API_KEY": "k", "TOKEN_PRICES_FILE": str(prices)})
    assert cfg.token_prices == {"glm-4.7": {"input": 0.6, "output": 2.2}}


def test_the_listen_address_is_loopback_unless_told_otherwise():
    assert config.load({"ZAI_API_KEY": "k"}).bind == "127.0.0.1:8080"
    assert config.load({"ZAI_API_KEY": "k", "BIND_HOST": "0.0.0.0", "PORT": "9000"}).bind == \
        "0.0.0.0:9000"
    assert config.load({"ZAI_API_KEY": "k", "BIND_HOST": "::"}).bind == "[::]:8080"


def test_the_start_line_says_what_the_instance_is_and_never_shows_a_key():
    cfg = config.load({"ZAI_API_KEY": "zai-secret-key", "PROXY_API_KEYS": "client-a,client-b",
                       "ZAI_BASE_URL": "http://127.0.0.1:9999", "DEPLOYMENT_VARIANT": "canary",
                       "TOKEN_COUNTING_ENABLED": "true", "MAX_WORKERS": "12",
                       "WEB_CONCURRENCY": "2",
                       "RATE_LIMIT_STORAGE_URI": "redis://:redis-pw@r:6379"})
    message, fields = config.start_line(cfg, "/tmp/m")
    assert message == (
        "zai-proxy 0.1.0 (canary) listening on http://127.0.0.1:8080, upstream "
        "http://127.0.0.1:9999; client auth on (2 keys); token counting on; capacity 12 in "
        "flight (2 processes x 14 threads); rate limit 10 req/s to start, redis")
    assert fields["upstream"] == "http://127.0.0.1:9999" and fields["client_auth"] is True
    for secret in ("zai-secret-key", "client-a", "client-b", "redis-pw"):
        assert secret not in message + repr(fields)


def test_listening_beyond_loopback_without_client_keys_is_warned_about():
    exposed = config.load({"ZAI_API_KEY": "k", "BIND_HOST": "0.0.0.0"})
    assert config.exposure_warning(exposed) == (
        "client auth is off and the proxy listens on 0.0.0.0: anyone who can reach this port "
        "spends the Z.AI key. Set PROXY_API_KEYS, or limit who reaches it (BIND_HOST=127.0.0.1 "
        "on a workstation, a NetworkPolicy in Kubernetes); README: Expose it safely")
    assert config.exposure_warning(config.load({"ZAI_API_KEY": "k"})) is None
    assert config.exposure_warning(config.load({"ZAI_API_KEY": "k", "BIND_HOST": "::1"})) is None
    assert config.exposure_warning(config.load({"ZAI_API_KEY": "k", "BIND_HOST": "0.0.0.0",
                                                "PROXY_API_KEYS": "client-a"})) is None


def _launch(env: dict) -> subprocess.CompletedProcess:
    """`make run`'s command: python -m zai_proxy.launch in image/."""
    return subprocess.run([sys.executable, "-m", "zai_proxy.launch"], cwd=IMAGE,
                          env={"PATH": "/usr/bin:/bin", **env}, capture_output=True, text=True,
                          timeout=30)


@pytest.mark.parametrize("env, message", [
    ({"ZAI_API_KEY": "k", "WEB_CONCURRENCY": "lots"}, "WEB_CONCURRENCY='lots' is not an integer"),
    ({"ZAI_API_KEY": "k", "PORT": "http"}, "PORT='http' is not an integer"),
])
def test_make_run_refuses_a_bad_setting_in_one_line(env, message):
    result = _launch(env)
    assert result.returncode == 2
    assert result.stderr == f"zai-proxy: configuration error: {message}\n"
    assert result.stdout == ""


def test_the_server_refuses_to_start_with_a_clear_message():
    result = subprocess.run([sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py",
                             "app:create_app()"], cwd=IMAGE, env={"PATH": "/usr/bin:/bin",
                                                         "MAX_WORKERS": "-1"},
                            capture_output=True, text=True, timeout=30)
    assert result.returncode != 0
    assert "configuration error" in result.stderr
    assert "ZAI_API_KEY" in result.stderr


def test_a_missing_tokenizer_stops_the_server_with_a_clear_message(tmp_path):
    result = subprocess.run([sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py",
                             "app:create_app()"], cwd=IMAGE,
                            env={"PATH": "/usr/bin:/bin", "ZAI_API_KEY": "k",
                                 "TOKEN_COUNTING_ENABLED": "true",
                                 "TIKTOKEN_CACHE_DIR": str(tmp_path),   # empty: no BPE file
                                 "HTTPS_PROXY": "http://127.0.0.1:9",   # and no download
                                 "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "m")},
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert f"TIKTOKEN_CACHE_DIR={str(tmp_path)!r} does not hold tiktoken's cl100k_base file" in \
        result.stderr
    assert "make tiktoken-cache" in result.stderr and "/opt/tiktoken" in result.stderr
    # Says how to provide the file: not which encoding "cannot be loaded", nor a network error.
    assert "TOKENIZER_ENCODING" not in result.stderr and "Error" not in result.stderr
    assert result.stderr.count("\n") == 1



def test_log_lines_never_carry_a_configured_secret():
    import logging

    from zai_proxy import logs
    logs.setup("info", secrets=("zai-secret-key-123", "client-key-456", None))
    formatter = logs.JsonFormatter()
    try:
        raise ValueError("Invalid header value b'Bearer zai-secret-key-123'")
    except ValueError:
        import sys
        record = logging.LogRecord("t", logging.ERROR, __file__, 1, "client-key-456 failed",
                                   None, sys.exc_info())
    line = formatter.format(record)
    assert "zai-secret-key-123" not in line and "client-key-456" not in line
    assert line.count("[redacted]") >= 2     # the message, the exception (and its source line)
    logs.setup("info")
