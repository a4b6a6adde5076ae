"""Local token counting with tiktoken: the fallback when the upstream does not report usage.

GLM's own tokenizer differs from tiktoken's, so every local count is an estimate; the upstream's
`usage` is the truth (see accounting.py). Counting must never block or break a request:
- time is bounded: only the first `max_chars` characters of a request are tokenized, the rest is
  estimated at 4 characters per token;
- it never raises: any error degrades to the characters/4 estimate;
- special-token text such as "<|endoftext|>" in a prompt is counted as ordinary text
  (`encode_ordinary`), where tiktoken's `encode` would raise.

What is counted, on both surfaces: message text (string and content-part forms), roles and
names, the system prompt, tool definitions (their compact JSON), tool calls (name and arguments),
tool results and reasoning/thinking text sent back in history. Images and other binary parts are
not counted. Each message adds OpenAI's cookbook framing (3 tokens, plus 1 for a `name`), and a
conversation adds 3 tokens priming the reply; the same framing is applied to the Anthropic surface.
"""

from __future__ import annotations

import json
import logging
import os
import time

from .config import ConfigError

log = logging.getLogger(__name__)

TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
REPLY_PRIMING = 3
CHARS_PER_TOKEN = 4


def estimate_chars(chars: int) -> int:
    """Tokens for `chars` characters that were not tokenized (4 characters per token, rounded up)."""
    return (chars + CHARS_PER_TOKEN - 1) // CHARS_PER_TOKEN if chars > 0 else 0


def _json(value) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


class _Pieces:
    """Text to tokenize, kept up to a character budget; beyond it only lengths are added up."""

    def __init__(self, budget: int):
        self.budget = budget
        self.kept: list[str] = []
        self.overflow = 0  # characters past the budget
        self.overhead = 0  # framing tokens

    def add(self, text) -> None:
        if not isinstance(text, str) or not text:
            return
        room = self.budget
        if room >= len(text):
            self.kept.append(text)
            self.budget = room - len(text)
        else:
            if room > 0:
                self.kept.append(text[:room])
                self.budget = 0
            self.overflow += len(text) - room

    @property
    def chars(self) -> int:
        return sum(len(piece) for piece in self.kept) + self.overflow


def _add_openai_content(pieces: _Pieces, content) -> None:
    if isinstance(content, str):
        pieces.add(content)
    elif isinstance(content, list):
        for part in content:
            if isinstance(part, str):
                pieces.add(part)
            elif isinstance(part, dict):
                kind = part.get("type")
                if kind == "refusal":
                    pieces.add(part.get("refusal"))
                else:  # "text", and any other part that carries text
                    pieces.add(part.get("text"))


def _add_tool_call(pieces: _Pieces, call) -> None:
    if not isinstance(call, dict):
        return
    function = call.get("function", call)
    if isinstance(function, dict):
        pieces.add(function.get("name"))
        arguments = function.get("arguments")
        if arguments is not None and not isinstance(arguments, str):
            arguments = _json(arguments)
        pieces.add(arguments)


def _add_definitions(pieces: _Pieces, definitions) -> None:
    if isinstance(definitions, list):
        for definition in definitions:
            pieces.add(_json(definition))


def _messages(body: dict, pieces: _Pieces):
    """Each message dict of either surface, its framing tokens and role already counted."""
    messages = body.get("messages")
    if not isinstance(messages, list):
        return
    for message in messages:
        if isinstance(message, dict):
            pieces.overhead += TOKENS_PER_MESSAGE
            pieces.add(message.get("role"))
            yield message


