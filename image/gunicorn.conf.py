"""gunicorn settings, derived from the validated proxy configuration.

Threaded workers (gthread) so that a stream never meets gunicorn's worker timeout, and enough
threads beyond MAX_WORKERS that /metrics and the probes never queue behind streams.
"""

import os
import shutil
import sys

from zai_proxy import config as _config_module

try:
    _config = _config_module.load()
except _config_module.ConfigError as _exc:
    sys.stderr.write(f"zai-proxy: configuration error: {_exc}\n")
    sys.exit(2)

# Prometheus multiprocess mode: set before any worker imports prometheus_client; the directory
# is wiped at start so a restarted pod never reports a previous life's counters.
os.environ["PROMETHEUS_MULTIPROC_DIR"] = _config.multiproc_dir

bind = f"0.0.0.0:{_config.port}"
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
        sys.stderr.write(f"zai-proxy: configuration error: {_exc}\n")
        sys.exit(2)


def on_starting(server):
    shutil.rmtree(_config.multiproc_dir, ignore_errors=True)
    os.makedirs(_config.multiproc_dir, exist_ok=True)


def post_worker_init(worker):
    worker.configure_clients(_config, worker.wsgi.extensions["zai_proxy"].metrics)


def child_exit(server, worker):
    from prometheus_client import multiprocess
    multiprocess.mark_process_dead(worker.pid, _config.multiproc_dir)
