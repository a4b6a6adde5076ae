"""Anthropic-family bodies as Z.AI's `/api/anthropic` sends them: messages (whole and streamed),
count_tokens and the model list. Pure functions from (request, scenario) to bytes."""

from __future__ import annotations

from . import content
from .openai_payloads import MODELS, dumps
from .scenarios import Scenario

# OpenAI-style finish reasons a scenario may name, in Anthropic's words; others pass verbatim.
_SIGNATURE = "fake-signature"
_STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use"}


def _stop_reason(scenario: Scenario) -> str:
    reason = scenario.get_str("finish_reason", "stop")
    return _STOP_REASONS.get(reason, reason)


def _usage(scenario: Scenario) -> dict:
    u = content.usage(scenario)
    return {
        "input_tokens": u.prompt_tokens,
        "output_tokens": u.completion_tokens,
        "cache_read_input_tokens": u.cached_tokens,
        "cache_creation_input_tokens": u.cache_creation_tokens,
    }


def _blocks(scenario: Scenario, model: str) -> list[dict]:
    blocks = [{"type": "text", "text": "".join(content.texts(scenario, model))}]
    thinking = content.reasoning(scenario, model)
    if thinking:
        blocks.insert(0, {"type": "thinking", "thinking": "".join(thinking),
                          "signature": _SIGNATURE})
    return blocks


def message(model: str, scenario: Scenario) -> bytes:
    body = {
        "id": content.message_id("msg_", scenario, model),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": _blocks(scenario, model),
        "stop_reason": _stop_reason(scenario),
        "stop_sequence": None,
    }
    if not scenario.flag("no_usage"):
        body["usage"] = _usage(scenario)
    return dumps(body)


def _event(name: str, data: dict) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + dumps(data) + b"\n\n"


def _block(index: int, start: dict, deltas: list[dict]) -> list[bytes]:
    events = [_event("content_block_start", {"type": "content_block_start", "index": index,
                                             "content_block": start})]
    if index == 0:
        events.append(_event("ping", {"type": "ping"}))  # where Anthropic sends it
    events += [_event("content_block_delta", {"type": "content_block_delta", "index": index,
                                              "delta": delta}) for delta in deltas]
    events.append(_event("content_block_stop", {"type": "content_block_stop", "index": index}))
    return events


def message_stream(model: str, scenario: Scenario) -> list[bytes]:
    """message_start, content_block_start, ping, content_block_delta x N, content_block_stop,
    message_delta, message_stop (with `reasoning_chunks`, a thinking block comes first).

    As on Z.AI, message_start carries a small or zero `input_tokens` (`start_input_tokens`) and
    the cache fields; the real counts arrive in message_delta.
    """
    with_usage = not scenario.flag("no_usage")
    u = content.usage(scenario)
    start_message = {
        "id": content.message_id("msg_", scenario, model), "type": "message",
        "role": "assistant", "model": model, "content": [], "stop_reason": None,
        "stop_sequence": None,
    }
    if with_usage:
        start_message["usage"] = {
            "input_tokens": u.start_input_tokens, "output_tokens": 0,
            "cache_read_input_tokens": u.cached_tokens,
            "cache_creation_input_tokens": u.cache_creation_tokens,
        }
    events = [_event("message_start", {"type": "message_start", "message": start_message})]
    index = 0
    thinking = content.reasoning(scenario, model)
    if thinking:
        deltas = [{"type": "thinking_delta", "thinking": t} for t in thinking]
        deltas.append({"type": "signature_delta", "signature": _SIGNATURE})
        events += _block(index, {"type": "thinking", "thinking": "", "signature": ""}, deltas)
        index += 1
    deltas = [{"type": "text_delta", "text": t} for t in content.texts(scenario, model)]
    events += _block(index, {"type": "text", "text": ""}, deltas)
    delta = {"type": "message_delta",
             "delta": {"stop_reason": _stop_reason(scenario), "stop_sequence": None}}
    if with_usage:
        delta["usage"] = _usage(scenario)
    events.append(_event("message_delta", delta))
    events.append(_event("message_stop", {"type": "message_stop"}))
    return events


def stream_error_event(error_type: str, message: str) -> bytes:
    return _event("error", {"type": "error", "error": {"type": error_type, "message": message}})


def count_tokens(scenario: Scenario) -> bytes:
    return dumps({"input_tokens": content.usage(scenario).prompt_tokens})


def model_list() -> bytes:
    data = [{"type": "model", "id": m, "display_name": m.upper(),
             "created_at": "2026-01-01T00:00:00Z"} for m in MODELS]
    return dumps({"data": data, "has_more": False, "first_id": MODELS[0],
                  "last_id": MODELS[-1]})
