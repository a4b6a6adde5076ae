"""The WSGI entry point: `gunicorn -c gunicorn.conf.py 'app:create_app()'`.

This module only wires the pieces of `zai_proxy` together; each piece does one job.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Flask, request
from prometheus_client import CollectorRegistry

from zai_proxy import admin, errors, health, logs, upstream
from zai_proxy import config as config_module
from zai_proxy.buffered import BufferedResponse
from zai_proxy.capacity import Capacity
from zai_proxy.disconnect import DisconnectWatcher
from zai_proxy.errors import error_body
from zai_proxy.metrics import Exporter, Metrics
from zai_proxy.proxy import PROXIED_METHODS, Pipeline, ProxiedFirst
from zai_proxy.retry import RetryPolicy
from zai_proxy.routes import family_for_path
from zai_proxy.state import ProxyState, cancellable_wait

def create_app(config: config_module.Config | None = None, *,
               registry: CollectorRegistry | None = None, wait=cancellable_wait) -> Flask:
    config = config or config_module.load()
    logs.setup(config.log_level, secrets=(config.zai_api_key, config.admin_token,
                                          *config.proxy_api_keys,
                                          urlsplit(config.rate_limit_storage_uri).password))
    registry = registry or CollectorRegistry()
    metrics = Metrics(config.variant, registry, config.model_labels)
    metrics.build_info.labels(config.version, config.commit, config.build_time,
                              config.variant).set(1)

    state = ProxyState(
        config=config, metrics=metrics, upstream=upstream.Upstream(config),
        capacity=Capacity(config.max_in_flight_per_process, config.max_workers, metrics),
        watcher=DisconnectWatcher(), request_log=logs.RequestLog(config.variant),
        retry_policy=RetryPolicy(config.max_retries, config.retry_backoff_base,
                                 max_wait=config.rate_limit_max_wait),
        wait=wait)
    if config.rate_limit_enabled:
        from zai_proxy.ratelimit import RateLimiter
        state.limiter = RateLimiter(config, metrics, worker_processes=config.web_concurrency)
    if config.token_counting_enabled:
        from zai_proxy.tokens import TokenAccounting
        state.tokens = TokenAccounting(config, metrics)
    if config.quota_poll_enabled:
        from zai_proxy.quota import QuotaSupervisor
        state.quota = QuotaSupervisor(config, metrics, upstream.make_session(config))
        state.quota.start()

    app = Flask("zai_proxy")
    app.url_map.merge_slashes = False   # never answer a redirect, not even for '//'
    app.url_map.strict_slashes = False
    app.extensions["zai_proxy"] = state
    Exporter(app, path="/metrics", registry=registry, export_defaults=False)
    app.register_blueprint(health.bp)
    app.register_blueprint(admin.bp)

    pipeline = Pipeline(state)

    def proxied(rest: str = ""):
        response = pipeline.handle(request)
        return response.as_werkzeug() if isinstance(response, BufferedResponse) else response

    app.add_url_rule("/", "proxied_root", proxied, methods=list(PROXIED_METHODS))
    app.add_url_rule("/<path:rest>", "proxied", proxied, methods=list(PROXIED_METHODS))
    app.wsgi_app = ProxiedFirst(app.wsgi_app, pipeline)

    # What the catch-all route cannot match (e.g. a control character in the path) and wrong
    # methods on service endpoints still answer in the caller's family format.
    def family_error(exc: errors.ProxyError):
        return (error_body(family_for_path(request.path), exc.status, exc.message, exc.code),
                exc.status, {"Content-Type": "application/json"})

    app.register_error_handler(404, lambda _exc: family_error(errors.unknown_route()))
    app.register_error_handler(405, lambda _exc: family_error(
        errors.method_not_allowed(request.method, request.path)))

    return app

