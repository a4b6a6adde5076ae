"""The benchmark's arithmetic (bench/): percentiles, paired differences to the direct path,
ratios, the targets' verdicts, RSS growth, and how the stream client counts content events.
No timing here: the numbers come from hand-made runs."""

from __future__ import annotations

import pytest

from bench import analyze, load, profile, report
from bench.stats import percentile, ratio, spread


def test_percentile_interpolates_between_ranks():
    assert percentile([], 50) is None
    assert percentile([7], 99) == 7.0
    assert percentile([1, 2, 3, 4], 50) == 2.5
    assert percentile(range(101), 99) == 99.0
    assert percentile([10, 0], 0) == 0.0


def test_spread_is_median_and_range_ignoring_missing():
    assert spread([3, None, 1, 2]) == {"median": 2.0, "min": 1.0, "max": 3.0, "n": 3}
    assert spread([None]) == {"median": None, "min": None, "max": None, "n": 0}


def test_ratio_tolerates_missing_and_zero():
    assert ratio(10, 4) == 2.5
    assert ratio(None, 4) is None
    assert ratio(3, 0) is None


def _ns_run(rps, p50, p99, cpu=None):
    return {"throughput_rps": rps, "latency_ms": {"p50": p50, "p99": p99}, "errors": 0,
            "contestant_cpu_us_per_request": cpu, "contestant_cpu_share": 0.9}


def test_nonstreaming_added_latency_is_paired_per_repetition():
    raw = {"runs": {
        "direct": {"16": [_ns_run(1000, 1.0, 2.0), _ns_run(1000, 3.0, 10.0)]},
        "production": {"16": [_ns_run(400, 4.0, 6.0, 2000), _ns_run(600, 5.0, 12.0, 1500)]},
        "litellm": {"16": [_ns_run(40, 200.0, 400.0), _ns_run(40, 300.0, 500.0)]},
    }}
    fig = analyze.nonstreaming(raw)
    cell = fig["table"]["production"]["16"]
    # rep 1: 6-2 = 4, rep 2: 12-10 = 2 -> median 3 (not 9 - 6 = 3 by accident: check range)
    assert cell["added_p99_ms"] == {"median": 3.0, "min": 2.0, "max": 4.0, "n": 2}
    assert cell["added_p50_ms"]["median"] == 2.5
    assert fig["ratios"]["16"]["throughput"]["production"] == {"vs_direct": 0.5,
                                                                "vs_litellm": 12.5}


def test_targets_report_pass_and_miss_factor():
    figures = {"nonstreaming": analyze.nonstreaming({"runs": {
        "direct": {"16": [_ns_run(10000, 1.0, 2.0)], "64": [_ns_run(10000, 4, 6)]},
        "production": {"16": [_ns_run(800, 20.0, 42.0)], "64": [_ns_run(6000, 10, 11)]},
        "litellm": {"16": [_ns_run(40, 300, 500)], "64": [_ns_run(100, 500, 900)]},
    }})}
    by_id = {t["id"]: t for t in analyze.targets(figures)}
    assert by_id["ns_added_p99_16"]["measured"] == 40.0
    assert by_id["ns_added_p99_16"]["pass"] is False
    assert by_id["ns_added_p99_16"]["miss_factor"] == 8.0
    assert by_id["ns_tput_direct_16"]["pass"] is False          # 0.08 < 0.5
    assert by_id["ns_tput_direct_64"]["pass"] is True           # 0.6 >= 0.5
    assert by_id["ns_tput_litellm_16"]["measured"] == 20.0
    assert by_id["ns_tput_litellm_16"]["pass"] is True


def test_held_takes_the_largest_level_without_error():
    raw = {"results": {"production": {"rss_base_bytes": 50 * 2**20, "levels": [
        {"level": 250, "error_count": 0, "errors": {}, "lost_chunks": 0,
         "rss_peak_bytes": 60 * 2**20, "rss_per_stream_bytes": 40960, "ttft_ms": {"p99": 3}},
        {"level": 500, "error_count": 2, "errors": {"timeout": 2}, "lost_chunks": 9,
         "rss_peak_bytes": 80 * 2**20, "rss_per_stream_bytes": 61440, "ttft_ms": {"p99": 9}},
    ]}}}
    out = analyze.held(raw)["production"]
    assert out["max_streams_without_error"] == 250
    assert out["all_levels_passed"] is False
    assert out["first_failure"] == {"level": 500, "errors": {"timeout": 2}, "lost_chunks": 9}
    assert out["rss_per_stream_kib_at_max"] == 40.0


def test_steady_growth_is_measured_after_warm_up():
    mib = 2**20
    points = [{"requests": 1000, "rss_bytes": 60 * mib},
              {"requests": 10_000, "rss_bytes": 64 * mib},
              {"requests": 50_000, "rss_bytes": 66 * mib},
              {"requests": 110_000, "rss_bytes": 69 * mib}]
    out = analyze.steady({"contestant": "production", "total_requests": 110_000, "errors": 0,
                          "points": points})
    assert out["growth_mib_per_10k"] == 0.5          # (69 - 64) MiB over 100k requests
    assert out["growth_since_first_mib"] == 9.0
    assert out["slope_mib_per_10k"] == pytest.approx(0.49, abs=0.02)


def test_stream_client_counts_only_content_deltas():
    events = (b'data: {"choices":[{"delta":{"role":"assistant","content":"papa "}}]}\n\n'
              b'data: {"choices":[{"delta":{"content": "dune "}}]}\n\n'
              b'data: {"choices":[{"delta":{"content":""},"finish_reason":"stop"}]}\n\n'
              b'data: {"choices":[{"delta":{},"finish_reason":"stop"}]}\n\n'
              b'data: [DONE]\n\n')
    assert len(load.CONTENT.findall(events)) == 2
    assert load.DONE in events


def test_profile_folds_stacks_into_layers():
    folded = ("worker (threading.py:1);handle (gunicorn/workers/gthread.py:2);"
              "request (requests/sessions.py:3) 3\n"
              "worker (threading.py:1);write (zai_proxy/logs.py:9) 1\n")
    out = profile.fold(profile.parse_folded(folded))
    layers = dict(out["layers"])
    assert out["samples"] == 4
    assert layers["HTTP client (requests, urllib3, http.client)"] == 75.0
    assert layers["zai_proxy own code"] == 25.0


def test_report_formats_spreads():
    assert report._s({"median": 2.0, "min": 1.5, "max": 3.25, "n": 3}) == "2.00 (1.50–3.25)"
    assert report._s({"median": 2.0, "min": 2.0, "max": 2.0, "n": 3}) == "2.00"
    assert report._s(None) == "–"
