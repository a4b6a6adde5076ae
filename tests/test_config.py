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
    assert "configuration error" in result.stderr and "TIKTOKEN_CACHE_DIR" in result.stderr


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
