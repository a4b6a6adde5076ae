"""Child processes of the demo/e2e stack, started so that none can outlive it.

Each child gets its own process group (so the whole tree of a gunicorn master and its workers can
be signalled at once, and a Ctrl-C in the terminal reaches only the demo, which then stops the
children in order) but stays in the demo's session, so `session_leftovers()` finds anything that
escaped. On Linux each child also gets PR_SET_PDEATHSIG(SIGTERM): if the demo itself is killed
with SIGKILL, its children are still told to stop.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import time
from pathlib import Path

import psutil

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    # Runs in the child between fork and exec: no locks, no allocation-heavy work.
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass  # not Linux: the finally/signal handlers still stop the children


class Child:
    """One started program; `stop()` signals its whole process group."""

    def __init__(self, name: str, argv: list[str], log: Path, env: dict[str, str] | None = None,
                 cwd: Path | None = None):
        self.name = name
        self.log = log
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=out,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         process_group=0, preexec_fn=_die_with_parent)
        self.pid = self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def _group_alive(self) -> bool:
        try:
            os.killpg(self.pid, 0)
        except (ProcessLookupError, PermissionError):
            return False
        # Killed workers of a killed master are orphans that stay zombies until init reaps them:
        # gone, only not yet counted as such.
        return bool(group_leftovers([self.pid]))

    def _signal_group(self, sig: int) -> None:
        try:
            os.killpg(self.pid, sig)
        except ProcessLookupError:
            pass

    def stop(self, timeout: float = 15.0, sig: int = signal.SIGTERM) -> None:
        """`sig` to the group, then SIGKILL to whatever is left after `timeout` seconds."""
        self.terminate(sig)
        self.wait_or_kill(time.monotonic() + timeout)

    def terminate(self, sig: int = signal.SIGTERM) -> None:
        if self.alive():
            self._signal_group(sig)

    def wait_or_kill(self, deadline: float) -> None:
        """Wait for the group to end until `deadline` (monotonic), then SIGKILL what is left."""
        while time.monotonic() < deadline:
            self.proc.poll()  # reap the leader so the group check sees it gone
            if not self._group_alive():
                return
            time.sleep(0.05)
        self._signal_group(signal.SIGKILL)
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            pass
        deadline = time.monotonic() + 5
        while self._group_alive() and time.monotonic() < deadline:
            time.sleep(0.05)

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


class Children:
    """The started children in start order; `stop_all()` stops them newest first."""

    def __init__(self) -> None:
        self.started: list[Child] = []

    def start(self, name: str, argv: list[str], log: Path, **kwargs) -> Child:
        child = Child(name, argv, log, **kwargs)
        self.started.append(child)
        return child

    def stop_all(self, timeout: float = 15.0, first: tuple[str, ...] = (),
                 together: tuple[str, ...] = ()) -> None:
        """Stop the children named in `first` in that order, then those named in `together` all
        at once (one shared grace period), then the others newest first."""
        for name in first:
            for child in [c for c in self.started if c.name == name]:
                child.stop(timeout)
                self.started.remove(child)
        group = [c for c in self.started if c.name in together]
        for child in group:
            child.terminate()
        deadline = time.monotonic() + timeout
        for child in group:
            child.wait_or_kill(deadline)
            self.started.remove(child)
        while self.started:
            self.started.pop().stop(timeout)

    def pids(self) -> list[int]:
        return [c.pid for c in self.started]


def session_leftovers(sid: int | None = None,
                      exclude: set[int] | None = None) -> list[psutil.Process]:
    """Live processes of session `sid` (default: ours) other than `exclude` and ourselves."""
    sid = os.getsid(0) if sid is None else sid
    exclude = (exclude or set()) | {os.getpid()}
    found = []
    for proc in psutil.process_iter(["pid", "status"]):
        try:
            if proc.pid in exclude or proc.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            if os.getsid(proc.pid) == sid:
                found.append(proc)
        except (ProcessLookupError, PermissionError, psutil.Error):
            continue
    return found


def group_leftovers(pgids: list[int]) -> list[psutil.Process]:
    """Live processes in any of the process groups `pgids` (each child leads its own group)."""
    wanted = set(pgids)
    found = []
    for proc in psutil.process_iter(["pid", "status"]):
        try:
            if proc.info["status"] != psutil.STATUS_ZOMBIE and os.getpgid(proc.pid) in wanted:
                found.append(proc)
        except (ProcessLookupError, PermissionError, psutil.Error):
            continue
    return found


def descendants() -> list[psutil.Process]:
    """Our live descendants (zombies excluded: they are gone, only not yet reaped)."""
    out = []
    for child in psutil.Process().children(recursive=True):
        try:
            if child.status() != psutil.STATUS_ZOMBIE:
                out.append(child)
        except psutil.NoSuchProcess:
            pass
    return out
