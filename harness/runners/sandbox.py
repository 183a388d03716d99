"""The default runner: bubblewrap. No network, no capabilities, uid 1000, the store read-only.

The NixOS-like root is a tmpfs with each store path bound read-only under /nix/store and
/bin/sh linked to the store's busybox; nothing at /lib, /lib64 or /usr/lib unless a strategy
put it there. The FHS root (``container``) binds the build root's top-level directories
read-only over a tmpfs, so /home and /tmp stay writable and fresh. The command line comes from
harness.root.bwrap; memory, processes and output are bounded as harness.root.limits says, and the
timeout kills the whole sandbox (its cgroup, and bwrap's pid namespace with it).
"""

from __future__ import annotations

import os
import selectors
import shutil
import signal
import subprocess
import time
from pathlib import Path

from harness import interrupt
from harness.cache import Cache
from harness.model import CommandResult, PreparedCell, RootKind, RootSpec
from harness.results import command_script
from harness.root import store_farm
from harness.root.bwrap import Bind, fhs_root_args, parent_dirs, sandbox_argv
from harness.root.cell_user import ensure as cell_user_program
from harness.root.cell_user import ensure_start as cell_start_program
from harness.root.limits import CELL, Limits, give_to_cell_user, make_cgroup, wrap
from harness.runners.base import Runner
from harness.runners.output import Bounded

__all__ = ["SandboxRunner", "bwrap_argv", "fhs_root_args", "run_bounded", "run_cell"]

CHUNK = 1 << 16
STORE = "/nix/store"


def _in_store(target: str) -> bool:
    """A store path itself (/nix/store/<basename>), as opposed to something inside one."""
    return target.startswith(STORE + "/") and "/" not in target[len(STORE) + 1:]


def _root_args(root: RootSpec, binds: tuple[Bind, ...], cache: Cache | None) -> tuple[list[str], tuple[Bind, ...]]:
    """bwrap's arguments for the root, and the binds still to make. The store paths, the root's and
    the read-only binds at /nix/store/<basename>, become one bind of their farm (harness/root/store_farm.py)
    when ``cache`` is given and the farm can be made; otherwise each is bound."""
    if root.kind is RootKind.FHS:
        assert root.fhs_root is not None
        return fhs_root_args(root.fhs_root), binds
    made: set[str] = set()
    args = parent_dirs(f"{STORE}/x", made)
    store = [(p.store_path, p.host_path) for p in root.store_paths]
    store += [(b.target, b.host) for b in binds if not b.writable and _in_store(b.target)]
    farm = store_farm.farm(store, cache) if cache is not None else None
    if farm is not None:
        args += ["--ro-bind", str(farm), STORE]
        binds = tuple(b for b in binds if b.writable or not _in_store(b.target))
    else:
        for path in root.store_paths:
            args += ["--ro-bind", str(path.host_path), path.store_path]
    for link in root.links:
        args += [*parent_dirs(link.path, made), "--symlink", link.target, link.path]
    return args, binds


def bwrap_argv(prepared: PreparedCell, bwrap: str | None = None, limits: Limits = CELL,
               cell_user: Path | None = None, cache: Cache | None = None) -> list[str]:
    """The cell's bubblewrap command: its root, its mounts, its environment exactly and in order,
    started through the cell-user program (harness/root/cell_user.py; built on first use). ``cache``: where
    its store farm is made (None: every store path bound on its own)."""
    binds = tuple(Bind(m.host, m.target, m.writable, m.tmpfs) for m in prepared.mounts)
    root_args, binds = _root_args(prepared.root, binds, cache)
    return sandbox_argv(root_args, binds, prepared.argv, cwd=prepared.cwd, env=prepared.env,
                        limits=limits, bwrap=bwrap, cell_user=cell_user or cell_user_program())


def run_cell(prepared: PreparedCell, bwrap: str | None = None, limits: Limits = CELL) -> CommandResult:
    """Run a prepared cell in the sandbox: its writable mounts given to the cell user, bounded."""
    for mount in prepared.mounts:
        if mount.writable:
            give_to_cell_user(mount.host)
    argv = bwrap_argv(prepared, bwrap, limits, cache=Cache.default())
    command_script.write(prepared, argv, runner="sandbox", makes_mount_points=True)
    return run_bounded(argv, prepared.timeout, limits)


