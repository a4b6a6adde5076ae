"""The per-family message walkers: which text of a request or of an answer carries tokens.

Requests (input), on both surfaces: message text (string and content-part forms), roles and
names, the system prompt, tool definitions (their compact JSON), tool calls (name and
arguments), tool results and reasoning/thinking text sent back in history. Images and other
binary parts carry no text here. Each message adds OpenAI's cookbook framing (3 tokens, plus 1
for a `name`), and a conversation adds 3 tokens priming the reply; the same framing is applied
to the Anthropic surface.

Answers (output): generated content, reasoning/thinking, tool calls (name and arguments), from
a whole body or from one streamed event.

Every walker adds to a LimitedText and never raises on odd shapes: a field of the wrong type is
skipped.
"""

from __future__ import annotations

import json

from .text import LimitedText

TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
REPLY_PRIMING = 3


def compact_json(value) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


# Requests ------------------------------------------------------------------------------------
def request_text(family: str, body: dict, text: LimitedText) -> int:
    """Add a request body's text to `text`; returns the framing tokens its messages add."""
    if family == "anthropic":
        return _anthropic_request(body, text)
    return _openai_request(body, text)


def _openai_request(body: dict, text: LimitedText) -> int:
    framing = 0
    messages = body.get("messages")
    if isinstance(messages, list):
        for message in messages:
            if not isinstance(message, dict):
                continue
            framing += TOKENS_PER_MESSAGE
            text.add(message.get("role"))
            if isinstance(message.get("name"), str):
                framing += TOKENS_PER_NAME
                text.add(message["name"])
            _openai_content(message.get("content"), text)
            text.add(message.get("reasoning_content"))
            tool_calls = message.get("tool_calls")
            if isinstance(tool_calls, list):
                for call in tool_calls:
                    _request_tool_call(call, text)
            if isinstance(message.get("function_call"), dict):
                _request_tool_call(message["function_call"], text)
        framing += REPLY_PRIMING
    _definitions(body.get("tools"), text)
    _definitions(body.get("functions"), text)
    # Legacy completions (`prompt`) and embeddings (`input`): a string or a list of strings.
    for key in ("prompt", "input"):
        value = body.get(key)
        for item in (value if isinstance(value, list) else [value]):
            text.add(item)
    return framing


def _openai_content(content, text: LimitedText) -> None:
    if isinstance(content, str):
        text.add(content)
    elif isinstance(content, list):
        for part in content:
            if isinstance(part, str):
                text.add(part)
            elif isinstance(part, dict):
                if part.get("type") == "refusal":
                    text.add(part.get("refusal"))
                else:  # "text", and any other part that carries text
                    text.add(part.get("text"))


def _request_tool_call(call, text: LimitedText) -> None:
    if not isinstance(call, dict):
        return
    function = call.get("function", call)
    if isinstance(function, dict):
        text.add(function.get("name"))
        arguments = function.get("arguments")
        if arguments is not None and not isinstance(arguments, str):
            arguments = compact_json(arguments)
        text.add(arguments)


def _definitions(definitions, text: LimitedText) -> None:
    if isinstance(definitions, list):
        for definition in definitions:
            text.add(compact_json(definition))


def _anthropic_request(body: dict, text: LimitedText) -> int:
    framing = 0
    _anthropic_content(body.get("system"), text)
    messages = body.get("messages")
    if isinstance(messages, list):
        for message in messages:
            if not isinstance(message, dict):
                continue
            framing += TOKENS_PER_MESSAGE
            text.add(message.get("role"))
            _anthropic_content(message.get("content"), text)
        framing += REPLY_PRIMING
    _definitions(body.get("tools"), text)
    return framing


def _anthropic_content(content, text: LimitedText) -> None:
    if isinstance(content, str):
        text.add(content)
        return
    if not isinstance(content, list):
        return
    for block in content:
        if isinstance(block, str):
            text.add(block)
            continue
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "thinking":
            text.add(block.get("thinking"))
        elif kind == "tool_use":
            text.add(block.get("name"))
            if block.get("input") is not None:
                text.add(compact_json(block["input"]))
        elif kind == "tool_result":
            _anthropic_content(block.get("content"), text)
        elif kind == "document":
            source = block.get("source")
            if isinstance(source, dict):
                if source.get("type") == "text":
                    text.add(source.get("data"))
                else:
                    _anthropic_content(source.get("content"), text)
        else:  # "text", and any other block that carries text
            text.add(block.get("text"))


# Answers -------------------------------------------------------------------------------------
def answer_text(family: str, body: dict, text: LimitedText) -> None:
    """Add the generated text of a whole (non-streamed) answer."""
    if family == "anthropic":
        content = body.get("content")
        for block in content if isinstance(content, list) else []:
            _anthropic_block(block, text)
    else:
        _openai_choices(body, text)


def event_text(family: str, event: dict, text: LimitedText) -> None:
    """Add the generated text of one streamed event's data."""
    if family == "anthropic":
        kind = event.get("type")
        if kind == "content_block_delta":
            _anthropic_block(event.get("delta"), text)
        elif kind == "content_block_start":
            _anthropic_block(event.get("content_block"), text)
    else:
        _openai_choices(event, text)


def _openai_choices(obj: dict, text: LimitedText) -> None:
    choices = obj.get("choices")
    if isinstance(choices, list):
        for choice in choices:
            if isinstance(choice, dict):
                _openai_message(choice.get("delta") or choice.get("message"), text)
                text.add(choice.get("text"))  # legacy completions


def _openai_message(message, text: LimitedText) -> None:
    if not isinstance(message, dict):
        return
    content = message.get("content")
    if isinstance(content, list):
        for part in content:
            if isinstance(part, dict):
                text.add(part.get("text"))
    else:
        text.add(content)
    text.add(message.get("reasoning_content"))
    calls = message.get("tool_calls")
    for call in calls if isinstance(calls, list) else [message.get("function_call")]:
        function = call.get("function", call) if isinstance(call, dict) else None
        if isinstance(function, dict):
            text.add(function.get("name"))
            text.add(function.get("arguments"))


def _anthropic_block(block, text: LimitedText) -> None:
    if not isinstance(block, dict):
        return
    text.add(block.get("text"))
    text.add(block.get("thinking"))
    text.add(block.get("partial_json"))
    if block.get("type") == "tool_use":
        text.add(block.get("name"))
        if block.get("input"):
            text.add(json.dumps(block["input"], separators=(",", ":"), ensure_ascii=False))
