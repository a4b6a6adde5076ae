"""TokenCounter: local token counting with tiktoken, the fallback when the upstream does not
report usage.

GLM's own tokenizer differs from tiktoken's, so every local count is an estimate; the upstream's
`usage` is the truth (see accountant.py). Counting must never block or break a request:
- time is bounded: only the first `max_chars` characters of a request are tokenized, the rest is
  estimated at 4 characters per token;
- it never raises: any error degrades to the characters/4 estimate;
- special-token text such as "<|endoftext|>" in a prompt is counted as ordinary text
  (`encode_ordinary`), where tiktoken's `encode` would raise.

Which text of a request counts is the walkers' business (walkers.py).
"""

from __future__ import annotations

import logging
import time

from ..tokenizer import load_encoding
from .text import LimitedText
from .walkers import request_text

log = logging.getLogger(__name__)

CHARS_PER_TOKEN = 4


def estimate_chars(chars: int) -> int:
    """Tokens for `chars` characters that were not tokenized (4 characters per token, rounded up)."""
    return (chars + CHARS_PER_TOKEN - 1) // CHARS_PER_TOKEN if chars > 0 else 0


class TokenCounter:
    """One per process: the encoding is loaded once, at start-up."""

    def __init__(self, encoding_name: str, max_chars: int, metrics):
        self.max_chars = max(0, int(max_chars))
        self.metrics = metrics
        self.encoding = load_encoding(encoding_name)   # ConfigError naming the fix
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
        text = LimitedText(self.max_chars)
        framing = 0
        try:
            if not isinstance(body, dict):
                return 0, True
            framing = request_text(family, body, text)
            tokens = sum(len(self._encode(part)) for part in text.parts)
            return tokens + framing + estimate_chars(text.overflow), text.overflow > 0
        except Exception:
            log.debug("input token counting failed; estimating", exc_info=True)
            return framing + estimate_chars(text.chars), True
        finally:
            self.metrics.token_count_duration.observe(time.perf_counter() - started)
