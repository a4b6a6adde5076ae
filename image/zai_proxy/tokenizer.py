"""tiktoken's encodings, read from the local cache only: the proxy never downloads at run time.

tiktoken fetches a missing BPE file from its blob host. A pod has no route there, so the fetch
ends in a DNS or connection error minutes into a boot, and the message that reaches the operator
is about the network rather than the missing file. Here a cache miss is refused at once, with a
message that says where tiktoken looked and how to provide the file.
"""

from __future__ import annotations

import os
import tempfile
import threading

from .setting_kinds import ConfigError

_lock = threading.Lock()


class _NotCached(Exception):
    pass


def cache_dir() -> str:
    """Where tiktoken looks (tiktoken/load.py read_file_cached), described for a message."""
    for name in ("TIKTOKEN_CACHE_DIR", "DATA_GYM_CACHE_DIR"):
        if name in os.environ:
            return f"{name}={os.environ[name]!r}"
    default = os.path.join(tempfile.gettempdir(), "data-gym-cache")
    return f"TIKTOKEN_CACHE_DIR (unset, so tiktoken looked in {default})"


def load_encoding(name: str):
    """The tiktoken Encoding `name`, from the cache; ConfigError naming the variable to fix."""
    import tiktoken
    import tiktoken.load

    known = tiktoken.list_encoding_names()
    if name not in known:
        raise ConfigError(f"TOKENIZER_ENCODING={name!r} is not a tiktoken encoding "
                          f"(known: {', '.join(known)})")

    fetch = tiktoken.load.read_file

    def local_only(blobpath: str) -> bytes:
        if "://" in blobpath:   # what the cache lacks, tiktoken would download: refuse instead
            raise _NotCached(blobpath)
        return fetch(blobpath)

    with _lock:
        tiktoken.load.read_file = local_only
        try:
            return tiktoken.get_encoding(name)
        except _NotCached:
            raise ConfigError(
                f"token counting is on (TOKEN_COUNTING_ENABLED) but {cache_dir()} does not hold "
                f"tiktoken's {name} file, and the proxy never downloads it. The image bakes it "
                "into /opt/tiktoken; locally, `make tiktoken-cache` fills .cache/tiktoken and "
                "the Makefile points TIKTOKEN_CACHE_DIR there. Or set "
                "TOKEN_COUNTING_ENABLED=false") from None
        finally:
            tiktoken.load.read_file = fetch
