"""UsageAccountant: one request's tokens and cost. The upstream's usage is the truth, estimates
are marked.

Directions and what they mean (the same on both surfaces, so sums across surfaces make sense):
- `input`: input tokens billed at the full input price, i.e. NOT read from the prompt cache.
  OpenAI's `prompt_tokens` includes the cached part (`prompt_tokens_details.cached_tokens`), so
  here input = prompt_tokens - cached_tokens. Anthropic's `input_tokens` already excludes cache
  reads and cache writes, so it is taken as is.
- `cache_read`: OpenAI `prompt_tokens_details.cached_tokens`; Anthropic
  `cache_read_input_tokens`.
- `cache_write`: Anthropic `cache_creation_input_tokens`; the OpenAI surface reports none.
- `output`: OpenAI `completion_tokens` (reasoning tokens are part of it); Anthropic
  `output_tokens`.
Each token is therefore in exactly one direction and priced once: total input seen by the model
= input + cache_read + cache_write.

Streams report usage in pieces. OpenAI: on any chunk once `stream_options.include_usage` is sent
(prepare_request adds it), usually a final chunk with empty `choices`; it is stripped from the
client's stream when the client did not ask for it. Anthropic: `message_start` carries input and
cache counts (Z.AI often sends input_tokens 0 there, so a 0 from it is not believed) and the
final `message_delta` the cumulative counts. Counts are cumulative, so the largest value seen wins.

A usage figure is believed only when it is a whole, non-negative number of at most
MAX_USAGE_TOKENS (an integral float such as 12.0 counts). Anything else the upstream puts there
(8.59e307, -3, 1.5, "12", true) would make the cost absurd or infinite and stay in the cost
counter until a restart, so it is treated as missing (estimated instead, and marked so), counted
in `zai_proxy_invalid_usage_total{direction,reason}`, named in the request line's `usage`
(`invalid`), and logged as a warning at most once a minute per process.

What the upstream did not report is estimated and marked (`zai_proxy_estimated_tokens_total`):
input from the local count made before forwarding (minus any reported cache tokens, which that
count also covers), output from the text that came back (content, reasoning, tool calls),
tokenized once at finish. A client that disconnects mid-stream is billed for the output it
caused, so the partial text is counted. Cache tokens are never estimated.

Hot-path cost matters (this runs for every streamed event when counting is on): events that
cannot carry usage are not JSON-parsed; their data is kept as is and parsed only at finish, and
only when the upstream did not report output (a disconnect, an upstream without usage). A read
of whole events with no "usage" in it is not even split into events (`on_plain_events`).
Nothing is recorded for answers that are not generations (errors, count_tokens, model lists).
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time

from ..logs import EveryPeriod
from ..pricing import DIRECTIONS, PriceTable, pricing_tier
from ..sse import Event, SSEParser
from ..streaming import AccountedEvents
from .counter import estimate_chars
from .text import LimitedText
from .walkers import answer_text, event_text

log = logging.getLogger(__name__)

DEFAULT_TEXT_CHARS = 200_000
# The largest usage figure believed: 10 million tokens, fifty times the largest context window of
# the GLM models and ten times the largest offered anywhere. A bigger one is not a count.
MAX_USAGE_TOKENS = 10_000_000
# Why a usage figure was not believed (the `reason` label of zai_proxy_invalid_usage_total).
NOT_A_NUMBER, NEGATIVE, FRACTION, TOO_LARGE = "not_a_number", "negative", "fraction", "too_large"
INVALID_REASONS = (NOT_A_NUMBER, NEGATIVE, FRACTION, TOO_LARGE)
# The direction each usage key feeds (OpenAI's prompt_tokens is input, cached part included).
_DIRECTION = {"prompt": "input", "input": "input", "output": "output",
              "cache_read": "cache_read", "cache_write": "cache_write"}
# Absurd figures tend to come on every answer of a broken upstream: one warning a minute.
INVALID_USAGE_LOG = EveryPeriod(60.0)
# Undigested event data kept before it is parsed down to its text, bounding memory per stream.
PENDING_DIGEST_CHARS = 2 << 20


def prepare_request(family: str, body: dict) -> tuple[dict, bool]:
    """(body to send upstream, whether the client itself asked for usage).

    Only an OpenAI streaming request changes: it gets `stream_options.include_usage=true` in a
    new dict (the caller's is left alone; `result is body` tells whether to re-serialize).
    """
    if family != "openai" or not isinstance(body, dict) or body.get("stream") is not True:
        return body, True
    options = body.get("stream_options")
    if options is None:
        options = {}
    if not isinstance(options, dict):
        return body, True  # malformed: the upstream will say so; nothing is injected
    if options.get("include_usage") is True:
        return body, True
    changed = dict(body)
    changed["stream_options"] = {**options, "include_usage": True}
    return changed, False


def usage_figure(value) -> tuple[int | None, str | None]:
    """(count, None) for a believable usage figure; (None, None) when there is none (absent or
    null); (None, reason) when there is one that cannot be a token count."""
    if value is None:
        return None, None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None, NOT_A_NUMBER
    if isinstance(value, float):
        if math.isnan(value):
            return None, NOT_A_NUMBER
        if math.isinf(value):
            return None, NEGATIVE if value < 0 else TOO_LARGE
    if value < 0:
        return None, NEGATIVE
    if value > MAX_USAGE_TOKENS:
        return None, TOO_LARGE
    if isinstance(value, float) and not value.is_integer():
        return None, FRACTION
    return int(value), None


class UsageAccountant:
    """One per proxied request while counting is on; used by the request's own thread."""

    def __init__(self, family: str, model: str | None, input_estimate: tuple[int, bool],
                 client_wants_usage: bool, prices: PriceTable, metrics, *, wall=time.time,
                 counter=None):
        self.family = "anthropic" if family == "anthropic" else "openai"
        self.model = model if isinstance(model, str) and model else None
        self.input_estimate = int(input_estimate[0]) if input_estimate else 0
        self.client_wants_usage = client_wants_usage
        self.prices = prices
        self.metrics = metrics
        self.counter = counter  # a TokenCounter for output estimates; None → characters/4
        self.tier = pricing_tier(wall())  # the tier in force when the request arrived
        self._usage: dict[str, int] = {}  # largest value reported per key
        self._trusted: set[str] = set()   # keys whose value is final (even when 0)
        self._invalid: dict[str, str] = {}  # direction → why a figure for it was not believed
        self._answered = False            # a generation came back (stream event or body)
        self._response_model: str | None = None
        self._body = None                 # parsed non-streaming answer, read for text lazily
        self._pending: list[str | bytes] = []  # streamed data (or whole raw events) not parsed
        self._pending_chars = 0
        limit = counter.max_chars if counter is not None else DEFAULT_TEXT_CHARS
        self._text = LimitedText(limit)
        self._summary: dict | None = None
        self._lock = threading.Lock()

    # Usage ----------------------------------------------------------------------------
    def _report(self, key: str, value, trusted: bool) -> None:
        count, problem = usage_figure(value)
        if problem is not None:
            self._invalid.setdefault(_DIRECTION[key], problem)
        if count is None:
            return
        if count > self._usage.get(key, -1):
            self._usage[key] = count
        if trusted:
            self._trusted.add(key)

    def _openai_usage(self, usage) -> None:
        if not isinstance(usage, dict):
            return
        self._report("prompt", usage.get("prompt_tokens"), True)
        self._report("output", usage.get("completion_tokens"), True)
        details = usage.get("prompt_tokens_details")
        if isinstance(details, dict):
            self._report("cache_read", details.get("cached_tokens"), True)

    def _anthropic_usage(self, usage, final: bool) -> None:
        if not isinstance(usage, dict):
            return
        # message_start's input_tokens is often a placeholder 0 on Z.AI, its output_tokens a
        # running count: only a final report (message_delta, whole body) makes them believed.
        start_input, _ = usage_figure(usage.get("input_tokens"))
        self._report("input", usage.get("input_tokens"), final or bool(start_input))
        self._report("output", usage.get("output_tokens"), final)
        self._report("cache_read", usage.get("cache_read_input_tokens"), True)
        self._report("cache_write", usage.get("cache_creation_input_tokens"), True)

    def _note_model(self, obj) -> None:
        if self._response_model is None and isinstance(obj, dict):
            model = obj.get("model")
            if isinstance(model, str) and model:
                self._response_model = model

    # Non-streaming --------------------------------------------------------------------
    def on_body(self, body: bytes, status: int = 200, parsed=None) -> None:
        """Read usage from a whole (non-streamed) answer, given as bytes and, when the caller
        already parsed it, as its JSON. Never raises, never alters `body`."""
        try:
            if status >= 400 or not body:
                return
            obj = parsed if parsed is not None else json.loads(body)
            if not isinstance(obj, dict):
                return
            if self.family == "anthropic":
                generation = "usage" in obj or obj.get("type") == "message"
                if generation:
                    self._anthropic_usage(obj.get("usage"), final=True)
            else:
                generation = "usage" in obj or "choices" in obj
                if generation:
                    self._openai_usage(obj.get("usage"))
            if generation:
                self._answered = True
                self._body = obj
                self._note_model(obj)
        except Exception:
            log.debug("could not read usage from the answer body", exc_info=True)

    # Streaming ------------------------------------------------------------------------
    def on_event(self, event: Event) -> bool:
        """Read one streamed event; False means: drop it (the usage-only chunk nobody asked for)."""
        try:
            self._answered = True
            data = event.data
            if not data:
                return True
            if self.family == "anthropic":
                return self._anthropic_event(event.event, data)
            if '"usage"' in data:  # cheap test: only such chunks are parsed now
                return self._openai_usage_chunk(data)
            if data != "[DONE]":
                self._keep(data)
        except Exception:
            log.debug("could not read a streamed event", exc_info=True)
        return True

    def stream_events(self) -> AccountedEvents:
        """How a streamed answer reaches the client: whole events, each read by this accountant."""
        return AccountedEvents(self)

    def on_plain_events(self, raw: bytes) -> None:
        """Whole events known to carry no usage: nothing to read now, so they are kept unsplit,
        for an output estimate at finish should one be needed."""
        self._answered = True
        self._keep(raw)

    def _openai_usage_chunk(self, data: str) -> bool:
        obj = json.loads(data)
        if not isinstance(obj, dict):
            return True
        self._note_model(obj)
        usage = obj.get("usage")
        self._openai_usage(usage)
        event_text("openai", obj, self._text)
        if isinstance(usage, dict) and not obj.get("choices"):
            return self.client_wants_usage
        return True

    def _anthropic_event(self, name: str | None, data: str) -> bool:
        if name == "content_block_delta":
            self._keep(data)
        elif name in ("message_start", "message_delta") or (name is None and '"usage"' in data):
            obj = json.loads(data)
            if isinstance(obj, dict):
                kind = obj.get("type", name)
                if kind == "message_start" and isinstance(obj.get("message"), dict):
                    self._note_model(obj["message"])
                    self._anthropic_usage(obj["message"].get("usage"), final=False)
                elif kind == "message_delta":
                    self._anthropic_usage(obj.get("usage"), final=True)
        elif name is None or name == "content_block_start":
            self._keep(data)
        return True  # ping, content_block_stop, message_stop, error: nothing to read

    def _keep(self, data: str | bytes) -> None:
        self._pending.append(data)
        self._pending_chars += len(data)
        if self._pending_chars > PENDING_DIGEST_CHARS:
            self._digest()

    def _digest(self) -> None:
        """Parse the kept event data down to its generated text."""
        for item in self._pending:
            datas = [event.data for event in SSEParser().feed(item)] \
                if isinstance(item, bytes) else (item,)
            for data in datas:
                try:
                    obj = json.loads(data)
                except ValueError:
                    continue  # [DONE], or not JSON
                if isinstance(obj, dict):
                    event_text(self.family, obj, self._text)
        self._pending = []
        self._pending_chars = 0

    # Result ---------------------------------------------------------------------------
    def _output_estimate(self) -> int:
        self._digest()
        if self._body is not None:
            answer_text(self.family, self._body, self._text)
        text = self._text.joined()
        counted = self.counter.count_text(text) if self.counter is not None \
            else estimate_chars(len(text))
        return counted + estimate_chars(self._text.overflow)

    def _count_invalid(self, model_label: str) -> None:
        for direction, reason in self._invalid.items():
            self.metrics.invalid_usage(direction, reason)
        held = INVALID_USAGE_LOG.due()
        if held is not None:
            more = f" ({held} more answers since the last line)" if held else ""
            log.warning("the upstream reported usage that cannot be a token count: %s; "
                        "estimated instead%s",
                        ", ".join(f"{d} {r}" for d, r in sorted(self._invalid.items())), more,
                        extra={"fields": {"event": "invalid_usage", "model": model_label,
                                          "invalid": dict(sorted(self._invalid.items())),
                                          "held_back": held}})

    def _tokens(self) -> tuple[dict, set]:
        usage, trusted = self._usage, self._trusted
        tokens = {direction: 0 for direction in DIRECTIONS}
        estimated = set()
        for key in ("cache_read", "cache_write"):
            tokens[key] = usage.get(key, 0)
        cached = tokens["cache_read"] + tokens["cache_write"]
        if self.family == "openai" and "prompt" in trusted:
            tokens["input"] = max(0, usage["prompt"] - tokens["cache_read"])
        elif self.family == "anthropic" and "input" in trusted:
            tokens["input"] = usage["input"]
        else:
            tokens["input"] = max(0, self.input_estimate - cached)
            estimated.add("input")
        if "output" in trusted:
            tokens["output"] = usage["output"]
        else:
            tokens["output"] = self._output_estimate()
            estimated.add("output")
        return tokens, estimated

    def finish(self, disconnected: bool = False, incomplete: bool = False) -> dict:
        """Record this request's tokens and cost once; later calls return the same summary.
        `incomplete`: the answer broke off or ended before its last event (its usage may be
        missing, and is then estimated)."""
        with self._lock:
            if self._summary is not None:
                return self._summary
            model = self.model or self._response_model
            summary = {"model": self.metrics.model_label(model), "pricing_tier": self.tier,
                       "recorded": False, "disconnected": bool(disconnected),
                       "incomplete": bool(incomplete),
                       "estimated": [], "cost_usd": 0.0,
                       "local_input_tokens": self.input_estimate}
            summary.update({f"{direction}_tokens": 0 for direction in DIRECTIONS})
            try:
                if self._answered:
                    tokens, estimated = self._tokens()
                    total = 0.0
                    for direction in DIRECTIONS:
                        count = tokens[direction]
                        cost = self.prices.cost(model, direction, count, self.tier)
                        self.metrics.add_tokens(direction, summary["model"], self.tier, count,
                                                cost, direction in estimated)
                        summary[f"{direction}_tokens"] = count
                        total += cost
                    summary.update(recorded=True, estimated=sorted(estimated),
                                   cost_usd=round(total, 9))
                if self._invalid:
                    summary["invalid"] = dict(sorted(self._invalid.items()))
                    self._count_invalid(summary["model"])
            except Exception:
                log.warning("token accounting failed for one request", exc_info=True)
            self._pending, self._body = [], None  # free memory early; the summary is all we need
            self._summary = summary
            return summary