def _collect_openai(body: dict, pieces: _Pieces) -> None:
    messages = body.get("messages")
    if isinstance(messages, list):
        for message in _messages(body, pieces):
            if isinstance(message.get("name"), str):
                pieces.overhead += TOKENS_PER_NAME
                pieces.add(message["name"])
            _add_openai_content(pieces, message.get("content"))
            pieces.add(message.get("reasoning_content"))
            tool_calls = message.get("tool_calls")
            if isinstance(tool_calls, list):
                for call in tool_calls:
                    _add_tool_call(pieces, call)
            if isinstance(message.get("function_call"), dict):
                _add_tool_call(pieces, message["function_call"])
        pieces.overhead += REPLY_PRIMING
    _add_definitions(pieces, body.get("tools"))
    _add_definitions(pieces, body.get("functions"))
    # Legacy completions (`prompt`) and embeddings (`input`): a string or a list of strings.
    for key in ("prompt", "input"):
        value = body.get(key)
        for text in (value if isinstance(value, list) else [value]):
            pieces.add(text)


def _add_anthropic_content(pieces: _Pieces, content) -> None:
    if isinstance(content, str):
        pieces.add(content)
        return
    if not isinstance(content, list):
        return
    for block in content:
        if isinstance(block, str):
            pieces.add(block)
            continue
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "thinking":
            pieces.add(block.get("thinking"))
        elif kind == "tool_use":
            pieces.add(block.get("name"))
            if block.get("input") is not None:
                pieces.add(_json(block["input"]))
        elif kind == "tool_result":
            _add_anthropic_content(pieces, block.get("content"))
        elif kind == "document":
            source = block.get("source")
            if isinstance(source, dict):
                if source.get("type") == "text":
                    pieces.add(source.get("data"))
                else:
                    _add_anthropic_content(pieces, source.get("content"))
        else:  # "text", and any other block that carries text
            pieces.add(block.get("text"))


def _collect_anthropic(body: dict, pieces: _Pieces) -> None:
    _add_anthropic_content(pieces, body.get("system"))
    messages = body.get("messages")
    if isinstance(messages, list):
        for message in _messages(body, pieces):
            _add_anthropic_content(pieces, message.get("content"))
        pieces.overhead += REPLY_PRIMING
    _add_definitions(pieces, body.get("tools"))


class TokenCounter:
    """One per process: the encoding is loaded once, at start-up."""

    def __init__(self, encoding_name: str, max_chars: int, metrics):
        self.max_chars = max(0, int(max_chars))
        self.metrics = metrics
        try:
            import tiktoken

            self.encoding = tiktoken.get_encoding(encoding_name)
        except Exception as exc:  # any failure here is a deployment problem: say which knob
            cache = os.environ.get("TIKTOKEN_CACHE_DIR", "unset")
            raise ConfigError(
                f"TOKENIZER_ENCODING={encoding_name!r} cannot be loaded "
                f"({type(exc).__name__}: {exc}); tiktoken reads it from TIKTOKEN_CACHE_DIR="
                f"{cache} (the image bakes it there; locally run `make tiktoken-cache`), or set "
                "TOKEN_COUNTING_ENABLED=false") from None
        self._encode = self.encoding.encode_ordinary

    def count_text(self, text: str) -> int:
        """Tokens in `text`; characters beyond max_chars are estimated. Never raises."""
        if not text:
            return 0
        try:
            head = text[:self.max_chars]
            return len(self._encode(head)) + estimate_chars(len(text) - len(head))
        except Exception:
            log.debug("token counting failed; estimating", exc_info=True)
            return estimate_chars(len(text))

    def count_input(self, family: str, body: dict) -> tuple[int, bool]:
        """(tokens, estimated) for a request body of the "openai" or "anthropic" family."""
        started = time.perf_counter()
        pieces = _Pieces(self.max_chars)
        try:
            if not isinstance(body, dict):
                return 0, True
            if family == "anthropic":
                _collect_anthropic(body, pieces)
            else:
                _collect_openai(body, pieces)
            tokens = sum(len(self._encode(piece)) for piece in pieces.kept)
            return tokens + pieces.overhead + estimate_chars(pieces.overflow), pieces.overflow > 0
        except Exception:
            log.debug("input token counting failed; estimating", exc_info=True)
            return pieces.overhead + estimate_chars(pieces.chars), True
        finally:
            self.metrics.token_count_duration.observe(time.perf_counter() - started)
