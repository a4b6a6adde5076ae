"""Shared fixtures: the fake Z.AI upstream and the real proxy (pyproject.toml sets sys.path)."""

from __future__ import annotations

import pytest


@pytest.fixture
def fake_zai():
    from tools.fake_zai import FakeZai
    with FakeZai() as fake:
        yield fake


@pytest.fixture
def start_proxy(tmp_path, fake_zai):
    """start_proxy(**env) → a running ProxyProcess pointed at the fake upstream."""
    from tools.proxy_process import ProxyProcess
    started = []

    def start(upstream_url=None, **env):
        proxy = ProxyProcess(tmp_path, upstream_url or fake_zai.url, **env).start()
        started.append(proxy)
        return proxy

    yield start
    for proxy in started:
        proxy.stop()


@pytest.fixture
def proxy(start_proxy):
    """The proxy with default settings (production variant, counting off)."""
    return start_proxy(RATE_LIMIT_ENABLED="false")


@pytest.fixture
def inprocess_proxy(fake_zai):
    """inprocess_proxy(**env) → the app on loopback in this process, waits recorded."""
    from tests.inprocess import InProcessProxy
    started = []

    def start(upstream_url=None, **env):
        proxy = InProcessProxy(upstream_url or fake_zai.url, **env)
        started.append(proxy)
        return proxy

    yield start
    for proxy in started:
        proxy.stop()
