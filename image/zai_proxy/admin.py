"""POST /admin/reset-rate-limit: forget what the controller learned. Off unless ADMIN_TOKEN is set."""

from __future__ import annotations

import hmac

from flask import Blueprint, current_app, jsonify, request

bp = Blueprint("admin", __name__)


def _error(status: int, message: str, code: str):
    return jsonify(error={"message": message, "type": "authentication_error"
                          if status == 401 else "invalid_request_error", "code": code}), status


@bp.post("/admin/reset-rate-limit")
def reset_rate_limit():
    state = current_app.extensions["zai_proxy"]
    token = state.config.admin_token
    if not token:
        return _error(404, "The admin endpoint is disabled: set ADMIN_TOKEN to enable it.",
                      "admin_disabled")
    auth = request.headers.get("Authorization", "")
    presented = auth[7:].strip() if auth[:7].lower() == "bearer " else ""
    if not hmac.compare_digest(presented.encode(), token.encode()):
        return _error(401, "Missing or invalid admin token (Authorization: Bearer <ADMIN_TOKEN>).",
                      "invalid_admin_token")
    if state.limiter is None:
        return _error(409, "Rate limiting is disabled (RATE_LIMIT_ENABLED=false).",
                      "rate_limit_disabled")
    state.limiter.reset()
    return jsonify(status="reset", rate_limit=state.limiter.snapshot())
