"""Run the real proxy (`gunicorn -c gunicorn.conf.py 'app:create_app()'` inside image/) for a test.

Every test talks to it over real HTTP on loopback, exactly as a client would; its stdout and
stderr go to files so tests can assert on the log lines (and grep them for secrets).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import requests

from tools.metrics_text import samples

ROOT = Path(__file__).resolve().parent.parent
IMAGE = ROOT / "image"
TEST_ZAI_KEY = "zai-test-key-0123456789"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ProxyReadings:
    """What a test reads from a running proxy, over HTTP like a scraper and from its log lines:
    shared by ProxyProcess (gunicorn) and tests.inprocess.InProcessProxy, so a test can move
    between the two without changing an assertion. Needs `url` and `stdout()`."""

    url: str

    def stdout(self) -> str:
        raise NotImplementedError

    def log_lines(self) -> list[dict]:
        lines = []
        for line in self.stdout().splitlines():
            try:
                lines.append(json.loads(line))
            except ValueError:
                pass
        return lines

    def request_logs(self) -> list[dict]:
        return [line for line in self.log_lines() if line.get("msg") == "request"]

    def wait_for_log_lines(self, until=lambda lines: True, timeout: float = 15.0) -> list[dict]:
        """The JSON log lines, once `until(lines)` holds or `timeout` has passed."""
        deadline = time.monotonic() + timeout
        while True:
            lines = self.log_lines()
            if until(lines) or time.monotonic() > deadline:
                return lines
            time.sleep(0.02)

    def wait_for_request_logs(self, count: int, timeout: float = 15.0) -> list[dict]:
        """The request log lines, once at least `count` are written (each is written when its
        response has been sent, so just after the client has it)."""
        lines = self.wait_for_log_lines(
            lambda lines: len([line for line in lines if line.get("msg") == "request"]) >= count,
            timeout)
        return [line for line in lines if line.get("msg") == "request"]

    def metrics_text(self) -> str:
        response = requests.get(self.url + "/metrics", timeout=5)
        response.raise_for_status()
        return response.text

    def metrics(self) -> dict[tuple, float]:
        """{(sample name, frozenset(labels.items())): value} from /metrics."""
        return samples(self.metrics_text())

    def value(self, name: str, **labels) -> float:
        """Sum of the samples of `name` whose labels include `labels` (0 when absent)."""
        total = 0.0
        for (sample_name, sample_labels), value in self.metrics().items():
            if sample_name == name and set(labels.items()) <= sample_labels:
                total += value
        return total

    def wait_value(self, name: str, expected: float, timeout: float = 5.0, **labels) -> float:
        """value(), polled until it equals `expected` or `timeout` passes. The families recorded
        when a response ends (requests, duration, response size, TTFB, disconnects) are written
        just after the client has the last byte, so a test that has its answer reads them so."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.value(name, **labels)
            if value == expected or time.monotonic() > deadline:
                return value
            time.sleep(0.02)


def await_own_worker(proc: subprocess.Popen, url: str, pid_path: str, stdout, stop,
                     timeout: float, what: str, output) -> bool:
    """Wait for a gunicorn started as `proc`: True once /readyz answers 200 and `pid_path` names
    one of *its* workers (another process may hold the port: see ProxyProcess.start); False when
    gunicorn logs its port as taken (`stop` is then called with SIGKILL). Raises, with
    `output()`, if it exits or is not ready within `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}:\n{output()}")
        if "Connection in use" in stdout():
            stop(signal.SIGKILL)
            return False
        if _answered_by_own_worker(proc, url, pid_path):
            return True
        time.sleep(0.05)
    stop()
    raise RuntimeError(f"{what} did not become ready:\n{output()}")


def _answered_by_own_worker(proc: subprocess.Popen, url: str, pid_path: str) -> bool:
    try:
        ready = requests.get(url + "/readyz", timeout=1).status_code == 200
        pid = requests.get(url + pid_path, timeout=1).json().get("pid")
    except (requests.ConnectionError, requests.Timeout, ValueError):
        return False  # not listening yet, workers still booting, or not ours at all
    try:   # recursive: the master may run under a prefix (a mount namespace)
        children = {child.pid for child in psutil.Process(proc.pid).children(recursive=True)}
    except psutil.NoSuchProcess:
        return False
    return ready and pid in children


class ProxyProcess(ProxyReadings):
    # The image's CMD, run inside image/.
    command = [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "app:create_app()"]

    def __init__(self, tmp_path: Path, upstream_url: str, **env):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.dir = tmp_path / f"proxy-{self.port}"
        self.dir.mkdir(parents=True)
        self.stdout_path = self.dir / "stdout.log"
        self.stderr_path = self.dir / "stderr.log"
        self.env = {
            "PATH": os.environ["PATH"],
            "PORT": str(self.port),
            "ZAI_BASE_URL": upstream_url,
            "ZAI_API_KEY": TEST_ZAI_KEY,
            "PROMETHEUS_MULTIPROC_DIR": str(self.dir / "metrics"),
            "RATE_LIMIT_STATE_FILE": str(self.dir / "ceiling.json"),
            "GRACEFUL_TIMEOUT": "30",
            "RETRY_BACKOFF_BASE": "10ms",
        }
        if "TIKTOKEN_CACHE_DIR" in os.environ:
            self.env["TIKTOKEN_CACHE_DIR"] = os.environ["TIKTOKEN_CACHE_DIR"]
        self.env.update({k: str(v) for k, v in env.items()})
        self.proc: subprocess.Popen | None = None
        self._stop_sent = False

    def start(self, timeout: float = 60.0) -> "ProxyProcess":
        # 60 s: a wait for readiness that ends as soon as a worker answers; two suites side by
        # side on 2 cores were seen taking over 20 s to boot a two-worker gunicorn.
        # free_port() closes the port it found before gunicorn binds it, so another process
        # (a parallel proxy, a test's own client socket) can take it in between. Then gunicorn
        # retries the bind, and whoever holds the port would answer our readiness probe; so
        # ready means "answered by one of *our* workers", and a lost port means a new one.
        for _ in range(3):
            if self._boot(timeout):
                return self
            self._move_to(free_port())
        raise RuntimeError(f"proxy found no free port in 3 tries:\n{self.stdout()[-2000:]}")

    def _boot(self, timeout: float) -> bool:
        """True once one of this gunicorn's workers answers; False if its port was taken."""
        self._stop_sent = False
        self.proc = subprocess.Popen(
            self.command, cwd=IMAGE, env=self.env, stdout=open(self.stdout_path, "wb"),
            stderr=open(self.stderr_path, "wb"))
        return await_own_worker(self.proc, self.url, "/health", self.stdout, self.stop, timeout,
                                "proxy", self.stderr)

    def _move_to(self, port: int) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.env["PORT"] = str(port)

    def signal_stop(self, sig=signal.SIGTERM) -> None:
        """Ask gunicorn to stop without waiting for it: several proxies stopped together take
        about one exit's time (about a second), not one each. stop() then waits."""
        if self.proc is not None and self.proc.poll() is None and not self._stop_sent:
            self.proc.send_signal(sig)
            self._stop_sent = True

    def stop(self, sig=signal.SIGTERM, timeout: float = 30.0) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.signal_stop(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
