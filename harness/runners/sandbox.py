"""The default runner: bubblewrap. No network, the store read-only, a fresh tmpfs root per cell.

The NixOS-like root is a tmpfs with each store path bound read-only under /nix/store and
/bin/sh linked to the store's busybox; nothing at /lib, /lib64 or /usr/lib unless a strategy
put it there. The FHS root (``container``) binds the build root's top-level directories
read-only over a tmpfs, so /home and /tmp stay writable and fresh.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from harness import command_script
from harness.model import CommandResult, PreparedCell, RootKind, RootSpec

_SKIP_TOP = {"home", "tmp", "proc", "dev", "sys", "run", "root", "mnt", "media"}


def fhs_root_args(fhs_root: Path) -> list[str]:
    """Bind a root file system's top-level directories read-only over bwrap's tmpfs /.

    The shared root is never written, and /home, /tmp and the like stay fresh and writable.
    """
    args: list[str] = []
    for entry in sorted(fhs_root.iterdir()):
        if entry.name in _SKIP_TOP:
            continue
        if entry.is_symlink():
            args += ["--symlink", os.readlink(entry), f"/{entry.name}"]
        elif entry.is_dir():
            args += ["--ro-bind", str(entry), f"/{entry.name}"]
    return args


def _root_args(root: RootSpec) -> list[str]:
    args = ["--tmpfs", "/"]
    if root.kind is RootKind.FHS:
        assert root.fhs_root is not None
        args += fhs_root_args(root.fhs_root)
    else:
        args += ["--dir", "/nix/store"]
        for path in root.store_paths:
            args += ["--ro-bind", str(path.host_path), path.store_path]
        for link in root.links:
            args += ["--symlink", link.target, link.path]
    return args


def bwrap_argv(prepared: PreparedCell, bwrap: str = "bwrap") -> list[str]:
    args = [bwrap, "--unshare-all", "--die-with-parent", "--new-session", "--hostname", "ldmatrix"]
    args += _root_args(prepared.root)
    args += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
    for mount in prepared.mounts:
        args += ["--bind" if mount.writable else "--ro-bind", str(mount.host), mount.target]
    args += ["--remount-ro", "/", "--chdir", prepared.cwd, "--", *prepared.argv]
    return args


class SandboxRunner:
    name = "sandbox"

    def __init__(self) -> None:
        self.bwrap = shutil.which("bwrap")

    def unavailable(self) -> str | None:
        if self.bwrap is None:
            return "bubblewrap (bwrap) not found: apt-get install -y bubblewrap"
        probe = subprocess.run([self.bwrap, "--unshare-all", "--ro-bind", "/", "/", "true"],
                               capture_output=True, text=True)
        if probe.returncode != 0:
            return f"bubblewrap cannot create namespaces here: {probe.stderr.strip()}"
        return None

    def run(self, prepared: PreparedCell) -> CommandResult:
        argv = bwrap_argv(prepared, self.bwrap or "bwrap")
        command_script.write(prepared, argv, env=prepared.env, runner=self.name)
        start = time.monotonic()
        proc = subprocess.Popen(argv, env=dict(prepared.env), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                start_new_session=True)
        try:
            out, err = proc.communicate(timeout=prepared.timeout)
            timed_out = False
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
            timed_out = True
        duration = time.monotonic() - start
        return CommandResult(proc.returncode, out.decode(errors="replace"), err.decode(errors="replace"),
                             duration, timed_out)

    def close(self) -> None:
        pass

