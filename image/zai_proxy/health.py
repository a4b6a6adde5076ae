"""Service endpoints that never call the upstream: /health, /livez, /readyz.

A misconfigured proxy never gets as far as answering: every setting (and the tokenizer) is
validated before gunicorn listens, so /readyz only has draining to report.
"""

from __future__ import annotations

import os

from flask import Blueprint, current_app, jsonify

bp = Blueprint("health", __name__)


def _state():
    return current_app.extensions["zai_proxy"]


@bp.get("/livez")
def livez():
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz():
    state = _state()
    if state.capacity.draining:
        return jsonify(status="draining"), 503
    return jsonify(status="ready")


@bp.get("/health")
def health():
    """Always 200: the body says what state the proxy is in."""
    state = _state()
    config = state.config
    status = "draining" if state.capacity.draining else "ok"
    return jsonify(
        status=status,
        variant=config.variant,
        pid=os.getpid(),
        version=config.version,
        in_flight=state.capacity.in_flight,
        max_in_flight=state.capacity.limit,
        token_counting=config.token_counting_enabled,
        rate_limit=state.limiter.snapshot(),
        quota=state.quota.snapshot(),
        upstream_auth=state.upstream_auth.snapshot(),
    )
