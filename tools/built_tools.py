"""The built tools a test may use, helm (`make helm`) and the dashboard UI (`make ui`), and the
part of the suite that must do without them.

`make test` runs most of the Python suite while these are still being built (the Go build takes
minutes of CPU from a cold cache): `make test-python-base` sets WITHOUT_BUILT_TOOLS and skips the
tests marked `@pytest.mark.needs_tools`, which `make test-python-tools` runs once they are built.
Every use of a built tool goes through `require()`, which refuses in the base run, on every machine,
built or not: a test that lacks its mark fails at once instead of passing where the tool happens
to be built and failing on a fresh clone.
"""

from __future__ import annotations

import os

WITHOUT_BUILT_TOOLS = "ZAI_PROXY_WITHOUT_BUILT_TOOLS"


def require(tool: str) -> None:
    if os.environ.get(WITHOUT_BUILT_TOOLS):
        raise RuntimeError(f"{tool} is not built yet in this run ({WITHOUT_BUILT_TOOLS} is set): "
                           "a test that uses it needs @pytest.mark.needs_tools")
