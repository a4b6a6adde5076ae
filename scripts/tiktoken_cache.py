#!/usr/bin/env python3
"""Fill an offline tiktoken cache (TIKTOKEN_CACHE_DIR) without reaching the tiktoken blob host.

Usage: tiktoken_cache.py DEST

tiktoken downloads its BPE files from a host that this project's machines cannot reach. The
litellm wheel on PyPI ships the same files, already named as tiktoken's cache expects (the SHA-1
of the blob URL), so we fetch that wheel with pip and unzip just those files. Nothing from the
wheel is installed or imported. tiktoken checks each cached file against the SHA-256 it pins, so
the final verification (run with every proxy pointed at a dead port, so a cache miss cannot
quietly download) proves the files are the right ones.

Idempotent: when DEST already holds verified files, nothing is downloaded.
"""

from __future__ import annotations

import glob
import os
import subprocess
import sys
import zipfile

LITELLM_VERSION = "1.110.2"
WHEEL_DIR_IN_WHEEL = "litellm/litellm_core_utils/tokenizers/"
# tiktoken cache file name = sha1(blob URL); see tiktoken/load.py read_file_cached.
REQUIRED = {"cl100k_base": "9b5ad71b2ce5302211f9c61530b329a4922fc6a4"}
OPTIONAL = {"o200k_base": "fb374d419588a4632f3f557e76b4b70aebbca790"}

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WHEELS = os.path.join(REPO, ".cache", "wheels")


def log(message: str) -> None:
    print(f"tiktoken-cache: {message}", file=sys.stderr)


def verify(dest: str, encodings: list[str]) -> bool:
    """Load each encoding from DEST alone; a dead proxy turns any download attempt into a failure."""
    env = dict(os.environ, TIKTOKEN_CACHE_DIR=dest)
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY"):
        env[name] = "http://127.0.0.1:9"
    env.pop("NO_PROXY", None)
    env.pop("no_proxy", None)
    code = ("import sys, tiktoken\n"
            "for name in sys.argv[1:]:\n"
            "    assert tiktoken.get_encoding(name).encode('hi'), name\n")
    result = subprocess.run([sys.executable, "-c", code, *encodings], env=env,
                            capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        tail = result.stderr.strip().splitlines()[-1:] or ["no output"]
        log(f"verification failed for {encodings}: {tail[0]}")
    return result.returncode == 0


def present(dest: str) -> list[str]:
    wanted = {**REQUIRED, **OPTIONAL}
    return [name for name, file in wanted.items() if os.path.isfile(os.path.join(dest, file))]


def wheel_path() -> str:
    pattern = os.path.join(WHEELS, f"litellm-{LITELLM_VERSION}-*.whl")
    found = sorted(glob.glob(pattern))
    if found:
        return found[0]
    os.makedirs(WHEELS, exist_ok=True)
    log(f"downloading litellm=={LITELLM_VERSION} wheel into {WHEELS} (data files only are used)")
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                    "--only-binary=:all:", "--dest", WHEELS, f"litellm=={LITELLM_VERSION}"],
                   check=True)
    found = sorted(glob.glob(pattern))
    if not found:
        raise SystemExit(f"tiktoken-cache: pip left no litellm-{LITELLM_VERSION} wheel in {WHEELS}")
    return found[0]


def extract(wheel: str, dest: str) -> list[str]:
    os.makedirs(dest, exist_ok=True)
    taken = []
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        for encoding, file in {**REQUIRED, **OPTIONAL}.items():
            member = WHEEL_DIR_IN_WHEEL + file
            if member not in names:
                if encoding in REQUIRED:
                    raise SystemExit(f"tiktoken-cache: {wheel} has no {member} ({encoding})")
                continue
            target = os.path.join(dest, file)
            # Write then rename, so a parallel reader never sees half a file.
            with archive.open(member) as source, open(target + ".tmp", "wb") as out:
                out.write(source.read())
            os.replace(target + ".tmp", target)
            taken.append(encoding)
    return taken


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    dest = os.path.abspath(argv[1])
    have = present(dest)
    if set(REQUIRED) <= set(have) and verify(dest, have):
        log(f"{dest} already holds {', '.join(have)}")
        return 0
    taken = extract(wheel_path(), dest)
    if not verify(dest, taken):
        return 1
    log(f"{dest} now holds {', '.join(taken)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
