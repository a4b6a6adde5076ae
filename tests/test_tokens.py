"""Input token counting: exact cl100k_base counts for every content form, bounded and unbreakable.

Expected numbers are written as sums of framing (3 per message, +1 per name, +3 reply priming)
and cl100k_base counts of the pieces, noted beside each. tiktoken reads the encoding from the
local cache (`make tiktoken-cache`), never from the network.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

os.environ.setdefault("TIKTOKEN_CACHE_DIR",
                      str(Path(__file__).resolve().parent.parent / ".cache" / "tiktoken"))

from zai_proxy.config import ConfigError  # noqa: E402
from zai_proxy.metrics import Metrics  # noqa: E402
from zai_proxy.tokens.counter import TokenCounter, estimate_chars  # noqa: E402

WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                   "required": ["city"]}}}  # compact JSON: 39 tokens
ANTHROPIC_WEATHER_TOOL = {"name": "get_weather", "description": "Weather for a city",
                          "input_schema": {"type": "object",
                                           "properties": {"city": {"type": "string"}}}}  # 29


@pytest.fixture
def registry():
    return CollectorRegistry()


@pytest.fixture
def counter(registry):
    return TokenCounter("cl100k_base", 200_000, Metrics("test", registry))


def duration_count(registry):
    return registry.get_sample_value("zai_proxy_token_count_duration_seconds_count",
                                     {"variant": "test"})


def test_openai_string_content(counter, registry):
    body = {"model": "glm-4.7", "messages": [{"role": "user", "content": "Hello, world!"}]}
    # 3 framing + "user" 1 + "Hello, world!" 4 + 3 priming
    assert counter.count_input("openai", body) == (11, False)
    assert duration_count(registry) == 1


def test_openai_content_parts_count_text_and_skip_images(counter):
    body = {"messages": [{"role": "user", "content": [
        {"type": "text", "text": "Describe this picture."},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]}]}
    # 3 + "user" 1 + "Describe this picture." 4 + 3
    assert counter.count_input("openai", body) == (11, False)


def test_openai_system_name_tools_tool_calls_and_tool_results(counter):
    body = {
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "name": "alice", "content": "Hello, world!"},
            {"role": "assistant", "content": None, "reasoning_content": "Let me think.",
             "tool_calls": [{"id": "call_1", "type": "function",
                             "function": {"name": "get_weather",
                                          "arguments": '{"city":"Paris"}'}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": '{"temp":21}'},
            {"role": "assistant", "content": [{"type": "refusal", "refusal": "Sunny, 21 C."}]},
        ],
        "tools": [WEATHER_TOOL],
    }
    expected = (
        3 + 1 + 4            # system: "system", "You are terse."
        + 3 + 1 + 1 + 1 + 4  # user: "user", name +1, "alice", "Hello, world!"
        + 3 + 1 + 4 + 2 + 5  # assistant: role, "Let me think.", "get_weather", arguments
        + 3 + 1 + 5          # tool: "tool", '{"temp":21}'
        + 3 + 1 + 7          # assistant: role, refusal "Sunny, 21 C."
        + 3                  # reply priming
        + 39)                # the tool definition
    assert counter.count_input("openai", body) == (expected, False)


def test_openai_legacy_functions_and_embeddings_input(counter):
    legacy = {"messages": [{"role": "assistant", "function_call": {
        "name": "get_weather", "arguments": {"city": "Paris"}}}]}
    # 3 + "assistant" 1 + "get_weather" 2 + '{"city":"Paris"}' 5 + 3
    assert counter.count_input("openai", legacy) == (14, False)
    embeddings = {"model": "embedding-3", "input": ["Hello, world!", "Hi!"]}
    assert counter.count_input("openai", embeddings) == (4 + 2, False)


def test_anthropic_system_string_and_blocks(counter):
    body = {"system": "You are terse.",
            "messages": [{"role": "user", "content": "What is 2+2?"}]}
    # "You are terse." 4 + 3 + "user" 1 + "What is 2+2?" 7 + 3
    assert counter.count_input("anthropic", body) == (18, False)
    blocks = dict(body, system=[{"type": "text", "text": "You are terse."},
                                {"type": "text", "text": "Be brief."}])
    assert counter.count_input("anthropic", blocks) == (18 + 3, False)


def test_anthropic_tool_use_tool_result_thinking_and_tools(counter):
    body = {
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "Hello, world!"},
                                         {"type": "image", "source": {"type": "base64",
                                                                      "data": "AAAA"}}]},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "Let me think.", "signature": "sig"},
                {"type": "text", "text": "I will check."},
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather",
                 "input": {"city": "Paris"}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1",
                 "content": [{"type": "text", "text": '{"temp":21}'}]},
                {"type": "tool_result", "tool_use_id": "toolu_2", "content": "Sunny, 21 C."}]},
        ],
        "tools": [ANTHROPIC_WEATHER_TOOL],
    }
    expected = (
        3 + 1 + 4              # user: role, text (the image is not counted)
        + 3 + 1 + 4 + 4 + 2 + 5  # assistant: role, thinking, text, tool name, input JSON
        + 3 + 1 + 5 + 7        # user: role, both tool results
        + 3                    # reply priming
        + 29)                  # the tool definition
    assert counter.count_input("anthropic", body) == (expected, False)


def test_special_token_text_is_counted_as_plain_text(counter):
    body = {"messages": [{"role": "user", "content": "<|endoftext|>"}]}
    assert counter.count_input("openai", body) == (3 + 1 + 7 + 3, False)


def test_text_beyond_max_chars_is_estimated(registry):
    counter = TokenCounter("cl100k_base", 10, Metrics("test", registry))
    body = {"messages": [{"role": "user", "content": "Hello, world!" + "x" * 87}]}
    # budget 10 chars: "user" (4) + "Hello," (6) tokenized = 1 + 2; the other 94 chars → 24
    assert counter.count_input("openai", body) == (3 + 1 + 2 + 24 + 3, True)
    # "Hello, wor" is 3 tokens ("Hello", ",", " wor"); "ld!" is estimated as 1
    assert counter.count_text("Hello, world!") == 3 + 1


def test_zero_budget_estimates_everything(registry):
    counter = TokenCounter("cl100k_base", 0, Metrics("test", registry))
    body = {"messages": [{"role": "user", "content": "abcdefgh"}]}
    assert counter.count_input("openai", body) == (3 + estimate_chars(12) + 3, True)


def test_errors_degrade_to_an_estimate_and_are_still_timed(counter, registry):
    def broken(text):
        raise RuntimeError("tokenizer exploded")

    counter._encode = broken
    body = {"messages": [{"role": "user", "content": "Hello, world!"}]}
    # framing 6 + (4 + 13 characters) / 4 rounded up
    assert counter.count_input("openai", body) == (6 + 5, True)
    assert counter.count_text("Hello, world!") == 4
    assert duration_count(registry) == 1


def test_bodies_that_are_not_objects_or_odd_shapes_never_raise(counter):
    assert counter.count_input("openai", ["not", "a", "dict"]) == (0, True)
    odd = {"messages": ["bare string", None, {"role": 5, "content": {"weird": True}}],
           "tools": "nope", "system": 42}
    assert counter.count_input("openai", odd) == (3 + 3, False)
    assert counter.count_input("anthropic", odd) == (3 + 3, False)


def test_count_text(counter):
    assert counter.count_text("") == 0
    assert counter.count_text("The answer is 4.") == 6


def test_an_encoding_that_cannot_load_fails_at_start_up_naming_the_settings(registry):
    with pytest.raises(ConfigError) as caught:
        TokenCounter("no_such_encoding", 1000, Metrics("test", registry))
    message = str(caught.value)
    assert message.startswith("TOKENIZER_ENCODING='no_such_encoding' is not a tiktoken encoding")
    assert "cl100k_base" in message     # the known ones are listed
