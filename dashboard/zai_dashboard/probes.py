"""Probes and the dashboard's own metrics: /healthz, /readyz, /metrics."""

from __future__ import annotations

import os

from flask import Blueprint, Response, current_app, jsonify
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

bp = Blueprint("probes", __name__)


def _service():
    return current_app.extensions["zai_dashboard"]


@bp.get("/healthz")
def healthz():
    return jsonify(status="ok", pid=os.getpid())


@bp.get("/readyz")
def readyz():
    """Ready once the storage is settled (a file, or memory after a failure) and the first
    tick is done, so the first page load already has both variants' state."""
    service = _service()
    if service.broker.closed:
        return jsonify(status="stopping"), 503
    if not service.ready:
        return jsonify(status="starting"), 503
    return jsonify(status="ready", storage=service.storage.status()["state"])


@bp.get("/metrics")
def metrics():
    service = _service()
    return Response(generate_latest(service.metrics.registry), mimetype=CONTENT_TYPE_LATEST)
