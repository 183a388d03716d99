"""Whether the process that made something (a container, a cgroup, a temp directory) is still there.

A pid alone can be reused by another process; with the pid's start time it names one process.
"""

from __future__ import annotations

import os


def process_start(pid: int) -> str | None:
    """The start time of ``pid`` in clock ticks since boot (field 22 of /proc/PID/stat), None if gone."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            stat = fh.read()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def _boot_time() -> float:
    with open("/proc/stat") as fh:
        for line in fh:
            if line.startswith("btime "):
                return float(line.split()[1])
    return 0.0


def started_after(pid: int, when: float, slack: float = 2.0) -> bool | None:
    """Whether ``pid`` started more than ``slack`` seconds after ``when`` (epoch seconds): then it is
    another process under a reused pid. None when ``pid`` is gone."""
    ticks = process_start(pid)
    if ticks is None:
        return None
    started = _boot_time() + int(ticks) / os.sysconf("SC_CLK_TCK")
    return started > when + slack


def gone(pid: int, made_at: float) -> bool:
    """The process ``pid`` that made something at ``made_at`` no longer exists (or the pid was reused)."""
    return started_after(pid, made_at) is not False
