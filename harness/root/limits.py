"""What a cell may use, in one place for every runner: its user, memory, processes, output, files.

A cell runs a foreign program, so it runs as a NixOS user does: uid 1000 ("user"), gid 100
("users"), no capabilities. Its memory and process count are bounded by a cgroup of its own
when the machine lets us make one (cgroup v2, or v1's ``memory`` and ``pids`` controllers, as
root); otherwise memory falls back to RLIMIT_AS and the process count is not bounded (a process
limit by RLIMIT_NPROC does not hold inside a user namespace started by root). The docker runner
hands the same numbers to the engine.

A cell's cgroup is ``ldmatrix-<pid>-<n>``, named after the run that made it; the first cgroup a
process makes removes those of runs that are gone (killed by SIGKILL, SIGTERM, or stopped before
they could), with whatever is still in them killed.
"""

from __future__ import annotations

import itertools
import os
import re
import shlex
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from harness.root.processes import gone

CELL_UID = 1000
CELL_GID = 100
CELL_USER = "user"
CELL_GROUP = "users"

CGROUP_ROOT = Path("/sys/fs/cgroup")


@dataclass(frozen=True)
class Limits:
    memory: int = 1 << 30  # bytes of memory for the whole cell
    pids: int = 512  # processes and threads
    output: int = 1 << 20  # bytes of stdout, and of stderr, kept (the rest is counted)
    file_size: int = 256 << 20  # the largest file a cell may write (RLIMIT_FSIZE)
    tmp: int = 256 << 20  # the size of the cell's /tmp
    home: int = 256 << 20  # the size of the cell's HOME (a tmpfs too; both count against memory)

    def describe(self) -> str:
        return (f"memory {self.memory >> 20} MiB, {self.pids} processes, output {self.output >> 10} KiB "
                f"per stream kept, files up to {self.file_size >> 20} MiB, /tmp {self.tmp >> 20} MiB, "
                f"HOME {self.home >> 20} MiB")


CELL = Limits()

_counter = itertools.count()
_lock = threading.Lock()
_NAME = re.compile(r"^ldmatrix-(\d+)-\d+$")
_swept: list[bool] = []


def _own_cgroup(controller: str | None) -> Path | None:
    """This process's cgroup directory for ``controller`` (None: the v2 unified hierarchy)."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        number, controllers, path = line.split(":", 2)
        if controller is None and number == "0" and controllers == "":
            return CGROUP_ROOT / path.lstrip("/")
        if controller is not None and controller in controllers.split(","):
            return CGROUP_ROOT / controller / path.lstrip("/")
    return None


@dataclass(frozen=True)
class Cgroup:
    """A cell's own cgroup (one directory per controller hierarchy), removed by ``close``."""

    dirs: tuple[Path, ...]
    memory_file: Path | None  # where its count of OOM kills can be read (v2 memory.events, v1 memory.oom_control)

    @property
    def procs_files(self) -> tuple[Path, ...]:
        return tuple(d / "cgroup.procs" for d in self.dirs)

    def pids(self) -> set[int]:
        out: set[int] = set()
        for procs in self.procs_files:
            try:
                out |= {int(p) for p in procs.read_text().split()}
            except OSError:
                pass
        return out

    def kill(self) -> None:
        for pid in self.pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def hit_memory_limit(self, limit: int) -> bool:
        """Whether the kernel killed a process of the cell for memory: its OOM kill count. (Not v1's
        memory.failcnt, which counts every time the limit was reached, page cache reclaimed included:
        a cell that wrote a big file "reached its memory limit" by it.)"""
        if self.memory_file is None:
            return False
        try:
            text = self.memory_file.read_text()
        except OSError:
            return False
        counts = dict(line.split()[:2] for line in text.splitlines() if len(line.split()) >= 2)
        return int(counts.get("oom_kill", "0")) > 0  # v2 memory.events and v1 memory.oom_control: "oom_kill N"

    def close_later(self) -> None:
        """``close`` in a thread: the last processes take a few milliseconds to leave a cgroup, and a
        cell's result need not wait for that."""
        threading.Thread(target=self.close, name="ldmatrix-cgroup-close").start()

    def close(self) -> None:
        """Kill what is left in it and remove it (processes take a moment to leave)."""
        for attempt in range(200):
            self.kill()
            remaining = []
            for d in self.dirs:
                try:
                    d.rmdir()
                except FileNotFoundError:
                    pass
                except OSError:
                    remaining.append(d)
            if not remaining:
                return
            time.sleep(0.001 * (attempt + 1))


def _write(path: Path, value: str) -> None:
    path.write_text(value)


