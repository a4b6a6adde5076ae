"""Deterministic answer text and usage numbers, shared by both API families.

Text depends only on the model and the scenario keys (`seed`, `chunks`, `chunk_text`), never on
the clock or on request bytes a proxy may legitimately rewrite, so a test can compute exactly what
it should receive and the same request always gets the same bytes.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

from .scenarios import Scenario

DEFAULT_CHUNKS = 5
DEFAULT_PROMPT_TOKENS = 12
CREATED = 1767225600  # a fixed `created` (2026-01-01T00:00:00Z) keeps bodies byte-identical

_WORDS = (
    "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november "
    "oscar papa quebec romeo sierra tango uniform victor whiskey xray yankee zulu amber birch "
    "cedar dune ember fjord glade harbor island jasper kestrel lagoon meadow nectar orchid "
    "prairie quartz river summit thistle upland valley willow yarrow zephyr"
).split()


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    cache_creation_tokens: int
    start_input_tokens: int


def pieces(scenario: Scenario, model: str) -> list[str]:
    """The text of each streamed delta; joined, the non-streamed content."""
    count = max(scenario.get_int("chunks", DEFAULT_CHUNKS), 0)
    fixed = scenario.get_str("chunk_text")
    if fixed is not None:
        return [fixed] * count
    start = zlib.crc32(f"{scenario.get_str('seed', '0')}:{model}".encode())
    return [_WORDS[(start + 7 * i) % len(_WORDS)] + " " for i in range(count)]


def reasoning(scenario: Scenario, model: str) -> list[str]:
    """`reasoning_chunks` deltas of thinking text (GLM's `reasoning_content`), default none."""
    count = max(scenario.get_int("reasoning_chunks", 0), 0)
    start = zlib.crc32(f"thinking:{scenario.get_str('seed', '0')}:{model}".encode())
    return [_WORDS[(start + 5 * i) % len(_WORDS)] + " " for i in range(count)]


def texts(scenario: Scenario, model: str) -> list[str]:
    """`pieces`, or for the `large` scenario `bytes` of filler cut into `chunk_bytes` deltas."""
    if scenario.name == "large":
        size = scenario.get_int("bytes", 5_000_000)
        step = max(scenario.get_int("chunk_bytes", 16384), 1)
        text = filler(size)
        return [text[i:i + step] for i in range(0, size, step)]
    return pieces(scenario, model)


def usage(scenario: Scenario) -> Usage:
    """Usage numbers: settable keys, else fixed defaults (completion = one token per chunk,
    reasoning chunks included, as Z.AI counts reasoning as completion tokens)."""
    chunks = max(scenario.get_int("chunks", DEFAULT_CHUNKS), 0)
    chunks += max(scenario.get_int("reasoning_chunks", 0), 0)
    return Usage(
        prompt_tokens=scenario.get_int("prompt_tokens", DEFAULT_PROMPT_TOKENS),
        completion_tokens=scenario.get_int("completion_tokens", chunks),
        cached_tokens=scenario.get_int("cached_tokens", 0),
        cache_creation_tokens=scenario.get_int("cache_creation_tokens", 0),
        start_input_tokens=scenario.get_int("start_input_tokens", 0),
    )


def message_id(prefix: str, scenario: Scenario, model: str) -> str:
    # From the model and seed only, so a faulted answer is a byte prefix of the normal one.
    seed = scenario.get_str("seed", "0")
    return f"{prefix}{zlib.crc32(f'{seed}:{model}'.encode()):08x}"


def filler(size: int) -> str:
    """`size` characters of plain ASCII text (no JSON escaping needed, so sizes stay exact)."""
    unit = "lorem ipsum dolor sit amet "
    return (unit * (size // len(unit) + 1))[:size]