def _read(proc: subprocess.Popen, outputs: dict[int, Bounded], deadline: float, on_timeout) -> bool:
    """Read both pipes into their bounds until EOF; at the deadline call ``on_timeout`` once."""
    timed_out = False
    with selectors.DefaultSelector() as sel:
        for pipe in (proc.stdout, proc.stderr):
            assert pipe is not None
            os.set_blocking(pipe.fileno(), False)
            sel.register(pipe.fileno(), selectors.EVENT_READ)
        open_fds = len(outputs)
        while open_fds:
            wait = None if timed_out else max(0.0, deadline - time.monotonic())
            events = sel.select(wait)
            if not events and not timed_out:
                timed_out = True
                on_timeout()
                continue
            for key, _ in events:
                try:
                    data = os.read(key.fd, CHUNK)
                except BlockingIOError:
                    continue
                if data:
                    outputs[key.fd].feed(data)
                else:
                    sel.unregister(key.fd)
                    open_fds -= 1
    return timed_out


def run_bounded(argv: list[str], timeout: float, limits: Limits = CELL) -> CommandResult:
    """Run ``argv`` (a bubblewrap command) in its own cgroup and session, under ``limits``.

    stdout and stderr are kept up to ``limits.output`` each (see harness.runners.output); at the
    timeout everything the command started is killed.
    """
    starter = cell_start_program()  # built on first use, before the clock starts
    cgroup = make_cgroup(limits)
    start = time.monotonic()
    memory_hit = False
    try:
        proc = subprocess.Popen(wrap(argv, limits, cgroup, starter), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, start_new_session=True,
                                env={"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")})
        assert proc.stdout is not None and proc.stderr is not None
        stdout, stderr = Bounded(limits.output, "stdout"), Bounded(limits.output, "stderr")
        outputs = {proc.stdout.fileno(): stdout, proc.stderr.fileno(): stderr}

        def kill() -> None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # bwrap: its pid namespace goes with it
            except ProcessLookupError:
                pass
            if cgroup is not None:
                cgroup.kill()

        try:
            with interrupt.watch(kill) as stopped:  # Ctrl-C: killed now, not at the timeout
                timed_out = _read(proc, outputs, start + timeout, kill)
                rc = proc.wait()
            interrupted = stopped()
        except BaseException:
            kill()
            proc.wait()
            raise
        finally:
            proc.stdout.close()
            proc.stderr.close()
        duration = time.monotonic() - start
    finally:
        if cgroup is not None:
            memory_hit = cgroup.hit_memory_limit(limits.memory)
            cgroup.kill()
            cgroup.close_later()
    out, out_cut = stdout.result()
    err, err_cut = stderr.result()
    if memory_hit:
        err += f"ldmatrix: the cell reached its memory limit ({limits.memory >> 20} MiB)\n"
    return CommandResult(rc, out, err, duration, timed_out, stdout_cut=out_cut, stderr_cut=err_cut,
                         interrupted=interrupted)


class SandboxRunner(Runner):
    name = "sandbox"

    def __init__(self, limits: Limits = CELL) -> None:
        self.bwrap = shutil.which("bwrap")
        self.limits = limits

    def unavailable(self) -> str | None:
        if self.bwrap is None:
            return "bubblewrap (bwrap) not found: apt-get install -y bubblewrap"
        probe = subprocess.run(sandbox_argv(["--ro-bind", "/", "/"], (), ("/bin/true",), cwd="/",
                                            bwrap=self.bwrap), capture_output=True, text=True)
        if probe.returncode != 0:
            return f"bubblewrap cannot create namespaces here: {probe.stderr.strip()}"
        return None

    def run(self, prepared: PreparedCell) -> CommandResult:
        return run_cell(prepared, self.bwrap, self.limits)

    def close(self) -> None:
        pass
