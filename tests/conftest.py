"""Shared fixtures: the proxy package on sys.path, the fake Z.AI upstream, the real proxy."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "image"))


@pytest.fixture
def fake_zai():
    from tests.fake_zai import FakeZai
    with FakeZai() as fake:
        yield fake


@pytest.fixture
def start_proxy(tmp_path, fake_zai):
    """start_proxy(**env) → a running ProxyProcess pointed at the fake upstream."""
    from tests.proxy_process import ProxyProcess
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
