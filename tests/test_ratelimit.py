"""Rate limiting: controller arithmetic, persistence, fairness, cancellation, max wait, and the
Redis-shared budget and state (against a real redis-server started here)."""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import uuid

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from tools.redis_server import RedisServer
from zai_proxy import admission, controller
from zai_proxy.config import Config
from zai_proxy.controller import Counts, Settings, State, evaluate
from zai_proxy.metrics import Metrics
from zai_proxy.ratelimit import NoRateLimiter, RateLimiter, bucket_for, source_key

S = Settings(initial=10, minimum=1, maximum=50, alpha=0.3, margin=0.02, probe_interval=10,
             window=30)
T0 = 1_800_000_000.0   # a multiple of 30: window-aligned


class Clock:
    def __init__(self, t: float = 0.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


def counts(total, freq=0):
    return Counts(total=total, frequency_429=freq, other_429=0, error=0)


# Controller arithmetic ------------------------------------------------------------------------
@pytest.mark.parametrize("total,freq,decision", [
    (100, 0, "clean"), (100, 1, "hold"), (101, 1, "clean"), (100, 5, "hold"), (100, 6, "bad"),
    (1000, 50, "hold"), (1000, 51, "bad"), (1000, 9, "clean"), (1000, 10, "hold"), (1, 1, "bad"),
])
def test_window_edges_at_1_and_5_percent(total, freq, decision):
    state, direction = evaluate(State(10, 10), counts(total, freq), S)
    assert state.last_decision == decision
    assert state.rate == (9.8 if decision == "bad" else 10)
    assert direction == ("decrease" if decision == "bad" else None)


def test_bad_window_ewma_and_margin():
    state, direction = evaluate(State(rate=20, ceiling=10, learned=True), counts(100, 6), S)
    assert (state.ceiling, state.rate, direction) == (pytest.approx(13), pytest.approx(12.74),
                                                      "decrease")
    assert state.learned and state.clean_windows == 0


def test_bad_window_below_the_hold_point_never_raises_the_rate():
    # Moving to the hold point, ceiling·(1-margin) = 8.33, would raise the rate on a bad window.
    state, direction = evaluate(State(rate=5, ceiling=10, learned=True), counts(100, 50), S)
    assert state.rate == pytest.approx(4.9) and direction == "decrease"
    assert state.ceiling == pytest.approx(8.5)
    for rate in (1.0, 2.0, 3.3, 7.0, 9.79):
        new, _ = evaluate(State(rate=rate, ceiling=10), counts(10, 10), S)
        assert new.rate < rate or new.rate == S.minimum == rate


def test_bad_window_at_the_minimum_stays_at_the_minimum():
    state, direction = evaluate(State(rate=1, ceiling=1), counts(10, 10), S)
    assert (state.rate, direction) == (1, None)


def test_clean_windows_step_half_way_up_to_the_hold_point():
    state, direction = evaluate(State(rate=5, ceiling=10), counts(100), S)
    assert (state.rate, direction, state.clean_windows) == (pytest.approx(7.4), "increase", 1)
    state, _ = evaluate(State(rate=9.7, ceiling=10), counts(100), S)   # at least 0.25, capped
    assert state.rate == pytest.approx(9.8)


def run(state, windows, total=100, freq=0):
    directions = []
    for _ in range(windows):
        state, direction = evaluate(state, counts(total, freq), S)
        directions.append(direction)
    return state, directions


def test_probe_every_10_clean_windows_at_the_hold_point():
    state, directions = run(State(rate=9.8, ceiling=10), 9)
    assert state.rate == 9.8 and directions == [None] * 9 and state.clean_windows == 9
    state, direction = evaluate(state, counts(100), S)
    assert (state.rate, direction, state.probe_step) == (pytest.approx(10.2), "probe", 0.02)


def test_upward_discovery_is_not_capped_at_ceiling_plus_2_percent():
    state = State(rate=10.2, ceiling=10, probe_step=0.02)   # a probe window is running
    rates = []
    for _ in range(5):
        state, direction = evaluate(state, counts(100), S)
        assert direction == "probe"
        rates.append(round(state.rate, 4))
    # Each clean probe confirms its rate as the ceiling and probes further, step doubling to 25 %.
    assert rates == [10.608, 11.4566, 13.2897, 16.6121, 20.7652]
    assert state.ceiling == pytest.approx(16.6121, abs=1e-4) and state.learned
    state, _ = run(state, 10)
    assert state.rate == 50   # RATE_LIMIT_MAX still bounds it


def test_a_probe_that_draws_some_429s_returns_to_the_hold_point():
    state, direction = evaluate(State(rate=10.2, ceiling=10, probe_step=0.02), counts(100, 3), S)
    assert (state.rate, direction, state.probe_step) == (pytest.approx(9.8), "decrease", 0.0)


def test_a_bad_probe_decreases_with_the_ewma():
    state, direction = evaluate(State(rate=10.2, ceiling=10, probe_step=0.02), counts(100, 9), S)
    assert state.ceiling == pytest.approx(10.06) and state.rate == pytest.approx(9.8588)
    assert direction == "decrease" and state.probe_step == 0


def test_empty_window_changes_nothing():
    state = State(rate=7, ceiling=9)
    assert evaluate(state, counts(0), S) == (state, None)


# RateLimiter with memory storage ----------------------------------------------------------------
def make(tmp_path, wall=None, clock=None, registry=None, workers=1, **overrides):
    values = dict(rate_limit_state_file=str(tmp_path / "ceiling.json"), rate_limit_initial=10,
                  rate_limit_max_wait=0.0)
    values.update(overrides)
    metrics = Metrics("test", registry or CollectorRegistry())
    limiter = RateLimiter(Config(**values), metrics, clock=clock or Clock(), wall=wall or Clock(T0),
                          worker_processes=workers)
    return limiter, metrics


def sample(metrics, name, **labels):
    return metrics.registry.get_sample_value(name, dict(labels, variant="test")) or 0.0


def test_observe_and_window_end_moves_the_rate_and_metrics(tmp_path):
    wall = Clock(T0)
    limiter, metrics = make(tmp_path, wall=wall)
    for _ in range(94):
        limiter.observe("ok")
    for _ in range(6):
        limiter.observe("frequency_429")
    for _ in range(50):
        limiter.observe("other_429")   # concurrency/quota: in the denominator, not the numerator
    limiter.observe("error")
    assert limiter.snapshot()["window"] == {"total": 151, "frequency_429": 6, "other_429": 50,
                                            "error": 1, "started_at": T0}
    assert limiter.snapshot()["rate"] == 10
    wall.t += 30
    limiter.tick()
    snap = limiter.snapshot()
    assert snap["rate"] == 10   # 6/151 < 5 %: hold
    assert snap["last_window"] == {"total": 151, "frequency_429": 6, "decision": "hold"}
    for _ in range(94):
        limiter.observe("ok")
    for _ in range(6):
        limiter.observe("frequency_429")
    wall.t += 30
    limiter.tick()
    assert limiter.snapshot()["rate"] == 9.8
    assert sample(metrics, "zai_proxy_rate_limit_requests_per_second") == 9.8
    assert sample(metrics, "zai_proxy_rate_limit_adjustments_total", direction="decrease") == 1


def test_every_adjustment_direction_is_exported_at_zero_from_the_start(tmp_path):
    # A limiter that holds its rate reports 0 adjustments (the dashboard's Rate Limit Adjustments
    # panel has data), and rate() sees the first real one, which a series born at 1 hides.
    limiter, metrics = make(tmp_path)
    text = generate_latest(metrics.registry).decode()
    for direction in ("increase", "decrease", "probe"):
        assert (f'zai_proxy_rate_limit_adjustments_total{{direction="{direction}",variant="test"}} 0.0'
                in text), text
    # Rate limiting off: the pipeline holds a NoRateLimiter, and nothing creates the series.
    off = Metrics("test", CollectorRegistry())
    NoRateLimiter()
    assert "zai_proxy_rate_limit_adjustments_total{" not in generate_latest(off.registry).decode()


def test_state_file_survives_restart_within_max_age(tmp_path):
    wall = Clock(T0)
    limiter, _ = make(tmp_path, wall=wall)
    for outcome in ["ok"] * 90 + ["frequency_429"] * 10:
        limiter.observe(outcome)
    wall.t += 30
    limiter.tick()
    saved = json.loads((tmp_path / "ceiling.json").read_text())
    assert saved == {"version": 1, "rate": 9.8, "ceiling": 10.0, "learned": True,
                     "saved_at": T0 + 30}
    assert [p.name for p in tmp_path.iterdir()] == ["ceiling.json"]   # no temp files left

    again, metrics = make(tmp_path, wall=Clock(T0 + 30 + 6 * 3600))
    assert again.snapshot()["rate"] == 9.8 and again.snapshot()["ceiling_learned"]
    assert sample(metrics, "zai_proxy_rate_limit_requests_per_second") == 9.8
    too_old, _ = make(tmp_path, wall=Clock(T0 + 31 + 6 * 3600))
    assert too_old.snapshot()["rate"] == 10 and not too_old.snapshot()["ceiling_learned"]
    shorter, _ = make(tmp_path, wall=Clock(T0 + 90), rate_limit_state_max_age=59)
    assert shorter.snapshot()["rate"] == 10


def test_state_file_values_are_clamped_and_garbage_ignored(tmp_path):
    path = tmp_path / "ceiling.json"
    path.write_text(json.dumps({"rate": 80, "ceiling": 90, "saved_at": T0, "learned": True}))
    limiter, _ = make(tmp_path, wall=Clock(T0))
    assert (limiter.snapshot()["rate"], limiter.snapshot()["ceiling"]) == (50, 50)
    path.write_text("{not json")
    assert make(tmp_path, wall=Clock(T0))[0].snapshot()["rate"] == 10
    path.write_text(json.dumps({"rate": -1, "ceiling": 5, "saved_at": T0}))
    assert make(tmp_path, wall=Clock(T0))[0].snapshot()["rate"] == 10


def test_state_file_disabled_with_empty_path(tmp_path):
    limiter, _ = make(tmp_path, rate_limit_state_file="")
    limiter.reset()
    assert list(tmp_path.iterdir()) == []


def test_reset_goes_back_to_initial_and_updates_the_gauge(tmp_path):
    wall = Clock(T0)
    limiter, metrics = make(tmp_path, wall=wall)
    for outcome in ["frequency_429"] * 10:
        limiter.observe(outcome)
    wall.t += 30
    limiter.tick()
    assert limiter.snapshot()["rate"] == 9.8
    for outcome in ["frequency_429"] * 10:   # pre-reset outcomes in the running window ...
        limiter.observe(outcome)
    limiter.reset()
    assert sample(metrics, "zai_proxy_rate_limit_requests_per_second") == 10
    wall.t += 30
    snap = limiter.snapshot()                # ... are not judged against the fresh state
    assert (snap["rate"], snap["ceiling"], snap["ceiling_learned"]) == (10, 10, False)
    assert json.loads((tmp_path / "ceiling.json").read_text())["learned"] is False


def test_memory_storage_with_several_workers_divides_the_budget(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="zai_proxy.ratelimit")
    limiter, _ = make(tmp_path, workers=4, rate_limit_initial=8)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "RATE_LIMIT_STORAGE_URI=memory://" in warnings[0].message
    assert "divided" in warnings[0].message
    snap = limiter.snapshot()
    assert (snap["rate"], snap["process_rate"], snap["worker_processes"]) == (8, 2, 4)
    admitted = [limiter.acquire("10.0.0.1", threading.Event()).ok for _ in range(6)]
    assert admitted == [True, True, False, False, False, False]   # 2 per second per process


def test_max_wait_zero_rejects_with_retry_after_and_counts(tmp_path):
    limiter, metrics = make(tmp_path, rate_limit_initial=2)
    results = [limiter.acquire("10.0.0.7", threading.Event()) for _ in range(3)]
    assert [r.ok for r in results] == [True, True, False]
    assert 0 < results[2].retry_after <= 1.0
    bucket = bucket_for("10.0.0.7")
    assert results[2].bucket == bucket
    label = f"source-{bucket:02d}"
    assert sample(metrics, "zai_proxy_rate_limit_rejections_total", client=label) == 1
    assert sample(metrics, "zai_proxy_rate_limit_wait_seconds_count", client=label) == 2


def test_cancelled_before_admission(tmp_path):
    limiter, metrics = make(tmp_path, rate_limit_max_wait=30.0)
    cancel = threading.Event()
    cancel.set()
    result = limiter.acquire("10.0.0.1", cancel)
    assert (result.ok, result.retry_after) == (False, None)
    assert limiter.snapshot()["queued"] == 0


def test_disabled_admits_everything():
    limiter = NoRateLimiter()
    assert all(limiter.admit("x", None, threading.Event()).ok for _ in range(20))
    limiter.observe("frequency_429")
    assert limiter.snapshot() == {"enabled": False}


def test_observe_rejects_unknown_outcomes(tmp_path):
    with pytest.raises(ValueError):
        make(tmp_path)[0].observe("teapot")


# Sources and buckets --------------------------------------------------------------------------
def test_source_key_trusts_forwarded_for_only_from_trusted_peers():
    import ipaddress
    trusted = (ipaddress.ip_network("10.0.0.0/8"),)
    assert source_key("203.0.113.9", "198.51.100.1", trusted) == "203.0.113.9"
    assert source_key("10.1.2.3", "198.51.100.1", trusted) == "198.51.100.1"
    assert source_key("10.1.2.3", "1.1.1.1, 198.51.100.1, 10.9.9.9", trusted) == "198.51.100.1"
    assert source_key("10.1.2.3", "10.2.2.2, 10.3.3.3", trusted) == "10.2.2.2"
    assert source_key("10.1.2.3", "garbage", trusted) == "10.1.2.3"
    assert source_key("10.1.2.3", None, trusted) == "10.1.2.3"
    assert source_key("10.1.2.3", "198.51.100.1", ()) == "10.1.2.3"
    assert source_key("", None, trusted) == "unknown"


def test_buckets_are_stable_and_bounded():
    buckets = {bucket_for(f"10.0.{i // 256}.{i % 256}") for i in range(2000)}
    assert buckets == set(range(64))
    assert bucket_for("203.0.113.9") == bucket_for("203.0.113.9")


# FairQueue: fairness, cancellation, max wait (a gate stands in for the budget) ----------------
class Gate:
    """A budget the test opens one slot at a time."""

    def __init__(self):
        self.tokens = 0
        self.lock = threading.Lock()

    def take(self) -> float:
        with self.lock:
            if self.tokens > 0:
                self.tokens -= 1
                return 0.0
            return 0.01

    def release(self, n=1):
        with self.lock:
            self.tokens += n


def wait_for(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.002)


def start_waiter(queue, gate, bucket, name, order, cancel=None, max_wait=60.0, rate=1.0):
    results = {}

    def run():
        results[name] = queue.acquire(bucket, cancel or threading.Event(), gate.take, rate,
                                      max_wait)
        if results[name][0] == "admitted":
            order.append(name)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, results


def test_round_robin_a_flood_does_not_starve_another_source():
    queue, gate, order = admission.FairQueue(), Gate(), []
    threads = []
    for i in range(8):
        threads.append(start_waiter(queue, gate, 3, f"flood-{i}", order)[0])
        wait_for(lambda: queue.size == i + 1)
    threads.append(start_waiter(queue, gate, 41, "quiet-0", order)[0])
    wait_for(lambda: queue.size == 9)
    threads.append(start_waiter(queue, gate, 17, "other-0", order)[0])
    wait_for(lambda: queue.size == 10)
    assert queue.waiting() == {3: 8, 41: 1, 17: 1}
    for n in range(10):
        gate.release()
        wait_for(lambda: len(order) == n + 1)
    assert order[:4] == ["flood-0", "quiet-0", "other-0", "flood-1"]
    assert order[4:] == [f"flood-{i}" for i in range(2, 8)]   # FIFO within the bucket
    for thread in threads:
        thread.join(timeout=5)
    assert queue.size == 0


def test_cancellation_frees_the_place():
    queue, gate, order = admission.FairQueue(), Gate(), []
    first_cancel = threading.Event()
    first, first_result = start_waiter(queue, gate, 5, "first", order, cancel=first_cancel)
    wait_for(lambda: queue.size == 1)
    second, second_result = start_waiter(queue, gate, 5, "second", order)
    wait_for(lambda: queue.size == 2)
    first_cancel.set()
    first.join(timeout=5)
    assert first_result["first"][0] == "cancelled" and first_result["first"][2] is None
    assert queue.size == 1
    gate.release()
    second.join(timeout=5)
    assert order == ["second"] and gate.tokens == 0


def test_max_wait_predicted_from_the_queue_gives_retry_after():
    queue, gate, order = admission.FairQueue(Clock()), Gate(), []
    for i in range(3):
        start_waiter(queue, gate, i, f"w{i}", order, rate=1.0, max_wait=2.0)
        wait_for(lambda: queue.size == i + 1)
    outcome, waited, retry_after = queue.acquire(9, threading.Event(), gate.take, 1.0, 2.0)
    assert (outcome, waited, retry_after) == ("rejected", 0.0, 3.0)
    gate.release(3)
    wait_for(lambda: len(order) == 3)


def test_max_wait_from_the_budget_hint_and_from_time_spent():
    clock = Clock(100.0)
    queue = admission.FairQueue(clock)
    assert queue.acquire(1, threading.Event(), lambda: 5.0, 1.0, 2.0) == ("rejected", 0.0, 5.0)
    assert queue.size == 0
    gate, order = Gate(), []
    holder, _ = start_waiter(queue, gate, 1, "holder", order, max_wait=2.0)
    wait_for(lambda: queue.size == 1)
    behind, result = start_waiter(queue, gate, 2, "behind", order, max_wait=2.0, rate=10.0)
    wait_for(lambda: queue.size == 2)
    clock.t += 2.5   # the waiters have now waited longer than RATE_LIMIT_MAX_WAIT
    behind.join(timeout=5)
    holder.join(timeout=5)
    assert result["behind"][0] == "rejected" and result["behind"][1] == 2.5
    assert result["behind"][2] > 0 and queue.size == 0 and order == []


def test_budget_items_honour_fractional_rates():
    short, long = admission.budget_items(2.5, "p")
    assert (short.amount, short.get_expiry(), long.amount, long.get_expiry()) == (3, 1, 25, 10)
    short, long = admission.budget_items(0.05, "p")
    assert (short.amount, long.amount, long.get_expiry()) == (1, 1, 20)
    assert admission.budget_items(10, "p")[0].key_for() == "p/budget/1s"


# Redis: one budget and one controller state for everyone ------------------------------------
@pytest.fixture(scope="module")
def redis_server(tmp_path_factory):
    with RedisServer(tmp_path_factory.mktemp("redis")) as server:
        yield server


def make_shared(tmp_path, redis_server, namespace, wall, clock=None, **overrides):
    overrides.setdefault("rate_limit_state_file", str(tmp_path / f"{uuid.uuid4().hex}.json"))
    metrics = Metrics("test", CollectorRegistry())
    config = Config(**dict(dict(rate_limit_storage_uri=redis_server.url, rate_limit_initial=10,
                                rate_limit_max_wait=0.0), **overrides))
    limiter = RateLimiter(config, metrics, clock=clock or Clock(), wall=wall, namespace=namespace,
                          worker_processes=4)
    return limiter, metrics


def test_two_limiters_on_one_redis_hold_the_global_rate(tmp_path, redis_server):
    ns = uuid.uuid4().hex
    a, _ = make_shared(tmp_path, redis_server, ns, Clock(T0), rate_limit_initial=2)
    b, _ = make_shared(tmp_path, redis_server, ns, Clock(T0), rate_limit_initial=2)
    admitted = sum(limiter.acquire("10.0.0.1", threading.Event()).ok
                   for _ in range(10) for limiter in (a, b))
    assert admitted == 2
    assert a.snapshot()["process_rate"] == 2   # not divided: the budget is shared
    # The same two limiters on memory storage would each admit the full budget.
    local_a, _ = make(tmp_path, rate_limit_initial=2)
    local_b, _ = make(tmp_path, rate_limit_initial=2)
    assert sum(lim.acquire("10.0.0.1", threading.Event()).ok
               for _ in range(10) for lim in (local_a, local_b)) == 4


def test_controller_state_and_window_counters_are_shared(tmp_path, redis_server):
    ns, wall = uuid.uuid4().hex, Clock(T0)
    clock_b = Clock()
    a, metrics_a = make_shared(tmp_path, redis_server, ns, wall)
    b, metrics_b = make_shared(tmp_path, redis_server, ns, wall, clock=clock_b)
    for outcome in ["ok"] * 50 + ["frequency_429"] * 3:
        a.observe(outcome)
    for outcome in ["ok"] * 44 + ["frequency_429"] * 3:
        b.observe(outcome)
    assert a.snapshot()["window"]["total"] == 100 and b.snapshot()["window"]["frequency_429"] == 6
    wall.t += 30
    a.tick()
    b.tick()   # both notice the window ended; only one judges it
    decreases = [sample(m, "zai_proxy_rate_limit_adjustments_total", direction="decrease")
                 for m in (metrics_a, metrics_b)]
    assert sorted(decreases) == [0, 1]
    clock_b.t += 2   # past B's cache refresh
    assert a.snapshot()["rate"] == 9.8 and b.snapshot()["rate"] == 9.8
    assert b.snapshot()["last_window"] == {"total": 100, "frequency_429": 6, "decision": "bad"}
    # A third process starting later picks up the learned state from Redis, not from its file.
    c, metrics_c = make_shared(tmp_path, redis_server, ns, wall)
    assert c.snapshot()["rate"] == 9.8 and c.snapshot()["ceiling_learned"]
    assert sample(metrics_c, "zai_proxy_rate_limit_requests_per_second") == 9.8
    # An admin reset on one is seen by the others.
    c.reset()
    clock_b.t += 2
    assert b.snapshot()["rate"] == 10 and not b.snapshot()["ceiling_learned"]


def test_redis_seeded_from_the_state_file(tmp_path, redis_server):
    path = tmp_path / "seed.json"
    path.write_text(json.dumps({"version": 1, "rate": 7.5, "ceiling": 8, "learned": True,
                                "saved_at": T0 - 60}))
    ns = uuid.uuid4().hex
    a, _ = make_shared(tmp_path, redis_server, ns, Clock(T0), rate_limit_state_file=str(path))
    assert a.snapshot()["rate"] == 7.5
    state = {k.decode(): v.decode() for k, v in
             redis_server.client().hgetall(f"{ns}:ctl:state").items()}
    assert (state["rate"], state["ceiling"], state["learned"]) == ("7.5", "8.0", "1")
    ttl = redis_server.client().ttl(f"{ns}:ctl:state")
    assert 6 * 3600 - 5 <= ttl <= 6 * 3600   # forgotten after RATE_LIMIT_STATE_MAX_AGE idle


def test_redis_outage_fails_open_then_recovers(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="zai_proxy.ratelimit")
    ns, clock = uuid.uuid4().hex, Clock()
    with RedisServer(tmp_path / "outage") as server:
        a, metrics = make_shared(tmp_path, server, ns, Clock(T0), clock=clock,
                                 rate_limit_initial=8)
        assert a.snapshot()["shared"] is True
        server.stop()
        results = [a.acquire("10.0.0.1", threading.Event()).ok for _ in range(4)]
        # Fail open to a per-process budget of rate/workers = 8/4 = 2 per second.
        assert results == [True, True, False, False]
        snap = a.snapshot()
        assert (snap["degraded"], snap["shared"], snap["process_rate"]) == (True, False, 2)
        errors = sample(metrics, "zai_proxy_rate_limit_storage_errors_total")
        assert errors >= 1
        a.observe("ok")   # still counted (locally) while Redis is away
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1 and "failing open" in warnings[0]
        assert "redis://" not in warnings[0]   # the URI may carry a password: never logged
        # Within the retry interval Redis is not tried again: no more errors counted.
        a.acquire("10.0.0.1", threading.Event())
        assert sample(metrics, "zai_proxy_rate_limit_storage_errors_total") == errors
        # After it, one PING per interval tries again; still down: still failing open, quietly.
        clock.t += 5.1
        a.acquire("10.0.0.1", threading.Event())
        assert sample(metrics, "zai_proxy_rate_limit_storage_errors_total") == errors + 1
        assert a.snapshot()["degraded"] is True
        assert not any("is back" in r.getMessage() for r in caplog.records)
        assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1

        server.start()   # back on the same port, empty
        clock.t += 5.1
        assert a.acquire("10.0.0.2", threading.Event()).ok
        client = server.client()
        assert client.exists(f"{ns}:ctl:state") == 1   # re-seeded from the local copy
        assert any(b"budget/1s" in key for key in client.keys("*"))
        assert a.snapshot()["shared"] is True
        assert any("is back" in r.getMessage() for r in caplog.records)
        a.close()


def test_redis_unreachable_at_start_does_not_stop_the_proxy(tmp_path):
    server = RedisServer(tmp_path / "never")   # never started
    a, metrics = make_shared(tmp_path, server, uuid.uuid4().hex, Clock(T0))
    assert a.acquire("10.0.0.1", threading.Event()).ok
    assert a.snapshot()["degraded"] is True
    assert sample(metrics, "zai_proxy_rate_limit_storage_errors_total") >= 1


def test_state_file_is_written_atomically(tmp_path, monkeypatch):
    path = tmp_path / "dir" / "ceiling.json"
    assert controller.save_state_file(str(path), State(5, 6, True), T0)
    assert json.loads(path.read_text())["rate"] == 5
    real_replace = os.replace

    def broken(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken)
    assert not controller.save_state_file(str(path), State(7, 8, True), T0)
    monkeypatch.setattr(os, "replace", real_replace)
    assert json.loads(path.read_text())["rate"] == 5   # the old file is intact
    assert sorted(p.name for p in path.parent.iterdir()) == ["ceiling.json"]
