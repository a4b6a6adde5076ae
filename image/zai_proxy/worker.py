"""A gunicorn gthread worker that reads request heads without a thread, serves probes on their
own thread, bounds every wait on a client, and drains on SIGTERM.

Why: gthread hands each new connection to a pool thread (a FIFO queue in front of a fixed
number of threads) that then waits for the head, the body and every write. Clients that trickle
their heads, open connections and send nothing, upload one byte per second or never read their
answer each held a thread, so a few dozen of them made /livez wait for tens of seconds (the
chart's probe timeout is 3 s) and starved every other client.

What this worker does instead (the shape of nginx's event loop and of Envoy's admin listener):
- Heads in the main loop. A connection (new, kept alive, or with pipelined bytes) waits in the
  main loop's poller, which reads its bytes without blocking until the head is complete; only
  then is a thread involved. A head must be complete within CLIENT_HEADER_TIMEOUT of the
  connection's first moment (or of its first byte, on a kept-alive connection), else the
  connection gets 408 and is closed; a head over MAX_HEAD_BYTES gets 431. So unauthenticated
  clients hold no thread while they dawdle, and the proxy authenticates before reading a body.
- Probes on their own thread. A complete head asking for /livez, /readyz, /health or /metrics
  goes to `service_loop.ServiceLoop`, never to the pool: probes do not queue behind clients.
- `Expect: 100-continue` is answered only when the application reads the body, after its
  checks of the head (authentication, size), never by gunicorn before them.
- Total client deadlines (`client_deadlines.ClientDeadlines`): the body must arrive within
  CLIENT_BODY_TIMEOUT (408 otherwise), each write of the answer within CLIENT_WRITE_TIMEOUT
  (the connection is closed otherwise, and a stream's upstream connection with it). A request
  whose body is left unread (a 401, a 413) closes its connection instead of draining it.
- Closing without blocking. gunicorn closes a connection "gracefully" on the main loop (half
  close, then up to 2 s reading until the client closes); here that wait happens in the poller.
- Draining. On SIGTERM the worker keeps accepting connections for a while: /readyz answers 503
  (so the orchestrator stops routing here), new proxied requests get 503 with Retry-After, and
  the loop only stops once every in-flight stream has finished or GRACEFUL_TIMEOUT has passed.
  Then a request still on its way (on a connection accepted or kept alive meanwhile) gets the
  draining answer for 2 s more, gunicorn's STOP_KEEPALIVE_LINGER, rather than a closed socket.

Errors gunicorn answers itself (oversized headers, a bad request line) are JSON that both the
OpenAI and the Anthropic SDKs can read, not an HTML page.
"""

from __future__ import annotations

import collections
import json
import selectors
import socket
import threading
import time
from functools import partial

from gunicorn import util
from gunicorn.workers.gthread import STOP_KEEPALIVE_LINGER, ThreadWorker

from .client_deadlines import ClientDeadlines
from .service_loop import ServiceLoop, parse_service_request

# nginx refuses heads beyond 4 × 8 KiB by default; gunicorn's own limits (a 4 KiB request line,
# 100 fields of 8 KiB) still apply after this, with their own 414/431 answers.
MAX_HEAD_BYTES = 64 * 1024
LINGER = 2.0                 # gunicorn's graceful close: how long to wait for the client's close
_HEAD_ENDS = (b"\r\n\r\n", b"\n\n")


def json_error_page(sock, status_int, reason, mesg) -> None:
    """gunicorn's own error answers, in a shape both SDK families parse."""
    body = json.dumps({"type": "error", "error": {
        "type": "invalid_request_error", "code": reason.lower().replace(" ", "_"),
        "message": f"{reason}: {mesg}" if mesg else reason}}).encode()
    head = (f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n")
    util.write_nonblock(sock, head.encode("latin-1") + body)


def head_complete(data: bytes) -> bool:
    data = data.lstrip(b"\r\n")       # blank lines before a request line are allowed
    return any(end in data for end in _HEAD_ENDS)


def settle_settings(cfg) -> None:
    """gunicorn reads its settings through Config.__getattr__ (a dictionary lookup and a method
    call each), about thirty times per request. A worker's settings never change once it has
    forked (a reload starts new workers), so each becomes a plain attribute of this process's
    Config; the class's properties (is_ssl, ...) still take precedence and compute as before."""
    for name, setting in cfg.settings.items():
        cfg.__dict__[name] = setting.get()


class DrainingWorker(ThreadWorker):
    _draining = False
    _heads_capped = False           # stopping: the heads still awaited have had their last delay
    app = None                      # the Flask app (self.wsgi is wrapped with the deadlines)
    deadlines: ClientDeadlines | None = None
    service: ServiceLoop | None = None
    header_timeout = 10.0
    reads_heads = False             # TLS and HTTP/2 prior knowledge keep gthread's own way

    def init_process(self):
        util.write_error = json_error_page   # this process only: gunicorn calls it by name
        settle_settings(self.cfg)
        self._waiting_heads: collections.deque = collections.deque()
        self._lingering: collections.deque = collections.deque()
        self._main_thread = threading.current_thread()
        super().init_process()

    def configure_clients(self, config, metrics) -> None:
        """Called from gunicorn.conf.py's post_worker_init, where the settings are known."""
        self.app = self.wsgi
        self.header_timeout = config.client_header_timeout
        self._count_timeout = metrics.client_timeout
        self.deadlines = ClientDeadlines(config.client_body_timeout,
                                         config.client_write_timeout, metrics.client_timeout)
        self.wsgi = self.deadlines.wrap(self.app)
        self.service = ServiceLoop(self.app, partial(metrics.client_timeout, "write"))
        self.reads_heads = (not self.cfg.is_ssl
                            and self.cfg.http2_cleartext not in ("prior-knowledge", "both"))

    # Heads, in the main loop ------------------------------------------------------------------
    def enqueue_req(self, conn):
        """Every way a connection reaches the pool comes here: new, kept alive and readable,
        or with a pipelined request already buffered. It waits for a complete head first."""
        if not self.reads_heads:
            return super().enqueue_req(conn)
        if "head" not in conn.__dict__:
            conn.close = partial(self._close_conn, conn)   # see _close_conn
        buffered = conn.parser.unreader.take_buffered() if conn.parser is not None else b""
        conn.head = bytearray(buffered)
        conn.head_due = time.monotonic() + self.header_timeout
        conn.head_registered = False
        conn.sock.setblocking(False)
        if head_complete(conn.head) or self._read_head(conn):
            return self._dispatch(conn)
        if conn.head is None:
            return None                     # closed while reading
        self.poller.register(conn.sock, selectors.EVENT_READ,
                             partial(self._on_head_readable, conn))
        conn.head_registered = True
        self._waiting_heads.append((conn.head_due, conn, conn.head))
        return None

    def _read_head(self, conn) -> bool:
        """Read what has arrived; True once the head is complete. Closes the connection (and
        sets conn.head to None) when the client has gone or the head is too large."""
        while True:
            try:
                data = conn.sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                return False
            except OSError:
                data = b""
            if not data:
                self._end_head_wait(conn)
                self._drop(conn)
                return False
            conn.head += data
            if head_complete(conn.head):
                return True
            if len(conn.head) > MAX_HEAD_BYTES:
                self._end_head_wait(conn)
                self._refuse(conn, 431, "Request Header Fields Too Large",
                             f"the request head is larger than {MAX_HEAD_BYTES} bytes")
                return False

    def _on_head_readable(self, conn, _sock) -> None:
        if self._read_head(conn):
            self._dispatch(conn)

    def _end_head_wait(self, conn) -> bytes:
        head = bytes(conn.head or b"")
        conn.head = None
        if conn.head_registered:
            self.poller.unregister(conn.sock)
            conn.head_registered = False
        return head

    def _dispatch(self, conn) -> None:
        head = self._end_head_wait(conn)
        request = parse_service_request(head)
        if request is not None and self.service.accepts():
            self.nr_conns -= 1               # the service loop owns it from here
            self.service.take(conn.sock, conn.client, conn.server, request)
            return
        conn.pending_head = head
        super().enqueue_req(conn)

    def murder_pending(self):
        """Called by the main loop after each round of events: cut the late heads (the deque is
        in deadline order) and end the lingering closes that are due."""
        super().murder_pending()
        now = time.monotonic()
        heads = self._waiting_heads
        while heads and (heads[0][1].head is not heads[0][2] or heads[0][0] <= now):
            _, conn, head = heads.popleft()
            if conn.head is head:           # else completed or closed since it was queued
                self._head_timed_out(conn)
        if not self.alive and not self._heads_capped:
            # Stopping: a head still to come gets as long as gunicorn gives a kept-alive
            # connection (STOP_KEEPALIVE_LINGER), then the connection closes. A connection
            # accepted while draining, whose request is still on its way, is answered (503
            # draining, Connection: close) rather than cut, which its client could not tell
            # from a failure. Capping every deadline at one moment keeps the deque in order.
            self._heads_capped = True
            cap = now + STOP_KEEPALIVE_LINGER
            self._waiting_heads = collections.deque(
                (min(due, cap), conn, head) for due, conn, head in heads)
        self._murder_lingering(now)

    def _head_timed_out(self, conn) -> None:
        head = self._end_head_wait(conn)
        self._count_timeout("header")
        if head:
            self._refuse(conn, 408, "Request Timeout",
                         "the request head did not arrive within CLIENT_HEADER_TIMEOUT")
        else:
            self._drop(conn)

    def _refuse(self, conn, status: int, reason: str, message: str) -> None:
        try:
            json_error_page(conn.sock, status, reason, message)
        except OSError:
            pass
        self._drop(conn, graceful=True)

    def _drop(self, conn, graceful: bool = False) -> None:
        self.nr_conns -= 1
        conn.close(graceful=graceful)

    # Threads ------------------------------------------------------------------------------------
    def handle(self, conn):
        head = conn.__dict__.pop("pending_head", None)
        if head is not None:
            conn.data_ready = True            # the head is here: no first-byte wait
            conn.sock.setblocking(True)
            conn.init()
            conn.parser.unreader.unread(head)
        if self.deadlines is None:
            return super().handle(conn)
        deadline = self.deadlines.begin(conn.sock, time.monotonic() + self.header_timeout)
        try:
            return super().handle(conn)
        finally:
            self.deadlines.end(deadline)

    def handle_request(self, req, conn):
        if self.deadlines is not None:
            self.deadlines.head_done(req)
            if req._expected_100_continue:
                # gunicorn would invite the body (`100 Continue`) before the application has
                # seen the head. The body's first read sends it instead (client_deadlines), and
                # the pipeline reads a body only once the request is authenticated and within
                # MAX_REQUEST_BYTES: a request refused for its head never invites its body.
                req._expected_100_continue = False
                req.continue_on_read = True
        return super().handle_request(req, conn)

    # Closing without blocking the main loop --------------------------------------------------
    def _close_conn(self, conn, graceful: bool = False) -> None:
        """TConn.close: a graceful close lingers in the poller, not in a blocking read."""
        if not graceful:
            return util.close(conn.sock)
        if threading.current_thread() is not self._main_thread:
            return util.close_graceful(conn.sock)   # a pool thread may block; it is bounded
        try:
            conn.sock.shutdown(socket.SHUT_WR)
            conn.sock.setblocking(False)
            self.poller.register(conn.sock, selectors.EVENT_READ,
                                 partial(self._on_lingering_readable, conn))
        except (OSError, ValueError, KeyError):
            return util.close(conn.sock)
        conn.lingering = True
        self._lingering.append((time.monotonic() + LINGER, conn))
        return None

    def _on_lingering_readable(self, conn, _sock) -> None:
        try:
            while conn.sock.recv(65536):
                pass
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            pass
        self._end_linger(conn)

    def _end_linger(self, conn) -> None:
        if conn.__dict__.pop("lingering", False):
            try:
                self.poller.unregister(conn.sock)
            except (KeyError, ValueError, OSError):
                pass
            util.close(conn.sock)

    def _murder_lingering(self, now: float) -> None:
        while self._lingering and (self._lingering[0][0] <= now or not self.alive):
            self._end_linger(self._lingering.popleft()[1])

    # Draining ---------------------------------------------------------------------------------
    def handle_exit(self, sig, frame):
        state = getattr(self.app, "extensions", {}).get("zai_proxy")
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
        self.log.info("drained: stopping; a request still arriving gets the draining answer "
                      "for %ss", STOP_KEEPALIVE_LINGER)
        # Thread-safe: the base handler only flips `alive` and wakes the poller through a pipe.
        super().handle_exit(None, None)
