"""The gunicorn worker of the dashboard: gthread, ending every SSE stream on SIGTERM.

The stock worker stops accepting on SIGTERM but waits up to graceful_timeout for requests in
flight, and an SSE stream is a request that never ends by itself. Closing the broker first
makes every stream finish its last event and end cleanly (the browser's EventSource reconnects,
to this process's successor), so the worker exits at once instead of cutting them at the
timeout.
"""

from __future__ import annotations

from gunicorn.workers.gthread import ThreadWorker


class DashboardWorker(ThreadWorker):
    def handle_exit(self, sig, frame):
        service = getattr(getattr(self, "wsgi", None), "extensions", {}).get("zai_dashboard")
        if service is not None:
            service.stop_streams()
        return super().handle_exit(sig, frame)
