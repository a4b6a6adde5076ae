"""Shared fixtures: the fake Z.AI upstream and the proxy (pyproject.toml sets sys.path).

Which one to use (DEVELOPERS.md says more):
- `proxy` / `start_proxy(**env)`: the app in this process on loopback, milliseconds to start.
  The default for anything about the request path: routes, bodies, errors, retries, streams,
  hang-ups, metrics, logs, tokens, rate limits in one process.
- `start_gunicorn(**env)`: the real `gunicorn ... 'app:create_app()'` command in its own process,
  a second or more to start and stop. Only for what gunicorn or processes do: several workers,
  signals and drain, multiprocess metrics, gunicorn's timeouts, thread pool and own errors.
Both return objects with the same readings (url, port, value, wait_value, metrics,
request_logs, stdout), so a test moves between them without changing an assertion.
"""

from __future__ import annotations

import pytest


@pytest.hookimpl(tryfirst=True)     # before `-m` deselects anything
def pytest_collection_modifyitems(items):
    """Tests marked `slow` (tens of seconds of waiting by design: alert windows, a soak) first.
    A parallel run (the Makefile's pytest -n) hands work out in this order (tests/scheduling.py); started last, one of
    them would keep a worker busy long after the other has run out of tests.

    `make test-python-tools` collects only the files whose text mentions needs_tools (Makefile):
    a test that gets the mark some other way would run in neither part, so it is refused."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)
    texts: dict = {}
    stray = sorted({str(item.path) for item in items if item.get_closest_marker("needs_tools")
                    and "needs_tools" not in texts.setdefault(item.path, item.path.read_text())})
    if stray:
        raise pytest.UsageError(f"needs_tools tests in files that do not mention it: {stray}")


def pytest_xdist_make_scheduler(config, log):
    """loadscope that keeps the slow units on separate workers (tests/scheduling.py)."""
    if config.getvalue("dist") == "loadscope":
        from tests.scheduling import SlowUnitsApart
        return SlowUnitsApart(config, log)
    return None


@pytest.fixture
def fake_zai():
    from tools.fake_zai import FakeZai
    with FakeZai() as fake:
        yield fake


@pytest.fixture
def start_proxy(fake_zai):
    """start_proxy(**env) → the proxy app served in this process (tests.inprocess.InProcessProxy),
    pointed at the fake upstream unless `upstream_url` says otherwise."""
    from tests.inprocess import InProcessProxy
    started = []

    def start(upstream_url=None, **env):
        proxy = InProcessProxy(upstream_url or fake_zai.url, **env)
        started.append(proxy)
        return proxy

    yield start
    for proxy in started:
        proxy.stop()


# The name the in-process fixture had before it became the default.
inprocess_proxy = start_proxy


@pytest.fixture
def proxy(start_proxy):
    """The in-process proxy with default settings (production variant, counting off)."""
    return start_proxy(RATE_LIMIT_ENABLED="false")


@pytest.fixture
def start_gunicorn(tmp_path, fake_zai):
    """start_gunicorn(**env) → the real proxy command in its own process
    (tools.proxy_process.ProxyProcess): for what is about gunicorn and processes only."""
    from tools.proxy_process import ProxyProcess
    started = []

    def start(upstream_url=None, **env):
        proxy = ProxyProcess(tmp_path, upstream_url or fake_zai.url, **env).start()
        started.append(proxy)
        return proxy

    yield start
    for proxy in started:
        proxy.signal_stop()        # all at once, then each is waited for
    for proxy in started:
        proxy.stop()
