"""Processes under test: the fake upstream, real gunicorn proxies, and what we measure on them.

Works the same from pytest (a tmp_path) and from `python -m tools.reliability` (a temp dir):

    with Stack(directory) as stack:
        proxy = stack.proxy(MAX_WORKERS="8")         # pointed at stack.fake
        workers(proxy)                               # gunicorn worker pids
        threads(pid), rss(pid)                       # thread count, resident memory (bytes)
"""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path
from typing import Callable

import psutil

from tools.fake_zai import FakeZai
from tools.proxy_process import ROOT, ProxyProcess

from .raw_faults import RawFaults

MIB = 1024 * 1024
TIKTOKEN_CACHE = ROOT / ".cache" / "tiktoken"


class Stack:
    """One fake Z.AI and the proxies started against it; everything stops on exit."""

    def __init__(self, directory: Path | str):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.fake = FakeZai(record_limit=200_000)
        self._proxies: list[ProxyProcess] = []
        self._raw: RawFaults | None = None
        self._raw_lock = threading.Lock()

    def __enter__(self) -> "Stack":
        self.fake.start()
        return self

    def __exit__(self, *exc) -> None:
        for proxy in self._proxies:
            proxy.signal_stop()        # all at once, then each is waited for
        for proxy in self._proxies:
            proxy.stop()
        self.fake.stop()
        if self._raw is not None:
            self._raw.stop()

    def raw_faults(self) -> RawFaults:
        """The raw-socket upstream playing byte-level faults (started on first use)."""
        with self._raw_lock:
            if self._raw is None:
                self._raw = RawFaults().start()
            return self._raw

    def proxy(self, upstream_url: str | None = None, **env) -> ProxyProcess:
        # `make tiktoken-cache` fills this (the Makefile exports it); a direct run finds it too.
        if "TIKTOKEN_CACHE_DIR" not in os.environ and TIKTOKEN_CACHE.is_dir():
            env.setdefault("TIKTOKEN_CACHE_DIR", str(TIKTOKEN_CACHE))
        proxy = ProxyProcess(self.dir, upstream_url or self.fake.url, **env)
        self._proxies.append(proxy)
        return proxy.start()


def closed_port_url() -> str:
    """An origin nobody listens on: connecting is refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def workers(proxy: ProxyProcess) -> list[int]:
    """Pids of the gunicorn worker processes (the master's children), sorted."""
    try:
        return sorted(child.pid for child in psutil.Process(proxy.proc.pid).children())
    except psutil.NoSuchProcess:
        return []


def threads(pid: int) -> int:
    return psutil.Process(pid).num_threads()


def rss(pid: int) -> int:
    return psutil.Process(pid).memory_info().rss


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(step)


def wait_workers(proxy: ProxyProcess, count: int, timeout: float = 20.0) -> list[int]:
    """Worker pids once `count` of them are up (after a start or a replacement)."""
    wait_for(lambda: len(workers(proxy)) == count, timeout)
    return workers(proxy)


def fill_thread_pools(proxy: ProxyProcess, per_worker_threads: int, worker_count: int,
                      rounds: int = 6) -> bool:
    """Grow every worker's gthread pool to its maximum, so that thread counts measured later are
    comparable: the pool only grows, one thread per connection that finds no idle thread.

    A request head only reaches the pool once it is complete, so each connection of the crowd
    sends a whole head announcing a body it never sends: a pool thread waits for that body until
    the connection closes, which frees the threads at once (the proxy logs each as 499
    client_gone). Which worker accepts a connection is the kernel's choice, so crowds are sent
    until every worker is full (its main loop and helper threads run besides the pool). Returns
    whether every pool is full."""
    pids = workers(proxy)
    waiting = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: proxy\r\n"
               b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n")
    def full():
        return all(threads(pid) >= per_worker_threads + 2 for pid in pids)
    for _ in range(rounds):
        socks = []
        try:
            for _ in range(per_worker_threads * worker_count * 3):
                sock = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
                socks.append(sock)
                sock.sendall(waiting)
            wait_for(full, timeout=2.0)
        finally:
            for sock in socks:
                sock.close()
        time.sleep(0.2)
        if full():
            return True
    return False


def steady_threads(pid: int, quiet: float = 0.3, timeout: float = 5.0) -> int:
    """The worker's thread count once it has not changed for `quiet` seconds."""
    deadline = time.monotonic() + timeout
    last = threads(pid)
    while time.monotonic() < deadline:
        time.sleep(quiet)
        now = threads(pid)
        if now == last:
            return now
        last = now
    return last


def settled_threads(pid: int, expected: int, timeout: float = 3.0) -> int:
    """The worker's thread count, given a moment to come back to `expected`."""
    wait_for(lambda: threads(pid) == expected, timeout)
    return threads(pid)


def metric_sum(samples: dict, name: str, **labels) -> float:
    """Sum of the samples of `name` whose labels include `labels` (ProxyProcess.metrics())."""
    wanted = set(labels.items())
    return sum(value for (sample, sample_labels), value in samples.items()
               if sample == name and wanted <= sample_labels)


def metric_delta(before: dict, after: dict, name: str, **labels) -> float:
    return metric_sum(after, name, **labels) - metric_sum(before, name, **labels)
