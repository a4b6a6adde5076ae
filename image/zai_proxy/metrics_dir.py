"""The Prometheus multiprocess folder: one per running instance, never shared by two live masters.

Every gunicorn process writes its counters to files in this folder, and the master wipes it at
start so a restarted instance never reports a previous life's counts. Two instances on one
folder would therefore wipe and then mix each other's metrics. So:

- PROMETHEUS_MULTIPROC_DIR unset: the master makes a private folder under the temp dir and
  removes it at exit (two `make run`s never meet);
- set: the master claims the folder with a lock file that holds its pid, and a second live
  master is refused with a message naming the first. The lock is an flock on that file, so it
  ends with the holding processes however they end; a leftover pid in the file means nothing.

claim() is idempotent within a process: gunicorn re-reads its config file on SIGHUP, and the
folder must then neither be wiped nor refused as "in use by" its own master.
"""

from __future__ import annotations

import atexit
import fcntl
import os
import shutil
import tempfile

from .setting_kinds import ConfigError

LOCK_NAME = "master.lock"

_claimed: dict[str, int] = {}     # folder → lock file descriptor, for the claiming process
_private: set[str] = set()


def claim(configured: str | None) -> str:
    """The folder this instance uses: `configured`, claimed and wiped, or a new private one."""
    if configured and configured in _claimed:
        return configured
    if not configured:
        folder = tempfile.mkdtemp(prefix="zai-proxy-metrics-")
        _private.add(folder)
    else:
        folder = configured
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"PROMETHEUS_MULTIPROC_DIR={folder!r} cannot be created: "
                              f"{exc.strerror}") from None
    _lock(folder)
    _wipe(folder)
    atexit.register(_release, folder, os.getpid())
    return folder


def _lock(folder: str) -> None:
    path = os.path.join(folder, LOCK_NAME)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise ConfigError(f"PROMETHEUS_MULTIPROC_DIR={folder!r} is not writable: "
                          f"{exc.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 32).decode("ascii", "replace").strip() or "unknown"
        os.close(fd)
        raise ConfigError(
            f"PROMETHEUS_MULTIPROC_DIR={folder!r} is in use by another running zai-proxy (master "
            f"pid {holder}); sharing it would wipe and mix both instances' metrics. Give each "
            "instance its own folder, or leave PROMETHEUS_MULTIPROC_DIR unset for a private "
            "one") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    _claimed[folder] = fd   # kept open: the lock lives as long as this process and its workers


def _wipe(folder: str) -> None:
    for name in os.listdir(folder):
        if name == LOCK_NAME:
            continue
        path = os.path.join(folder, name)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass


def _release(folder: str, owner: int) -> None:
    """At the claiming process's exit (workers inherit atexit hooks, hence the pid check)."""
    if os.getpid() != owner:
        return
    if folder in _private:
        shutil.rmtree(folder, ignore_errors=True)
