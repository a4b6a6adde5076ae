"""The adaptive rate controller: pure window arithmetic plus the learned-state file.

Every RATE_LIMIT_WINDOW (30 s) of traffic is judged by its share of frequency 429s (1303/1305/
1313 and unclassified 429s; concurrency and quota answers say nothing about the rate):

- bad, share > 5 %: ceiling ← α·rate + (1−α)·ceiling (EWMA), then
  rate ← min(rate, ceiling)·(1 − margin). Taking the min means a bad window never raises the
  rate, not even *below* the hold point: it lowers it by at least the margin.
- clean, share < 1 %: below the hold point ceiling·(1 − margin) the rate steps half-way up to it
  (at least 0.25 req/s); at the hold point, every RATE_LIMIT_PROBE_INTERVAL clean windows it
  probes to ceiling·(1 + margin). A probe window that stays clean raises the ceiling to the
  probed rate and probes again at once with a doubled step (2 %, 4 %, 8 % … capped at 25 % per
  window), so upward discovery is not capped at ceiling + 2 %.
- in between (1 % to 5 %, both edges included): hold; a probe that lands here returns to the
  hold point.

Before anything is learned, the ceiling is RATE_LIMIT_INITIAL (the operator's best guess).
The edges are compared in integers (100·f > 5·n), so 5/100 holds and 6/100 decreases exactly.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import tempfile

from .settings import DEFAULTS

log = logging.getLogger("zai_proxy.ratelimit")

BAD_PERCENT = 5      # > this share of frequency 429s: slow down
CLEAN_PERCENT = 1    # < this share: clean window
MIN_STEP = 0.25      # req/s, smallest step towards the hold point
MAX_PROBE_STEP = 0.25
MIN_PROBE_STEP = 0.01
OUTCOMES = ("ok", "frequency_429", "other_429", "error")
STATE_FILE_VERSION = 1


@dataclasses.dataclass(frozen=True)
class Settings:
    """The controller's knobs; the defaults are the RATE_LIMIT_* rows of settings.py."""

    initial: float = DEFAULTS["rate_limit_initial"]
    minimum: float = DEFAULTS["rate_limit_min"]
    maximum: float = DEFAULTS["rate_limit_max"]
    alpha: float = DEFAULTS["rate_limit_ceiling_alpha"]
    margin: float = DEFAULTS["rate_limit_hold_margin"]
    probe_interval: int = DEFAULTS["rate_limit_probe_interval"]
    window: float = DEFAULTS["rate_limit_window"]

    @classmethod
    def from_config(cls, config) -> "Settings":
        return cls(config.rate_limit_initial, config.rate_limit_min, config.rate_limit_max,
                   config.rate_limit_ceiling_alpha, config.rate_limit_hold_margin,
                   config.rate_limit_probe_interval, config.rate_limit_window)

    def clamp(self, rate: float) -> float:
        return min(self.maximum, max(self.minimum, rate))


@dataclasses.dataclass(frozen=True)
class Counts:
    total: int = 0
    frequency_429: int = 0
    other_429: int = 0
    error: int = 0

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_mapping(cls, data) -> "Counts":
        values = {f.name: int(data.get(f.name, 0) or 0) for f in dataclasses.fields(cls)}
        return cls(**values)


@dataclasses.dataclass(frozen=True)
class State:
    rate: float
    ceiling: float
    learned: bool = False
    clean_windows: int = 0
    probe_step: float = 0.0          # > 0 while the current window runs at a probe rate
    last_total: int = 0              # the last judged window, for /health
    last_frequency_429: int = 0
    last_decision: str = "none"

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_mapping(cls, data, settings: Settings) -> "State":
        """Rebuild from stored strings/numbers; values are re-clamped to today's settings."""
        return cls(
            rate=settings.clamp(float(data["rate"])),
            ceiling=settings.clamp(float(data["ceiling"])),
            learned=str(data.get("learned", "0")).lower() in ("1", "true"),
            clean_windows=max(0, int(float(data.get("clean_windows", 0)))),
            probe_step=max(0.0, float(data.get("probe_step", 0.0))),
            last_total=int(float(data.get("last_total", 0))),
            last_frequency_429=int(float(data.get("last_frequency_429", 0))),
            last_decision=str(data.get("last_decision", "none")),
        )


