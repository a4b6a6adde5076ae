"""gunicorn settings, derived from the validated proxy configuration.

Threaded workers (gthread) so that a stream never meets gunicorn's worker timeout, and enough
threads beyond MAX_WORKERS that /metrics and the probes never queue behind streams.
"""

import os
import sys

from zai_proxy import config as _config_module
from zai_proxy import metrics_dir as _metrics_dir


def _refuse(exc):
    sys.stderr.write(f"zai-proxy: configuration error: {exc}\n")
    sys.exit(2)


try:
    _config = _config_module.load()
    # Prometheus multiprocess mode: this instance's own folder, claimed (never one another live
    # master uses) and wiped, set before any process imports prometheus_client.
    _multiproc_dir = _metrics_dir.claim(_config.multiproc_dir)
except _config_module.ConfigError as _exc:
    _refuse(_exc)
os.environ["PROMETHEUS_MULTIPROC_DIR"] = _multiproc_dir

bind = _config.bind
workers = _config.web_concurrency
worker_class = "zai_proxy.worker.DrainingWorker"
threads = _config.threads_per_process
# Idle keep-alive connections wait in the poller, not in a thread.
worker_connections = threads + 1000
keepalive = 65              # longer than common load-balancer idle timeouts (60 s)
timeout = 60                # heartbeat of the worker's main loop; never applies to a request
graceful_timeout = int(_config.graceful_timeout + 0.999)
accesslog = None            # the proxy writes its own JSON line per request
errorlog = "-"
loglevel = _config.log_level
# gunicorn's own lines in the proxy's JSON shape, on stdout, without access-line formatting.
logger_class = "zai_proxy.logs.GunicornLogger"
proc_name = f"zai-proxy-{_config.variant}"
# gunicorn's control socket would live in $HOME, which a non-root container user on a read-only
# filesystem does not have; nothing here uses it.
control_socket_disable = True

if _config.token_counting_enabled:
    # Load the encoding once in the master: a missing tiktoken cache fails here with a clear
    # message instead of a worker boot loop, and forked workers share its memory.
    from zai_proxy.tokens import TokenCounter
    try:
        TokenCounter(_config.tokenizer_encoding, _config.token_count_max_chars, metrics=None)
    except _config_module.ConfigError as _exc:
        _refuse(_exc)


def when_ready(server):
    """One line per start that says what this instance is (never a key)."""
    message, fields = _config_module.start_line(_config, _multiproc_dir)
    server.log.info(message, extra={"fields": fields})
    warning = _config_module.exposure_warning(_config)
    if warning:
        server.log.warning(warning, extra={"fields": {"event": "exposed_without_auth"}})


def post_worker_init(worker):
    worker.configure_clients(_config, worker.wsgi.extensions["zai_proxy"].metrics)


def child_exit(server, worker):
    from prometheus_client import multiprocess
    multiprocess.mark_process_dead(worker.pid, _multiproc_dir)
