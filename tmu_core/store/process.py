"""Is the process that owns a run still alive? (pid plus its start time, so a reused pid is not mistaken.)"""

from __future__ import annotations

import os
import socket


def this_host() -> str:
    return socket.gethostname()


def pid_alive(pid) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):  # a number too large for a pid is no process
        return False
    except PermissionError:
        return True
    try:  # a zombie (killed child not yet reaped) is not running
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def pid_start(pid) -> int | None:
    """When process `pid` started (clock ticks since boot, from /proc), or None where unknown. Stored next
    to a run's pid, it tells the run's process from a later one that was given the same id."""
    try:
        with open(f"/proc/{int(pid)}/stat") as fh:
            return int(fh.read().rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError, TypeError):
        return None


def run_process_alive(st: dict) -> bool:
    """A run whose process is on another machine (a Ray worker) cannot be checked from here: it counts as
    alive, and its Ray driver marks it failed if the task is lost."""
    if st.get("host") not in (None, this_host()):
        return True
    if not pid_alive(st.get("pid")):
        return False
    recorded = st.get("pid_start")
    return recorded is None or pid_start(st["pid"]) in (None, recorded)
