"""Fixtures of the dashboard service's tests: a settable clock, loopback exposition servers."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


class FakeClock:
    """Wall time that only moves when a test says so."""

    def __init__(self, now: float = 1_765_000_000.0):
        self.now = now

    def time(self) -> float:
        return self.now

    def wait_until(self, t, stop) -> bool:
        self.now = max(self.now, t)
        return stop.is_set()


class ExpositionServer:
    """A /metrics endpoint on loopback whose body (and status) the test sets per path."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        self.bodies: dict[str, tuple[int, str]] = {}
        self.hits = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                server.hits += 1
                status, body = server.bodies.get(self.path, (404, "not found\n"))
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.httpd.daemon_threads = True
        self.host, self.port = self.httpd.server_address[:2]
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,),
                                       daemon=True)
        self.thread.start()

    def url(self, path: str = "/metrics") -> str:
        return f"http://{self.host}:{self.port}{path}"

    def set(self, text: str, path: str = "/metrics", status: int = 200) -> None:
        self.bodies[path] = (status, text)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def exposition():
    servers = []

    def start(host: str = "127.0.0.1", port: int = 0) -> ExpositionServer:
        server = ExpositionServer(host, port)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


@pytest.fixture(autouse=True)
def _close_services():
    """Services a test built with helpers.make_service / make_app are closed after it."""
    yield
    from tests.dashboard.helpers import close_all
    close_all()
