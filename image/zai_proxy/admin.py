"""POST /admin/reset-rate-limit: forget what the controller learned. Off unless ADMIN_TOKEN is set."""

from __future__ import annotations

import hmac

from flask import Blueprint, current_app, jsonify, request

from . import errors

bp = Blueprint("admin", __name__)


def _error(exc: errors.ProxyError):
    kind = "authentication_error" if exc.status == 401 else "invalid_request_error"
    return jsonify(error={"message": exc.message, "type": kind, "code": exc.code}), exc.status


@bp.post("/admin/reset-rate-limit")
def reset_rate_limit():
    state = current_app.extensions["zai_proxy"]
    token = state.config.admin_token
    if not token:
        return _error(errors.admin_disabled())
    auth = request.headers.get("Authorization", "")
    presented = auth[7:].strip() if auth[:7].lower() == "bearer " else ""
    if not hmac.compare_digest(presented.encode(), token.encode()):
        return _error(errors.invalid_admin_token())
    if not state.limiter.enabled:
        return _error(errors.rate_limit_disabled())
    state.limiter.reset()
    return jsonify(status="reset", rate_limit=state.limiter.snapshot())
