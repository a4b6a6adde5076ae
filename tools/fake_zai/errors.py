"""Error answers for the `error` and `status` scenarios: status, headers and body in one of the
envelopes Z.AI has been seen to use."""

from __future__ import annotations

import email.utils
import time

from .openai_payloads import dumps
from .scenarios import Scenario, ScenarioError

_MESSAGES = {
    "1000": "Authentication failed",
    "1001": "Header is missing the Authorization parameter",
    "1002": "Invalid Authorization token",
    "1113": "Insufficient balance or no resource package. Please recharge.",
    "1210": "Invalid API parameters, please check the documentation",
    "1211": "Unknown Model, please check the model code.",
    "1261": "Prompt exceeds max length",
    "1301": "System detected potentially unsafe or sensitive content in input or generation.",
    "1302": "High concurrency usage of this API, please reduce concurrency or contact customer "
            "service to increase limits",
    "1303": "High frequency usage of this API, please reduce frequency or contact customer "
            "service to increase limits",
    "1304": "The daily call limit for this API has been reached",
    "1305": "The service may be temporarily overloaded, please try again later",
    "1308": "Usage limit reached for 5 hour.",
    "1309": "Your GLM Coding Plan package has expired",
    "1310": "Weekly/Monthly Limit Exhausted.",
    "1311": "Your current plan does not include access to this model",
    "1312": "The model is currently overloaded, please try another model",
    "1313": "Your account is being throttled under the fair use policy",
}
_ANTHROPIC_TYPES = {400: "invalid_request_error", 401: "authentication_error",
                    403: "permission_error", 404: "not_found_error", 413: "request_too_large",
                    429: "rate_limit_error", 529: "overloaded_error"}
_STATUS_TEXT = {500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable",
                504: "Gateway Timeout", 529: "Overloaded"}


def _default_status(code: str) -> int:
    # Z.AI answers auth and parameter codes with 401/400, everything quota-like with 429.
    number = int(code) if code.isdigit() else 0
    if 1000 <= number <= 1004:
        return 401
    if 1210 <= number <= 1215 or number in (1261, 1301):
        return 400
    return 429


def _anthropic_type(status: int) -> str:
    return _ANTHROPIC_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")


def _retry_headers(scenario: Scenario) -> list[tuple[str, str]]:
    seconds = scenario.get_str("retry_after")
    if seconds is None:
        return []
    if scenario.flag("retry_after_date"):
        when = time.time() + float(seconds)
        return [("Retry-After", email.utils.formatdate(when, usegmt=True))]
    return [("Retry-After", seconds)]


def _number_or_text(raw: str):
    try:
        return int(raw)
    except ValueError:
        try:
            return float(raw)
        except ValueError:
            return raw


def error_answer(scenario: Scenario, anthropic: bool, beta: bool
                 ) -> tuple[int, list[tuple[str, str]], bytes]:
    """The `error` scenario: a Z.AI business-code error (default 429 / 1302).

    `reset_time` goes into the body (unless `reset_field=0`) and, for 1308/1310, into the
    message as "Your limit will reset at <reset_time>"; `body_retry_after` becomes a
    `retry_after` field next to the code.
    """
    code = scenario.get_str("code", "1302")
    status = scenario.get_int("status", _default_status(code))
    message = scenario.get_str("message")
    reset = scenario.get_str("reset_time")
    if message is None:
        message = _MESSAGES.get(code, f"Fake Z.AI error {code}")
        if reset is not None and code in ("1308", "1310"):
            message += f" Your limit will reset at {reset}"
    extra = {}
    if reset is not None and scenario.get_str("reset_field", "1") != "0":
        extra["reset_time"] = _number_or_text(reset)
    body_retry = scenario.get_str("body_retry_after")
    if body_retry is not None:
        extra["retry_after"] = _number_or_text(body_retry)
    envelope = scenario.get_str("envelope", "zai")
    if envelope == "zai":
        body = {"error": {"code": code, "message": message, **extra}}
    elif envelope == "flat":
        body = {"code": _number_or_text(code), "msg": message, "success": False, **extra}
    elif envelope == "anthropic":
        error_type = scenario.get_str("error_type", _anthropic_type(status))
        body = {"type": "error", "error": {"type": error_type, "message": message, **extra}}
    else:
        raise ScenarioError(f"envelope={envelope!r} unknown; known: zai, flat, anthropic")
    headers = [("Content-Type", "application/json")] + _retry_headers(scenario)
    if anthropic and beta and status == 429:
        # Z.AI's Anthropic surface adds this when Claude Code's anthropic-beta header is present.
        headers.append(("anthropic-ratelimit-unified-status", "rejected"))
    return status, headers, dumps(body)


def status_answer(scenario: Scenario, anthropic: bool
                  ) -> tuple[int, list[tuple[str, str]], bytes]:
    """The `status` scenario: a bare HTTP failure (default 503, or 529 on the Anthropic surface),
    with a JSON body in the surface's format, an nginx-like HTML page, or nothing."""
    # `status=` is accepted too, since `error` spells the HTTP status that way.
    status = scenario.get_int("code", scenario.get_int("status", 529 if anthropic else 503))
    text = scenario.get_str("message", _STATUS_TEXT.get(status, f"HTTP {status}"))
    kind = scenario.get_str("body", "json")
    headers = _retry_headers(scenario)
    if kind == "empty":
        return status, headers, b""
    if kind == "html":
        page = f"<html><head><title>{status} {text}</title></head><body><center><h1>{status} " \
               f"{text}</h1></center><hr><center>nginx</center></body></html>\n"
        return status, [("Content-Type", "text/html")] + headers, page.encode()
    if kind != "json":
        raise ScenarioError(f"body={kind!r} unknown; known: json, html, empty")
    if anthropic:
        body = {"type": "error", "error": {"type": _anthropic_type(status), "message": text}}
    else:
        body = {"error": {"code": str(status), "message": text}}
    return status, [("Content-Type", "application/json")] + headers, dumps(body)
