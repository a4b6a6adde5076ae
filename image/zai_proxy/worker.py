"""A gunicorn gthread worker that drains on SIGTERM instead of stopping at once.

On SIGTERM the worker keeps accepting connections for a while: /readyz answers 503 (so the
orchestrator stops routing here), new proxied requests get 503 with Retry-After, and the loop
only stops once every in-flight stream has finished or GRACEFUL_TIMEOUT has passed. The stock
worker would stop reading new requests at once, so /readyz could never say "draining".
"""

from __future__ import annotations

import threading

from gunicorn.workers.gthread import ThreadWorker


class DrainingWorker(ThreadWorker):
    _draining = False

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
