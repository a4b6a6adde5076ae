"""`make run`: check the configuration, then become gunicorn serving the proxy.

    cd image && python -m zai_proxy.launch

gunicorn reads WEB_CONCURRENCY itself while it is imported, before its config file (which
validates everything else) runs, so a bad value there would end in gunicorn's traceback. Checked
here first, it gets the same one-line message as every other setting. Then this process execs the
image's own command, so what runs locally is exactly what the image runs.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from . import config

APP_DIR = Path(__file__).resolve().parent.parent
COMMAND = ["-m", "gunicorn", "-c", "gunicorn.conf.py", "app:create_app()"]


def main() -> int:
    try:
        config.load()
    except config.ConfigError as exc:
        sys.stderr.write(f"zai-proxy: configuration error: {exc}\n")
        return 2
    os.chdir(APP_DIR)
    os.execv(sys.executable, [sys.executable, *COMMAND])


if __name__ == "__main__":
    sys.exit(main())