def initial_state(settings: Settings) -> State:
    return State(rate=settings.initial, ceiling=settings.initial)


def evaluate(state: State, counts: Counts, s: Settings) -> tuple[State, str | None]:
    """Judge one finished window. Returns the new state and the adjustment direction
    (increase, decrease, probe) or None when the rate did not move."""
    if counts.total <= 0:
        return state, None
    last = dict(last_total=counts.total, last_frequency_429=counts.frequency_429)
    rate, hold = state.rate, s.clamp(state.ceiling * (1 - s.margin))
    if counts.frequency_429 * 100 > BAD_PERCENT * counts.total:
        ceiling = s.clamp(s.alpha * rate + (1 - s.alpha) * state.ceiling)
        new = min(rate, s.clamp(min(rate, ceiling) * (1 - s.margin)))
        return (State(new, ceiling, True, 0, 0.0, last_decision="bad", **last),
                "decrease" if new < rate else None)

    if counts.frequency_429 * 100 >= CLEAN_PERCENT * counts.total:
        # Neither clean nor bad: hold. A probe that drew some 429s found the edge: step back.
        new = min(rate, hold) if state.probe_step > 0 else rate
        return (State(new, state.ceiling, state.learned, 0, 0.0, last_decision="hold", **last),
                "decrease" if new < rate else None)

    if state.probe_step > 0:
        # The probed rate held: it is the new ceiling, and discovery goes on, faster.
        ceiling = max(state.ceiling, rate)
        step = min(state.probe_step * 2, MAX_PROBE_STEP)
        target = s.clamp(ceiling * (1 + step))
        if target > rate:
            return (State(target, ceiling, True, 0, step, last_decision="probe", **last), "probe")
        return State(rate, ceiling, True, 0, 0.0, last_decision="clean", **last), None

    clean = state.clean_windows + 1
    if rate < hold:
        new = min(hold, rate + max((hold - rate) / 2, MIN_STEP))
        return (State(new, state.ceiling, state.learned, clean, 0.0, last_decision="increase",
                      **last), "increase")
    if clean >= s.probe_interval:
        step = max(s.margin, MIN_PROBE_STEP)
        target = s.clamp(state.ceiling * (1 + step))
        if target > rate:
            return (State(target, state.ceiling, state.learned, 0, step, last_decision="probe",
                          **last), "probe")
    return (State(rate, state.ceiling, state.learned, clean, 0.0, last_decision="clean", **last),
            None)


# Learned-state file ----------------------------------------------------------------------
def save_state_file(path: str, state: State, saved_at: float) -> bool:
    """Write atomically (temp file + rename in the same directory). False when it failed."""
    if not path:
        return False
    data = {"version": STATE_FILE_VERSION, "rate": state.rate, "ceiling": state.ceiling,
            "learned": state.learned, "saved_at": saved_at}
    directory = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".ceiling-", suffix=".tmp", dir=directory)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(data, handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            _unlink(tmp)
            raise
    except OSError as exc:
        log.warning("cannot write RATE_LIMIT_STATE_FILE=%s: %s", path, exc.strerror or exc)
        return False
    return True


def load_state_file(path: str, max_age: float, now: float, settings: Settings) -> State | None:
    """The saved state when the file exists, parses and is younger than max_age; else None."""
    if not path:
        return None
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
        saved_at = float(data["saved_at"])
        rate, ceiling = float(data["rate"]), float(data["ceiling"])
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("ignoring RATE_LIMIT_STATE_FILE=%s: unreadable (%s)", path, exc)
        return None
    if not all(math.isfinite(v) and v > 0 for v in (rate, ceiling)):
        log.warning("ignoring RATE_LIMIT_STATE_FILE=%s: invalid values", path)
        return None
    age = now - saved_at
    if age > max_age or age < -60:   # too old, or written by a clock far in the future
        log.info("ignoring RATE_LIMIT_STATE_FILE=%s: %.0f s old (RATE_LIMIT_STATE_MAX_AGE=%.0f s)",
                 path, age, max_age)
        return None
    return State(rate=settings.clamp(rate), ceiling=settings.clamp(ceiling),
                 learned=bool(data.get("learned", True)))


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
