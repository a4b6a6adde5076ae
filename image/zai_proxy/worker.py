"""A gunicorn gthread worker that drains on SIGTERM and bounds slow clients.

On SIGTERM the worker keeps accepting connections for a while: /readyz answers 503 (so the
orchestrator stops routing here), new proxied requests get 503 with Retry-After, and the loop
only stops once every in-flight stream has finished or GRACEFUL_TIMEOUT has passed. The stock
worker would stop reading new requests at once, so /readyz could never say "draining".

gthread hands each connection to a thread that reads the request head; a client that trickles
its headers would hold that thread for as long as it likes, and a dozen of them would starve
/readyz. A deadline thread cuts any connection whose head is not complete within
CLIENT_HEADER_TIMEOUT. Errors gunicorn answers itself (oversized headers, a bad request line)
are JSON that both the OpenAI and the Anthropic SDKs can read, not an HTML page.
"""

from __future__ import annotations

import json
import socket
import threading
import time

from gunicorn import util
from gunicorn.workers.gthread import ThreadWorker


def json_error_page(sock, status_int, reason, mesg) -> None:
    """gunicorn's own error answers, in a shape both SDK families parse."""
    body = json.dumps({"type": "error", "error": {
        "type": "invalid_request_error", "code": reason.lower().replace(" ", "_"),
        "message": f"{reason}: {mesg}" if mesg else reason}}).encode()
    head = (f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n")
    util.write_nonblock(sock, head.encode("latin-1") + body)


class HeadDeadlines:
    """One thread per worker that cuts connections whose request head is late."""

    def __init__(self, timeout: float, tick: float = 0.25):
        self.timeout = timeout
        self._tick = tick
        self._lock = threading.Lock()
        self._due: dict[int, tuple[socket.socket, float]] = {}
        threading.Thread(target=self._run, name="head-deadlines", daemon=True).start()

    def start(self, sock) -> None:
        with self._lock:
            self._due[id(sock)] = (sock, time.monotonic() + self.timeout)

    def stop(self, sock) -> None:
        with self._lock:
            self._due.pop(id(sock), None)

    def _run(self) -> None:
        while True:
            time.sleep(self._tick)
            now = time.monotonic()
            with self._lock:
                late = [key for key, (_, due) in self._due.items() if due <= now]
                expired = [self._due.pop(key)[0] for key in late]
            for sock in expired:
                try:
                    sock.shutdown(socket.SHUT_RD)   # the reading thread sees EOF and lets go
                except OSError:
                    pass


class DrainingWorker(ThreadWorker):
    _draining = False
    head_deadlines: HeadDeadlines | None = None

    def init_process(self):
        util.write_error = json_error_page   # this process only: gunicorn calls it by name
        super().init_process()

    def start_head_deadlines(self, timeout: float) -> None:
        """Called from gunicorn.conf.py's post_worker_init, where the settings are known."""
        self.head_deadlines = HeadDeadlines(timeout)

    def handle(self, conn):
        deadlines = self.head_deadlines
        if deadlines is None:
            return super().handle(conn)
        deadlines.start(conn.sock)
        try:
            return super().handle(conn)
        finally:
            deadlines.stop(conn.sock)

    def handle_request(self, req, conn):
        if self.head_deadlines is not None:
            self.head_deadlines.stop(conn.sock)   # the head is in; the body has its own limit
        return super().handle_request(req, conn)

    def handle_exit(self, sig, frame):
        state = getattr(getattr(self, "wsgi", None), "extensions", {}).get("zai_proxy")
        if state is None or not self.alive:
            return super().handle_exit(sig, frame)
        if self._draining:
            return None
        self._draining = True
        state.capacity.start_draining()
        self.log.info("SIGTERM: draining %d in-flight request(s) (graceful timeout %ss)",
                      state.capacity.in_flight, self.cfg.graceful_timeout)
        threading.Thread(target=self._stop_when_idle, args=(state,), name="drain",
                         daemon=True).start()
        return None

    def _stop_when_idle(self, state) -> None:
        state.capacity.wait_idle(self.cfg.graceful_timeout)
        # Thread-safe: the base handler only flips `alive` and wakes the poller through a pipe.
        super().handle_exit(None, None)