def _parents() -> list[Path]:
    """Where this process makes its cells' cgroups (one directory per hierarchy)."""
    if (CGROUP_ROOT / "cgroup.controllers").exists():
        own = _own_cgroup(None)
        return [own] if own else []
    return [p for p in (_own_cgroup("memory"), _own_cgroup("pids")) if p is not None]


def sweep_cgroups() -> list[Path]:
    """Remove the cgroups of runs that are gone (their pid dead, or reused by a later process),
    killing what is left in them; returns the directories removed."""
    removed = []
    for parent in _parents():
        try:
            children = [d for d in parent.iterdir() if _NAME.match(d.name)]
        except OSError:
            continue
        for directory in children:
            pid = int(_NAME.match(directory.name).group(1))  # type: ignore[union-attr]
            try:
                made = directory.stat().st_mtime
            except OSError:
                continue
            if pid == os.getpid() or not gone(pid, made):
                continue
            group = Cgroup((directory,), None)
            group.close()
            if not directory.exists():
                removed.append(directory)
    return removed


def make_cgroup(limits: Limits) -> Cgroup | None:
    """A fresh cgroup with the memory and pid limits, or None when this machine does not let us."""
    with _lock:
        name = f"ldmatrix-{os.getpid()}-{next(_counter)}"
        sweep = not _swept
        if sweep:
            _swept.append(True)
    if sweep:
        sweep_cgroups()
    if (CGROUP_ROOT / "cgroup.controllers").exists():
        return _make_v2(name, limits)
    return _make_v1(name, limits)


def _make_v2(name: str, limits: Limits) -> Cgroup | None:
    own = _own_cgroup(None)
    if own is None:
        return None
    path = own / name
    try:
        path.mkdir()
    except OSError:
        return None
    try:
        _write(path / "memory.max", str(limits.memory))
        _write(path / "memory.swap.max", "0")
        _write(path / "pids.max", str(limits.pids))
    except OSError:
        Cgroup((path,), None).close()
        return None
    return Cgroup((path,), path / "memory.events")


def _make_v1(name: str, limits: Limits) -> Cgroup | None:
    memory, pids = _own_cgroup("memory"), _own_cgroup("pids")
    if memory is None or pids is None:
        return None
    made: list[Path] = []
    try:
        for parent in (memory, pids):
            (parent / name).mkdir()
            made.append(parent / name)
        _write(memory / name / "memory.limit_in_bytes", str(limits.memory))
        _write(pids / name / "pids.max", str(limits.pids))
    except OSError:
        Cgroup(tuple(made), None).close()
        return None
    return Cgroup(tuple(made), memory / name / "memory.oom_control")


_probe: dict[str, bool] = {}


def cgroups_work() -> bool:
    """Whether cells get a cgroup here (checked once per process)."""
    if "ok" not in _probe:
        group = make_cgroup(CELL)
        _probe["ok"] = group is not None
        if group is not None:
            group.close()
    return _probe["ok"]


def wrap(argv: list[str], limits: Limits, cgroup: Cgroup | None, starter: Path | None = None) -> list[str]:
    """``argv`` started inside ``cgroup`` (joined before anything is forked) under the rlimits.

    ``starter``: harness/data/cell_start.c's program, which joins and limits in one static exec;
    without it, a shell joins the cgroup and execs prlimit, which execs ``argv``. Either way no
    preexec_fn in a threaded program, and no process left in between.
    """
    procs = cgroup.procs_files if cgroup else ()
    if starter is not None:
        options = [a for p in procs for a in ("-g", str(p))] + ["-f", str(limits.file_size)]
        if cgroup is None:
            options += ["-v", str(limits.memory)]
        return [str(starter), *options, "--", *argv]
    join = "".join(f"echo $$ > {shlex.quote(str(p))} && " for p in procs)
    rlimits = [f"--fsize={limits.file_size}", "--core=0"]
    if cgroup is None:
        rlimits.append(f"--as={limits.memory}")
    return ["/bin/sh", "-c", f'{join}exec "$@"', "ldmatrix-limits", "prlimit", *rlimits, "--", *argv]


def give_to_cell_user(path: Path) -> None:
    """Make a writable bind (a cell's HOME, a build's /out) the cell user's, so uid 1000 can write it.

    Only root can and needs to: without root, the sandbox maps uid 1000 to the caller.
    """
    if os.geteuid() == 0:
        os.chown(path, CELL_UID, CELL_GID)
        for parent, dirs, files in os.walk(path):  # what the harness put in it (a launcher's scripts)
            for name in (*dirs, *files):
                os.chown(os.path.join(parent, name), CELL_UID, CELL_GID, follow_symlinks=False)
