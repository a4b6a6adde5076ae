"""Processes the benchmark starts: pinning, readiness, and what they cost (CPU seconds, RSS).

A contestant is a process tree (gunicorn master + workers, nginx master + worker, one uvicorn
process); its cost is the sum over the tree, read with psutil from outside, so the numbers are
those a pod's cgroup would show, not what the process says about itself.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import psutil
import requests

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def pinned(cmd: list[str], cpus: str | None) -> list[str]:
    """`cmd` under `taskset -c cpus` when pinning is asked for and possible."""
    if cpus is None or shutil.which("taskset") is None:
        return cmd
    return ["taskset", "-c", cpus, *cmd]


def raise_fd_limit() -> int:
    """Held-concurrency runs open thousands of sockets: lift the soft limit to the hard one
    (children inherit it)."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def _schedstat_seconds(pid: int) -> float:
    total = 0
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return 0.0
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as handle:
                total += int(handle.read().split()[0])
        except (OSError, ValueError, IndexError):
            pass
    return total / 1e9


class Tree:
    """A started process and its descendants."""

    def __init__(self, name: str, cmd: list[str], *, env: dict, cwd: Path | None = None,
                 log_dir: Path, cpus: str | None = None):
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(pinned(cmd, cpus), cwd=cwd, env=env, stdout=self._log,
                                     stderr=subprocess.STDOUT, start_new_session=True)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def processes(self) -> list[psutil.Process]:
        try:
            root = psutil.Process(self.proc.pid)
            return [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def cpu_seconds(self) -> float:
        """User + system CPU of every live process in the tree, from the kernel's per-thread
        scheduler clock (nanoseconds; /proc/PID/stat has 10 ms ticks, too coarse for a 15 %
        comparison of short runs). Children that exited are lost, which is why contestants run
        for the whole scenario; `cpu_ticks_seconds` catches threads that exited."""
        total = 0.0
        for proc in self.processes():
            total += _schedstat_seconds(proc.pid)
        return total

    def cpu_ticks_seconds(self) -> float:
        total = 0.0
        for proc in self.processes():
            try:
                times = proc.cpu_times()
                total += times.user + times.system
            except psutil.NoSuchProcess:
                pass
        return total

    def rss_bytes(self) -> int:
        total = 0
        for proc in self.processes():
            try:
                total += proc.memory_info().rss
            except psutil.NoSuchProcess:
                pass
        return total

    def pss_bytes(self) -> int:
        """Proportional set size: shared pages (fork copy-on-write) counted once overall."""
        total = 0
        for proc in self.processes():
            try:
                total += proc.memory_full_info().pss
            except (psutil.NoSuchProcess, psutil.AccessDenied, AttributeError):
                pass
        return total

    def threads(self) -> int:
        total = 0
        for proc in self.processes():
            try:
                total += proc.num_threads()
            except psutil.NoSuchProcess:
                pass
        return total

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        self._log.flush()
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def stop(self, timeout: float = 20.0) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._log.close()


def wait_http(url: str, tree: Tree, timeout: float, headers: dict | None = None) -> None:
    """Until `url` answers 200, or fail with the process's log tail."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not tree.alive():
            raise RuntimeError(f"{tree.name} exited with {tree.proc.returncode}:\n"
                               f"{tree.log_tail()}")
        try:
            if requests.get(url, timeout=1, headers=headers).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    tail = tree.log_tail()
    tree.stop()
    raise RuntimeError(f"{tree.name} not ready at {url} after {timeout:.0f} s:\n{tail}")


class Sampler:
    """Samples a tree's RSS in the background (max and last), for peaks during a run."""

    def __init__(self, tree: Tree, interval: float = 0.2):
        self.tree = tree
        self.interval = interval
        self.peak = 0
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        start = time.monotonic()
        while not self._stop.is_set():
            rss = self.tree.rss_bytes()
            self.peak = max(self.peak, rss)
            self.samples.append((round(time.monotonic() - start, 2), rss))
            self._stop.wait(self.interval)

    def __enter__(self) -> "Sampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
