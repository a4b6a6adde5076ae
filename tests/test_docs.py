"""The README's tables stay true: every family the proxy exports, and no family it does not (its
settings table is generated: tests/test_settings.py)."""

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


def _documented_families(path: Path) -> set[str]:
    """The families named in the rows of a page's Metrics table (its `## Metrics…` section)."""
    text = path.read_text()
    section = re.search(r"^## Metrics.*?(?=^## )", text, re.M | re.S)
    assert section, f"{path.name} has no Metrics section"
    rows = [line for line in section.group(0).splitlines() if line.startswith("| `zai_proxy_")]
    return {name for row in rows for name in re.findall(r"`(zai_proxy_[a-z_]+)`", row)}


def test_every_family_in_the_metrics_tables_is_exported():
    exported = {name.removesuffix("_total") for name in _metric_families()}
    for page in (ROOT / "README.md", ROOT / "docs/architecture.md"):
        documented = _documented_families(page)
        assert len(documented) > 20, page.name
        unknown = sorted(f for f in documented if f.removesuffix("_total") not in exported)
        assert unknown == [], f"{page.name} documents families metrics.py does not define"


def test_readme_leads_with_the_two_commands():
    head = README[:2500]
    assert "make demo" in head and "make test" in head
