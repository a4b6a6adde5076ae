"""OpenAI-family bodies as Z.AI's `/api/paas/v4` sends them: chat completions (whole and
streamed), the model list and embeddings. Pure functions from (request, scenario) to bytes."""

from __future__ import annotations

import base64
import json
import struct
import zlib

from . import content
from .scenarios import Scenario

MODELS = ("glm-4.5", "glm-4.5-air", "glm-4.5-flash", "glm-4.5v", "glm-4.6", "glm-4.7",
          "glm-4.7-flash", "glm-5", "glm-5-turbo", "glm-5.1")


def dumps(obj) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def _usage(scenario: Scenario) -> dict:
    u = content.usage(scenario)
    return {
        "prompt_tokens": u.prompt_tokens,
        "completion_tokens": u.completion_tokens,
        "total_tokens": u.prompt_tokens + u.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": u.cached_tokens},
    }


def _message(scenario: Scenario, model: str) -> dict:
    message = {"role": "assistant", "content": "".join(content.texts(scenario, model))}
    thinking = content.reasoning(scenario, model)
    if thinking:
        message["reasoning_content"] = "".join(thinking)
    return message


def chat_completion(model: str, scenario: Scenario) -> bytes:
    cid = content.message_id("chatcmpl-", scenario, model)
    body = {
        "id": cid,
        "request_id": cid,
        "object": "chat.completion",
        "created": content.CREATED,
        "model": model,
        "choices": [{
            "index": 0,
            "message": _message(scenario, model),
            "finish_reason": scenario.get_str("finish_reason", "stop"),
        }],
    }
    if not scenario.flag("no_usage"):
        body["usage"] = _usage(scenario)
    return dumps(body)


def chat_stream(model: str, scenario: Scenario, include_usage: bool) -> list[bytes]:
    """SSE events (`data: {...}\\n\\n`), ending with `data: [DONE]`.

    The usage-only chunk (empty `choices`) is sent only when the client asked for it with
    `stream_options.include_usage`, as OpenAI does; `usage_in_last=1` instead puts usage on the
    chunk that carries `finish_reason`, as Z.AI has been seen to do.
    """
    cid = content.message_id("chatcmpl-", scenario, model)
    head = {"id": cid, "object": "chat.completion.chunk", "created": content.CREATED,
            "model": model}
    events = []
    for text in content.reasoning(scenario, model):
        chunk = dict(head, choices=[{"index": 0, "delta": {"role": "assistant",
                                                           "reasoning_content": text},
                                     "finish_reason": None}])
        events.append(b"data: " + dumps(chunk) + b"\n\n")
    for text in content.texts(scenario, model):
        chunk = dict(head, choices=[{"index": 0, "delta": {"role": "assistant", "content": text},
                                     "finish_reason": None}])
        events.append(b"data: " + dumps(chunk) + b"\n\n")
    with_usage = not scenario.flag("no_usage")
    last = dict(head, choices=[{"index": 0, "delta": {"role": "assistant", "content": ""},
                                "finish_reason": scenario.get_str("finish_reason", "stop")}])
    if with_usage and scenario.flag("usage_in_last"):
        last["usage"] = _usage(scenario)
    events.append(b"data: " + dumps(last) + b"\n\n")
    if with_usage and include_usage and not scenario.flag("usage_in_last"):
        events.append(b"data: " + dumps(dict(head, choices=[], usage=_usage(scenario))) + b"\n\n")
    events.append(b"data: [DONE]\n\n")
    return events


def stream_error_event(code: str, message: str) -> bytes:
    return b"data: " + dumps({"error": {"code": code, "message": message}}) + b"\n\n"


def model_list() -> bytes:
    return dumps({"object": "list", "data": [
        {"id": m, "object": "model", "created": content.CREATED, "owned_by": "z-ai"}
        for m in MODELS]})


def embeddings(request: dict, model: str, scenario: Scenario) -> bytes:
    """One vector per input, derived from the input text; base64 when the client asks for it
    (the openai SDK asks by default)."""
    inputs = request.get("input", "")
    if not isinstance(inputs, list) or (inputs and isinstance(inputs[0], int)):
        inputs = [inputs]
    dims = max(scenario.get_int("dims", 8), 1)
    as_base64 = request.get("encoding_format") == "base64"
    data = []
    for index, item in enumerate(inputs):
        seed = zlib.crc32(json.dumps(item).encode())
        vector = [((seed >> (i % 24)) % 1000) / 1000.0 - 0.5 for i in range(dims)]
        if as_base64:
            value = base64.b64encode(struct.pack(f"<{dims}f", *vector)).decode()
        else:
            value = vector
        data.append({"object": "embedding", "index": index, "embedding": value})
    prompt = content.usage(scenario).prompt_tokens
    return dumps({"object": "list", "model": model, "data": data,
                  "usage": {"prompt_tokens": prompt, "total_tokens": prompt}})
