"""Processes by pid: whether one still runs (servers and runs are stopped and reaped by pid)."""

import os


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another user
    return True
