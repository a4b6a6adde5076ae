"""The suite's two parts (Makefile): `make test-python-tools` collects only the files whose text
mentions needs_tools, so tests/conftest.py refuses a needs_tools test anywhere else."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_pytest(directory: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "tests.conftest",
                           "-p", "no:cacheprovider", "--rootdir", str(directory),
                           "-c", os.devnull, str(directory)],
                          cwd=directory, env=env, capture_output=True, text=True, timeout=60)


def test_a_needs_tools_test_in_a_file_that_does_not_say_so_is_refused(tmp_path):
    (tmp_path / "test_hidden.py").write_text(
        "import pytest\n"
        "MARK = getattr(pytest.mark, 'needs' + '_tools')\n"
        "@MARK\n"
        "def test_uses_helm():\n"
        "    pass\n")
    result = run_pytest(tmp_path)
    assert result.returncode == 4, result.stdout + result.stderr
    assert "needs_tools tests in files that do not mention it" in result.stderr
    assert "test_hidden.py" in result.stderr


def test_a_file_that_names_the_mark_is_collected(tmp_path):
    (tmp_path / "test_named.py").write_text(
        "import pytest\n"
        "pytestmark = pytest.mark.needs_tools\n"
        "def test_uses_helm():\n"
        "    pass\n")
    result = run_pytest(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout
