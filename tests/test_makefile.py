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


def test_make_run_checks_the_settings_before_gunicorn():
    assert "cd image && ../.venv/bin/python -m zai_proxy.launch" in _dry_run("run")
