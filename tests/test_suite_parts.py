"""The suite's two parts (Makefile): `make test-python-tools` collects only the files whose text
mentions needs_tools, so tests/conftest.py refuses a needs_tools test anywhere else."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_pytest(directory: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "tests.conftest",
                           "-p", "no:cacheprovider", "--rootdir", str(directory),
                           "-c", os.devnull, str(directory)],
                          cwd=directory, env=env, capture_output=True, text=True, timeout=60)


HIDDEN = ("import pytest\n"
          "MARK = getattr(pytest.mark, 'needs' + '_tools')\n"
          "@MARK\n"
          "def test_uses_helm():\n"
          "    pass\n")
NAMED = ("import pytest\n"
         "pytestmark = pytest.mark.needs_tools\n"
         "def test_uses_helm():\n"
         "    pass\n")


@pytest.mark.parametrize("source, code, expected", [
    (HIDDEN, 4, "needs_tools tests in files that do not mention it: ['{path}']"),
    (NAMED, 0, "1 passed"),
], ids=["mark hidden from the text: refused", "mark named in the text: collected"])
def test_only_files_that_name_the_mark_may_hold_needs_tools_tests(tmp_path, source, code, expected):
    path = tmp_path / "test_helm.py"
    path.write_text(source)
    result = run_pytest(tmp_path)
    assert result.returncode == code, result.stdout + result.stderr
    assert expected.format(path=path) in result.stdout + result.stderr
