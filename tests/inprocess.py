"""The real proxy app served in-process on loopback: the default way tests drive the pipeline.

The same create_app() and pipeline as under gunicorn, over real HTTP (werkzeug's threaded
server, which hands the app its client socket as gunicorn does, so hang-ups are watched the
same way), against the fake upstream. It starts in milliseconds, where a gunicorn costs a
second or more, so each test can have its own with its own settings.

It reads like tools.proxy_process.ProxyProcess (url, port, value, wait_value, metrics,
metrics_text, request_logs, stdout), so a test moves between the two unchanged. The differences:
- retry waits are recorded in `waits` and not slept (the tests assert them exactly);
- `value()` reads the app's registry directly (the same samples /metrics shows, without HTTP);
- `stdout()` holds the log lines (in the proxy's JSON format, secrets redacted) written while
  this app served a request or was being built, not those of other apps in this process.

What is about processes (workers, signals, drain, multiprocess metrics, gunicorn's own limits
and thread pool) needs ProxyProcess: see DEVELOPERS.md.
"""

from __future__ import annotations

import logging
import threading

from prometheus_client import CollectorRegistry
from werkzeug.serving import ThreadedWSGIServer, WSGIRequestHandler

from tools.proxy_process import TEST_ZAI_KEY, ProxyReadings

# The in-process server whose request this thread is serving (see _Server).
_serving = threading.local()


class _QuietHandler(WSGIRequestHandler):
    """No access line per request: the proxy writes its own (gunicorn's is off too).

    And every response's close() is called, as gunicorn calls it: werkzeug's server skips it
    when, after the answer, reading what the client left unread fails because the client reset
    the connection (an SDK that stops at an error event and closes). The proxy writes its
    request log line and settles its accounting in close()."""

    def log_request(self, *args, **kwargs) -> None:
        pass

    def run_wsgi(self) -> None:
        try:
            super().run_wsgi()
        finally:
            response = _serving.__dict__.pop("response", None)
            if response is not None:
                response.close()


class _ClosedOnce:
    """The app's response, closed exactly once: by werkzeug or else by _QuietHandler."""

    __slots__ = ("iterable", "closed")

    def __init__(self, iterable):
        self.iterable = iterable
        self.closed = False

    def __iter__(self):
        return iter(self.iterable)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        _serving.__dict__.pop("response", None)
        close = getattr(self.iterable, "close", None)
        if close is not None:
            close()


def _closed_once(app):
    def serve(environ, start_response):
        response = _serving.response = _ClosedOnce(app(environ, start_response))
        return response
    return serve


class _Server(ThreadedWSGIServer):
    """werkzeug's threaded server; each request thread knows which server it works for, so
    every app in this process keeps its own log lines."""

    def process_request_thread(self, request, client_address):
        _serving.server = self
        try:
            super().process_request_thread(request, client_address)
        finally:
            _serving.server = None


class _Capture(logging.Handler):
    """The lines one app writes, formatted as the proxy formats them on stdout."""

    def __init__(self, server: _Server | None):
        super().__init__()
        from zai_proxy.logs import JsonFormatter
        self.setFormatter(JsonFormatter())
        self.server = server
        self.building = True
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        current = getattr(_serving, "server", None)
        if (self.building and current is None) or (current is not None and
                                                   current is self.server):
            self.lines.append(self.format(record))


# Settings that only mean something to gunicorn: in one process they would quietly do nothing,
# and a test that sets them is about gunicorn.
GUNICORN_ONLY = ("GUNICORN_CMD_ARGS", "PROMETHEUS_MULTIPROC_DIR")


class InProcessProxy(ProxyReadings):
    def __init__(self, upstream_url: str, **env):
        import app as app_module
        from zai_proxy import config

        gunicorn_only = [k for k in GUNICORN_ONLY if k in env]
        if str(env.get("WEB_CONCURRENCY", "1")) != "1":
            gunicorn_only.append("WEB_CONCURRENCY")
        if gunicorn_only:
            raise ValueError(f"{', '.join(gunicorn_only)}: only gunicorn uses this; a test about "
                             "gunicorn takes the start_gunicorn fixture (ProxyProcess)")

        settings = {"ZAI_API_KEY": TEST_ZAI_KEY, "ZAI_BASE_URL": upstream_url,
                    "RATE_LIMIT_STATE_FILE": "", "LOG_LEVEL": "info"}
        settings.update({k: str(v) for k, v in env.items()})
        self.config = config.load(settings)
        self.waits: list[float] = []
        self.registry = CollectorRegistry()
        # On the proxy's own logger: logs.setup() (run by create_app) replaces the root's.
        self._capture = _Capture(None)
        logging.getLogger("zai_proxy").addHandler(self._capture)
        try:
            self.app = app_module.create_app(self.config, registry=self.registry,
                                             wait=self._wait)
            self.server = _Server("127.0.0.1", 0, _closed_once(self.app),
                                  handler=_QuietHandler)
        except BaseException:
            self._detach()
            raise
        self._capture.server = self.server
        self._capture.building = False
        self.port = self.server.server_port
        self.url = f"http://127.0.0.1:{self.port}"
        # A short poll interval: stop() waits for the loop to notice, 0.5 s by default.
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.02,),
                                        daemon=True, name=f"inprocess-proxy-{self.port}")
        self._thread.start()

    def _wait(self, seconds: float, cancel: threading.Event) -> bool:
        self.waits.append(round(seconds, 6))
        return cancel.is_set()

    @property
    def state(self):
        return self.app.extensions["zai_proxy"]

    def value(self, name: str, **labels) -> float:
        total = 0.0
        for metric in self.registry.collect():
            for sample in metric.samples:
                if sample.name == name and labels.items() <= sample.labels.items():
                    total += sample.value
        return total

    def stdout(self) -> str:
        return "".join(line + "\n" for line in self._capture.lines)

    def stderr(self) -> str:
        return ""   # the app writes every line to stdout (see zai_proxy.logs)

    def _detach(self) -> None:
        logging.getLogger("zai_proxy").removeHandler(self._capture)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.state.close()
        self._detach()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
