"""gunicorn settings of the dashboard service, derived from its validated configuration.

`gunicorn -c dashboard/gunicorn.conf.py 'zai_dashboard.app:create_app()'` (in the image:
`gunicorn -c /app/dashboard/gunicorn.conf.py 'zai_dashboard.app:create_app()'`).

One process: one collector and one SQLite writer. Threads for the browsers: every SSE client
holds one for as long as it is connected, so there are DASHBOARD_MAX_CLIENTS of them plus a
margin that keeps the API and the probes answering when every stream slot is taken.
"""

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
# zai_dashboard lives next to this file; zai_proxy (its logging) in image/ in the repository,
# next to dashboard/ in the image (/app).
for _path in (os.path.join(os.path.dirname(_HERE), "image"), os.path.dirname(_HERE), _HERE):
    if os.path.isdir(os.path.join(_path, "zai_dashboard")) or \
            os.path.isdir(os.path.join(_path, "zai_proxy")):
        if _path not in sys.path:
            sys.path.insert(0, _path)

# The proxy's image sets no PROMETHEUS_MULTIPROC_DIR, but a shell or a pod spec might: it would
# switch prometheus_client to multiprocess mode, which one process does not need.
os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)

from zai_dashboard import config as _config_module  # noqa: E402

try:
    _config = _config_module.load()
except _config_module.ConfigError as _exc:
    sys.stderr.write(f"zai-dashboard: configuration error: {_exc}\n")
    sys.exit(2)

bind = f"{_config.bind_host}:{_config.port}"
workers = 1
worker_class = "zai_dashboard.worker.DashboardWorker"
threads = _config.max_clients + 16
worker_connections = threads + 100
keepalive = 65
timeout = 60
graceful_timeout = 10       # streams end at once on SIGTERM; this bounds a slow API answer
accesslog = None
errorlog = "-"
loglevel = _config.log_level
logger_class = "zai_proxy.logs.GunicornLogger"
proc_name = "zai-dashboard"
control_socket_disable = True


def worker_exit(server, worker):
    """Checkpoint and close the database after the last request of this worker."""
    service = getattr(getattr(worker, "wsgi", None), "extensions", {}).get("zai_dashboard")
    if service is not None:
        service.close()
