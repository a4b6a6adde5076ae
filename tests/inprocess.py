"""The real proxy app served in-process on loopback, with its waits recorded instead of slept.

For tests that need exact retry waits: the same create_app() and pipeline as under gunicorn,
over real HTTP (werkzeug's threaded server), with the clock's sleeps injected.
"""

from __future__ import annotations

import threading

from prometheus_client import CollectorRegistry
from werkzeug.serving import make_server

from tools.proxy_process import TEST_ZAI_KEY


class InProcessProxy:
    def __init__(self, upstream_url: str, **env):
        import app as app_module
        from zai_proxy import config

        settings = {"ZAI_API_KEY": TEST_ZAI_KEY, "ZAI_BASE_URL": upstream_url,
                    "RATE_LIMIT_STATE_FILE": "", "LOG_LEVEL": "warning"}
        settings.update({k: str(v) for k, v in env.items()})
        self.config = config.load(settings)
        self.waits: list[float] = []
        self.registry = CollectorRegistry()
        self.app = app_module.create_app(self.config, registry=self.registry, wait=self._wait)
        self.server = make_server("127.0.0.1", 0, self.app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
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

    def stop(self) -> None:
        self.server.shutdown()
        state = self.state
        if state.limiter is not None:
            state.limiter.close()
        if state.quota is not None:
            state.quota.stop()
