"""The parallel run's scheduler (tests/scheduling.py): quick units that drive the SDKs go to the
workers that have imported them, quick units that do not go elsewhere, and slow units keep their
place at the head of the queue."""

from __future__ import annotations

from collections import OrderedDict

import pytest

from tests.scheduling import SlowUnitsApart, drives_sdks, is_slow

SDK_UNITS = ("tests/test_sdk_retries.py", "tests/test_proxy_errors.py",
             "tests/test_e2e_monitoring.py::TestLatencyFault")
PLAIN_UNITS = ("tests/test_buffered.py", "tests/test_zai_errors.py",
               "tests/test_reliability_fast.py::TestLoad")


def test_units_are_told_apart_by_their_files():
    assert all(drives_sdks(unit) for unit in SDK_UNITS)
    assert not any(drives_sdks(unit) for unit in PLAIN_UNITS)
    assert is_slow("tests/test_e2e_monitoring.py::TestLatencyFault")
    assert is_slow("tests/test_reliability_fast.py::TestLoad")
    assert not is_slow("tests/test_buffered.py")


def next_unit(queue: list[str], held: list[str]) -> str:
    """The unit a worker that was given `held` gets next from `queue`."""
    scheduler = SlowUnitsApart.__new__(SlowUnitsApart)    # no xdist session needed
    scheduler.workqueue = OrderedDict((unit, {}) for unit in queue)
    scheduler.assigned_work = {"worker": {unit: {} for unit in held}}
    scheduler._prefer_same_sdks("worker")
    return next(iter(scheduler.workqueue))


@pytest.mark.parametrize("queue, held, expected", [
    (["tests/test_buffered.py", "tests/test_proxy_errors.py"], ["tests/test_sdk_retries.py"],
     "tests/test_proxy_errors.py"),
    (["tests/test_proxy_errors.py", "tests/test_buffered.py"], [], "tests/test_buffered.py"),
    (["tests/test_proxy_errors.py", "tests/test_buffered.py"], ["tests/test_zai_errors.py"],
     "tests/test_buffered.py"),
    # nothing of its kind left: the head, whatever it needs
    (["tests/test_proxy_errors.py", "tests/test_sdk_retries.py"], [],
     "tests/test_proxy_errors.py"),
    # a slow unit at the head goes to whoever asks
    (["tests/test_reliability_fast.py::TestLoad", "tests/test_proxy_errors.py"],
     ["tests/test_e2e_monitoring.py::TestLatencyFault"], "tests/test_reliability_fast.py::TestLoad"),
], ids=["sdk worker: the first sdk unit", "fresh worker: the first plain unit",
        "plain worker: the first plain unit", "no match: the head", "slow head: kept"])
def test_a_worker_gets_the_first_quick_unit_of_its_kind(queue, held, expected):
    assert next_unit(queue, held) == expected
