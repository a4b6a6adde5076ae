"""The test harness itself: a proxy whose port is taken before it binds still starts, on its own
port, instead of passing another process's answers off as its own (a race CI can hit when
proxies start in parallel)."""

from __future__ import annotations

import psutil
import requests

from tools.proxy_process import ProxyProcess


def test_a_proxy_whose_port_was_taken_moves_to_a_free_one(start_gunicorn, fake_zai, tmp_path):
    first = start_gunicorn(RATE_LIMIT_ENABLED="false")
    second = ProxyProcess(tmp_path / "second", fake_zai.url, RATE_LIMIT_ENABLED="false")
    second._move_to(first.port)        # what a lost race between free_port() and bind() leaves
    try:
        second.start()
        assert second.port != first.port
        own_workers = {child.pid for child in psutil.Process(second.proc.pid).children()}
        assert requests.get(second.url + "/health").json()["pid"] in own_workers
    finally:
        second.stop()
    assert requests.get(first.url + "/readyz").status_code == 200
