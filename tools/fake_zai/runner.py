"""`FakeZai`: the fake served from a background thread with its own event loop, for pytest."""

from __future__ import annotations

import asyncio
import threading

from . import server
from .recorder import RecordedRequest
from .scenarios import parse


class FakeZai:
    """A running fake Z.AI on 127.0.0.1 with an ephemeral port.

        with FakeZai() as fake:
            client = openai.OpenAI(base_url=fake.openai_url, api_key="k")
            ...
            assert fake.requests[-1].headers["authorization"] == "Bearer k"
    """

    def __init__(self, scenario: str | None = None, host: str = "127.0.0.1", port: int = 0,
                 record_limit: int = 10_000):
        parse(scenario)  # a bad default fails here, in the test, not in the server thread
        self.state = server.State(scenario, record_limit)
        self._host = host
        self._port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner = None
        self._thread: threading.Thread | None = None
        self.port: int | None = None

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> FakeZai:
        if self._thread is not None:
            return self
        ready = threading.Event()
        failure: list[BaseException] = []

        def run():
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            self._loop = loop
            try:
                self._runner, self.port = loop.run_until_complete(
                    server.start(self.state, self._host, self._port))
            except BaseException as exc:  # reported to the caller of start()
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=run, name="fake-zai", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            self._thread = None
            raise failure[0]
        return self

    def stop(self) -> None:
        if self._thread is None:
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._thread = None

    def __enter__(self) -> FakeZai:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    # -- addresses -----------------------------------------------------------------------------
    @property
    def url(self) -> str:
        """The origin, e.g. `http://127.0.0.1:40123` (what `ZAI_BASE_URL` is set to)."""
        return f"http://{self._host}:{self.port}"

    @property
    def openai_url(self) -> str:
        return self.url + "/api/paas/v4"

    @property
    def anthropic_url(self) -> str:
        return self.url + "/api/anthropic"

    # -- behaviour and inspection --------------------------------------------------------------
    def set_scenario(self, spec: str | None, path_suffix: str | None = None) -> None:
        """Default for requests that name none (`None` or "" means `ok`); with `path_suffix`,
        only for paths ending in it (`None`/"" then removes that override)."""
        self.state.set_default(spec, path_suffix)

    def set_quota(self, payload: dict) -> None:
        """Replace the quota endpoint's payload (see `tools.fake_zai.quota` for builders)."""
        self.state.set_quota(payload)

    @property
    def requests(self) -> list[RecordedRequest]:
        """Recorded requests, oldest first (a copy)."""
        return self.state.recorder.requests()

    def requests_to(self, path_suffix: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path.endswith(path_suffix)]

    @property
    def stats(self) -> dict:
        return self.state.recorder.stats()

    def clear(self) -> None:
        """Forget recorded requests and stats, and reset the fail_first counters."""
        self.state.recorder.clear()
        self.state.counters.reset()

    def reset(self) -> None:
        """`clear()`, plus the default scenario and quota back to their start values."""
        self.state.reset()
