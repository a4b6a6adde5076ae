"""The WSGI entry point: `gunicorn -c dashboard/gunicorn.conf.py 'zai_dashboard.app:create_app()'`.

Wiring only: the parts are built by service.Service, the routes live in api, probes and ui.
"""

from __future__ import annotations

from flask import Flask, request
from prometheus_client import CollectorRegistry

from zai_proxy import logs

from . import api, probes, ui
from . import config as config_module
from .clock import Clock
from .service import Service
from .targets import Resolver, resolve_all


def create_app(config: config_module.Config | None = None, *, clock: Clock | None = None,
               resolver: Resolver = resolve_all, source=None,
               registry: CollectorRegistry | None = None, start: bool = True) -> Flask:
    config = config or config_module.load()
    logs.setup(config.log_level, secrets=config.secrets)
    service = Service(config, clock=clock, resolver=resolver, source=source, registry=registry)

    app = Flask("zai_dashboard")
    app.url_map.strict_slashes = False
    app.extensions["zai_dashboard"] = service
    app.register_blueprint(probes.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(ui.bp)

    @app.errorhandler(404)
    def not_found(_exc):
        return api.error(f"no such endpoint: {request.path}", 404)

    @app.errorhandler(405)
    def method_not_allowed(_exc):
        return api.error(f"{request.method} is not allowed on {request.path}; the API is "
                         "read-only (GET)", 405)

    if start:
        service.start()
    return app
