"""Processes by pid: whether one still runs (servers and runs are stopped and reaped by pid)."""

import ctypes
import ctypes.util
import os
import signal
from pathlib import Path

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def process_alive(pid: int, started: str | None = None) -> bool:
    """Whether `pid` runs; with `started` (its `process_started` when it was recorded), whether
    it is still that process and not a later one given the same pid."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, under another user
    stat = _stat(pid)
    if stat is None:
        return True  # no /proc to ask: the pid is all we know
    if stat[0] == "Z":
        return False  # exited, waiting for a parent that may never reap it
    return started is None or stat[19] == started


def process_started(pid: int) -> str | None:
    """When the process started (clock ticks since boot), or None where /proc is not there."""
    stat = _stat(pid)
    return None if stat is None else stat[19]


def _stat(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name: state first, start time 20th."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()


def die_with_parent() -> None:
    """Have the kernel kill this process when its parent dies (Linux; elsewhere a no-op), and
    exit now if the parent is already gone. Survives `exec`, so a wrapper can set it for dbt."""
    parent = os.getppid()
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # it died before the request took effect
        os._exit(1)
