"""Run the real dashboard service (`gunicorn -c dashboard/gunicorn.conf.py
'zai_dashboard.app:create_app()'`) for a test, a benchmark or the demo, and read its SSE stream.

`DashboardProcess(directory, targets, **env).start()` listens on a free loopback port, keeps its
database in `directory`, and is ready once /readyz answers (the first tick is done).
`EventStream(url)` is a minimal `text/event-stream` reader over http.client.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import psutil
import requests

from tools.proxy_process import await_own_worker, free_port

ROOT = Path(__file__).resolve().parent.parent
COMMAND = ["-m", "gunicorn", "-c", "dashboard/gunicorn.conf.py", "zai_dashboard.app:create_app()"]


class DashboardProcess:
    def __init__(self, directory: Path, targets: str, prefix: tuple[str, ...] = (), **env):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.prefix = tuple(prefix)    # e.g. a mount namespace: ("unshare", "-m", …)
        self.stdout_path = self.dir / f"dashboard-{self.port}.stdout"
        self.stderr_path = self.dir / f"dashboard-{self.port}.stderr"
        self.env = {"PATH": os.environ["PATH"], "DASHBOARD_TARGETS": targets,
                    "DASHBOARD_PORT": str(self.port), "DASHBOARD_BIND_HOST": "127.0.0.1",
                    "DASHBOARD_DB_PATH": str(self.dir / "dashboard.db")}
        self.env.update({k: str(v) for k, v in env.items()})
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 30.0) -> "DashboardProcess":
        for _ in range(3):
            if self._boot(timeout):
                return self
            self.port = free_port()
            self.url = f"http://127.0.0.1:{self.port}"
            self.env["DASHBOARD_PORT"] = str(self.port)
        raise RuntimeError(f"the dashboard found no free port in 3 tries:\n{self.stdout()}")

    def _boot(self, timeout: float) -> bool:
        self.proc = subprocess.Popen([*self.prefix, sys.executable, *COMMAND], cwd=ROOT,
                                     env=self.env, stdout=open(self.stdout_path, "wb"),
                                     stderr=open(self.stderr_path, "wb"))
        return await_own_worker(self.proc, self.url, "/healthz", self.stdout, self.stop, timeout,
                                "the dashboard",
                                lambda: f"{self.stderr()}\n{self.stdout()[-3000:]}")

    def master(self) -> psutil.Process:
        """gunicorn's master (the started process, or its child under a prefix)."""
        proc = psutil.Process(self.proc.pid)
        for candidate in [proc, *proc.children(recursive=True)]:
            try:
                if "gunicorn" in " ".join(candidate.cmdline()):
                    return candidate
            except psutil.NoSuchProcess:
                pass
        return proc

    def send_signal(self, sig: int) -> None:
        self.master().send_signal(sig)

    def stop(self, sig=signal.SIGTERM, timeout: float = 30.0) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        try:
            self.send_signal(sig)
        except psutil.NoSuchProcess:
            pass
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def get(self, path: str, **kw) -> requests.Response:
        return requests.get(self.url + path, timeout=kw.pop("timeout", 10), **kw)

    def metric(self, name: str) -> float | None:
        """One sample of the dashboard's /metrics, by its full text before the value."""
        for line in self.get("/metrics").text.splitlines():
            if line.startswith(name + " "):
                return float(line.rsplit(" ", 1)[1])
        return None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


class EventStream:
    """GET an SSE URL and read its events one by one (`next_event()`)."""

    def __init__(self, url: str, last_id: str | None = None, timeout: float = 10.0,
                 before_connect=None):
        parts = urlsplit(url)
        self.conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
        if before_connect is not None:
            self.conn.connect()
            before_connect(self.conn.sock)
        headers = {"Accept": "text/event-stream"}
        if last_id is not None:
            headers["Last-Event-ID"] = last_id
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        self.conn.request("GET", path, headers=headers)
        self.response = self.conn.getresponse()
        self.status = self.response.status
        self.retry: int | None = None

    def next_event(self) -> dict | None:
        """{'event', 'id', 'data'} of the next event, or None when the stream has ended."""
        fields: dict = {}
        data: list[str] = []
        while True:
            raw = self.response.readline()
            if not raw:
                return None
            line = raw.decode().rstrip("\r\n")
            if not line:
                if data or "event" in fields:
                    event = {"event": fields.get("event", "message"), "id": fields.get("id"),
                             "data": json.loads("\n".join(data)) if data else None}
                    return event
                continue
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "data":
                data.append(value)
            elif name == "retry":
                self.retry = int(value)
            elif name:
                fields[name] = value

    def events(self):
        while True:
            event = self.next_event()
            if event is None:
                return
            yield event

    def close(self) -> None:
        self.conn.close()
