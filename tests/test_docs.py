"""The README's tables stay true: every family the proxy exports (its settings table is generated:
tests/test_settings.py)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def _metric_families() -> set[str]:
    source = (ROOT / "image/zai_proxy/metrics.py").read_text()
    names = set(re.findall(r'"(zai_proxy_[a-z_]+)"', source))
    return {name if not name.endswith("_total") else name for name in names}


def test_every_metric_family_is_in_the_readme():
    families = _metric_families()
    assert len(families) > 20
    missing = sorted(f for f in families if f.removesuffix("_total") not in README)
    assert missing == []


def test_readme_leads_with_the_two_commands():
    head = README[:2500]
    assert "make demo" in head and "make test" in head
