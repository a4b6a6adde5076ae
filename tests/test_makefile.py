"""The Makefile runs what it advertises (checked with `make -n`, which runs nothing)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _dry_run(target: str, **env) -> str:
    result = subprocess.run(["make", "-n", "--no-print-directory", target], cwd=ROOT,
                            env={**os.environ, "MAKEFLAGS": "", **env}, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_fast_reliability_skips_the_long_fuzz_and_the_full_run_keeps_it():
    fast = _dry_run("reliability", RELIABILITY_ARGS="--fast")
    assert "-m tools.reliability --fast" in fast
    assert "ZAI_PROXY_FUZZ=long" not in fast and "test_cardinality" not in fast
    full = _dry_run("reliability", RELIABILITY_ARGS="")
    assert "ZAI_PROXY_FUZZ=long ZAI_PROXY_CARDINALITY_REQUESTS=10000" in full


def test_make_run_checks_the_settings_before_gunicorn():
    assert "cd image && ../.venv/bin/python -m zai_proxy.launch" in _dry_run("run")
