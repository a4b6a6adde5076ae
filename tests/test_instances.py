"""Several instances on one machine, started as `make run` starts them (python -m zai_proxy.launch,
which execs the image's gunicorn command): each keeps its own metrics, a folder that a live master
holds is refused, and every start says in one line what the instance is.

These are about processes (gunicorn masters, their workers, their multiprocess folders), so they
start real ones against the fake upstream.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import psutil
import requests

from tools.proxy_process import IMAGE, TEST_ZAI_KEY, ProxyProcess, free_port

CHAT = {"model": "glm-4.7", "messages": [{"role": "user", "content": "hi"}]}
COUNTED = dict(path="/v1/chat/completions", status_code="200")


class LaunchedProxy(ProxyProcess):
    """The proxy as `make run` starts it."""

    command = [sys.executable, "-m", "zai_proxy.launch"]

    def __init__(self, tmp_path, upstream_url, **env):
        super().__init__(tmp_path, upstream_url, RATE_LIMIT_ENABLED="false", **env)
        if "PROMETHEUS_MULTIPROC_DIR" not in env:
            del self.env["PROMETHEUS_MULTIPROC_DIR"]   # what a user's shell has: nothing

    def chat(self, count: int = 1) -> None:
        for _ in range(count):
            assert requests.post(self.url + "/v1/chat/completions", json=CHAT).status_code == 200


def test_two_instances_side_by_side_keep_their_own_metrics(fake_zai, tmp_path):
    temp = tmp_path / "tmp"          # where each instance makes its private folder
    temp.mkdir()
    production = LaunchedProxy(tmp_path / "production", fake_zai.url, TMPDIR=str(temp))
    canary = LaunchedProxy(tmp_path / "canary", fake_zai.url, TMPDIR=str(temp),
                           DEPLOYMENT_VARIANT="canary")
    with production:
        production.chat()
        assert production.wait_value("zai_proxy_requests_total", 1, **COUNTED) == 1
        with canary:
            canary.chat(2)
            assert canary.wait_value("zai_proxy_requests_total", 2, **COUNTED) == 2
            assert production.value("zai_proxy_requests_total", **COUNTED) == 1
            assert len(list(temp.glob("zai-proxy-metrics-*"))) == 2
        production.chat()
        assert production.wait_value("zai_proxy_requests_total", 2, **COUNTED) == 2
        assert len(list(temp.glob("zai-proxy-metrics-*"))) == 1   # the canary's, removed at exit
    assert list(temp.glob("zai-proxy-metrics-*")) == []

    for proxy, variant in ((production, "production"), (canary, "canary")):
        starts = [line for line in proxy.log_lines() if line.get("event") == "start"]
        assert [line["msg"] for line in starts] == [
            f"zai-proxy 0.1.0 ({variant}) listening on http://127.0.0.1:{proxy.port}, upstream "
            f"{fake_zai.url}; client auth off; token counting off; capacity 10 in flight "
            "(1 process x 18 threads); rate limit off"]
        assert starts[0]["metrics_dir"].startswith(str(temp) + "/zai-proxy-metrics-")
        assert not [line for line in proxy.log_lines() if line["level"] == "warning"]
        assert TEST_ZAI_KEY not in proxy.stdout() + proxy.stderr()


def _launch_and_wait(env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(LaunchedProxy.command, cwd=IMAGE, env=env, capture_output=True,
                          text=True, timeout=60)


def _alive(process: psutil.Process) -> bool:
    try:
        return process.status() != psutil.STATUS_ZOMBIE   # a zombie holds no lock any more
    except psutil.NoSuchProcess:
        return False


def _wait_gone(processes: list[psutil.Process], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while any(_alive(process) for process in processes):
        assert time.monotonic() < deadline, "the killed master's workers never exited"
        time.sleep(0.05)


def test_a_folder_a_live_master_holds_is_refused_and_freed_when_it_dies(fake_zai, tmp_path):
    folder = tmp_path / "shared-metrics"
    first = LaunchedProxy(tmp_path / "first", fake_zai.url, PROMETHEUS_MULTIPROC_DIR=str(folder),
                          PROXY_API_KEYS="client-key-1")
    with first:
        requests.post(first.url + "/v1/chat/completions", json=CHAT,
                      headers={"Authorization": "Bearer client-key-1"}).raise_for_status()
        assert first.wait_value("zai_proxy_requests_total", 1, **COUNTED) == 1

        refused = _launch_and_wait({**first.env, "PORT": str(free_port())})
        assert refused.returncode == 2
        assert refused.stderr == (
            f"zai-proxy: configuration error: PROMETHEUS_MULTIPROC_DIR={str(folder)!r} is in use "
            f"by another running zai-proxy (master pid {first.proc.pid}); sharing it would wipe "
            "and mix both instances' metrics. Give each instance its own folder, or leave "
            "PROMETHEUS_MULTIPROC_DIR unset for a private one\n")
        assert first.value("zai_proxy_requests_total", **COUNTED) == 1   # nothing was wiped

        # A master killed outright leaves its pid in the lock file, but no lock.
        workers = psutil.Process(first.proc.pid).children()
        first.stop(signal.SIGKILL)
        _wait_gone(workers)   # orphaned workers notice their master is gone and exit

    assert (folder / "master.lock").read_text().strip() == str(first.proc.pid)
    second = LaunchedProxy(tmp_path / "second", fake_zai.url,
                           PROMETHEUS_MULTIPROC_DIR=str(folder))
    with second:
        assert (folder / "master.lock").read_text().strip() == str(second.proc.pid)
        assert second.value("zai_proxy_requests_total", **COUNTED) == 0   # the old counts wiped
        second.chat()
        assert second.wait_value("zai_proxy_requests_total", 1, **COUNTED) == 1
    start = [line for line in first.log_lines() if line.get("event") == "start"][0]
    assert "client auth on (1 key)" in start["msg"] and "client-key-1" not in first.stdout()
