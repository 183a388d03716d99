"""The one place that builds a bubblewrap command line: for cells, for builds, for testinfra.

Every tree is the same kind of sandbox: new namespaces (no network), the program uid 1000 /
gid 100 with no capabilities, bwrap's own tmpfs as / (made read-only at the end), the given trees
bound read-only unless asked otherwise, a fresh /proc, /dev and size-bounded /tmp, its own
session, and it dies with its parent.

How the program becomes uid 1000 depends on who starts bubblewrap:
- as root, for a cell (``cell_user`` given): no user namespace; bubblewrap keeps only the
  capabilities to change user and runs harness/data/cell_user.c first, which drops to uid 1000 /
  gid 100, empties every capability set, sets no_new_privs and execs the program. The cell is
  uid 1000 on the host too. (Started as root with a user namespace, uid 1000 inside would be
  uid 0 outside: no capabilities, yet allowed to write /proc/sys, /proc/irq and other files that
  check for uid 0 only. Started as root without either, it would keep nearly every capability,
  enough to remount a read-only store path read-write.)
- otherwise (not root, or a build of our own sources): a user namespace mapping uid 1000 to
  the caller, no capabilities, no further user namespaces.
- ``as_root``, only for tests/vm_standin.py (a stand-in of a NixOS VM's root shell, which drops to
  the cell user itself with ``su``): uid 0 of the host, without a user namespace, holding only the
  capabilities to change user and to own, copy and remove the files it sets up; needs root.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from harness.errors import LdmatrixError
from harness.root.cell_home import layout
from harness.root.limits import CELL, CELL_GID, CELL_UID, Limits

HOSTNAME = "ldmatrix"
NAMESPACES = ("--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try")
CELL_USER_PATH = "/.ldmatrix-cell-user"  # where harness/data/cell_user.c's program is bound in a cell
_SKIP_TOP = {"home", "tmp", "proc", "dev", "sys", "run", "root", "mnt", "media"}
HOME_MODE = "0755"  # a cell's HOME (docker's --workdir makes it 0755 whatever its tmpfs says)
ROOT_CAPS = ("CAP_SETUID", "CAP_SETGID", "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER")  # as_root keeps these


@dataclass(frozen=True)
class Bind:
    host: Path
    target: str
    writable: bool = False
    tmpfs: bool = False  # a cell's HOME: a bounded tmpfs holding host's files read-only (model.Mount)


def bwrap_command() -> str:
    found = shutil.which("bwrap")
    if found is None:
        raise LdmatrixError("bubblewrap not found: apt-get install -y bubblewrap")
    return found


def fhs_root_args(fhs_root: Path) -> list[str]:
    """Bind a root file system's top-level directories read-only over bwrap's tmpfs /.

    The shared root is never written, and /home, /tmp and the like stay fresh and writable.
    """
    if not fhs_root.is_dir():
        raise LdmatrixError(f"root file system {fhs_root} does not exist; provision it again")
    args: list[str] = []
    for entry in sorted(fhs_root.iterdir()):
        if entry.name in _SKIP_TOP:
            continue
        if entry.is_symlink():
            args += ["--symlink", os.readlink(entry), f"/{entry.name}"]
        elif entry.is_dir():
            args += ["--ro-bind", str(entry), f"/{entry.name}"]
    return args


def parent_dirs(target: str, made: set[str]) -> list[str]:
    """``--dir`` for the parents of ``target`` not made yet, readable by all (as root, bwrap makes
    missing parents 0700, which uid 1000 could not pass)."""
    args: list[str] = []
    parts = target.rstrip("/").split("/")[1:-1]
    for i in range(1, len(parts) + 1):
        parent = "/" + "/".join(parts[:i])
        if parent not in made and not parent.startswith(("/proc", "/dev", "/tmp")):
            made.add(parent)
            args += ["--perms", "0755", "--dir", parent]
    return args


def _user_args(cell_user: Path | None, as_root: bool = False, own: bool = False) -> list[str]:
    if as_root:
        if os.geteuid() != 0:
            raise LdmatrixError("a sandbox whose program is root (the VM stand-in of the tests) needs root")
        return [*NAMESPACES, "--cap-drop", "ALL", *(a for cap in ROOT_CAPS for a in ("--cap-add", cap))]
    if cell_user is not None and os.geteuid() == 0:
        # for cell-user, which drops them before exec (CAP_CHOWN: to give the cell its HOME first)
        keep = ("CAP_SETUID", "CAP_SETGID", "CAP_SETPCAP", *(("CAP_CHOWN",) if own else ()))
        # every namespace but the user namespace (--unshare-all would make one, mapping only uid 0)
        return [*NAMESPACES, "--cap-drop", "ALL", *(a for cap in keep for a in ("--cap-add", cap))]
    return ["--unshare-all", "--unshare-user", "--uid", str(CELL_UID), "--gid", str(CELL_GID),
            "--disable-userns", "--cap-drop", "ALL"]


def _home_args(bind: Bind, limits: Limits, made: set[str]) -> tuple[list[str], list[str]]:
    """A cell's HOME (harness/root/cell_home.py): a tmpfs of ``limits.home`` bytes, mode 0755 (as docker
    leaves a working directory, and as HOME was before), its directories 0755, the host's files bound read-only;
    and the directories the cell is to own."""
    tree = layout(bind.host)
    args = ["--perms", HOME_MODE, "--size", str(limits.home), "--tmpfs", bind.target]
    dirs = tree.targets(bind.target)
    for directory in dirs[1:]:
        args += ["--perms", "0755", "--dir", directory]
    made.update(dirs)
    for rel in tree.files:
        args += ["--ro-bind", str(bind.host / rel), f"{bind.target}/{rel}"]
    # deepest first: a directory the cell user owns may be one cell-user cannot look into
    return args, list(reversed(dirs))


def sandbox_argv(root_args: list[str], binds: tuple[Bind, ...] | list[Bind], command: tuple[str, ...] | list[str],
                 *, cwd: str, env: tuple[tuple[str, str], ...] | None = None, limits: Limits = CELL,
                 bwrap: str | None = None, cell_user: Path | None = None, network: bool = False,
                 as_root: bool = False) -> list[str]:
    """bubblewrap argv running ``command`` as uid 1000 without capabilities in the tree described.

    ``root_args`` lay out / (see ``fhs_root_args``, or store binds and links); ``env``, when given,
    is set exactly and in order (``--clearenv`` then ``--setenv`` each), else bwrap's own
    environment passes through. ``cell_user``: the built harness/data/cell_user.c (see above).
    ``network``: share the host's network and its resolver (only to fetch sources; never a cell
    or a build).
    """
    user = _user_args(cell_user, as_root, own=any(b.tmpfs for b in binds))
    if network:
        user = [*user, "--share-net"]
    args = [bwrap or bwrap_command(), *user, "--die-with-parent", "--new-session",
            "--hostname", HOSTNAME, "--tmpfs", "/", *root_args,
            "--proc", "/proc", "--dev", "/dev", "--perms", "1777", "--size", str(limits.tmp), "--tmpfs", "/tmp"]
    if network and Path("/etc/resolv.conf").exists():
        args += ["--ro-bind", "/etc/resolv.conf", "/etc/resolv.conf"]
    made: set[str] = set()
    owned: list[str] = []  # directories made for the cell, given to it by cell-user (as root)
    for bind in binds:
        args += parent_dirs(bind.target, made)
        if bind.tmpfs:
            home, dirs = _home_args(bind, limits, made)
            args += home
            owned += dirs
        else:
            args += ["--bind" if bind.writable else "--ro-bind", str(bind.host), bind.target]
    if cell_user is not None and os.geteuid() == 0 and not as_root:
        args += ["--ro-bind", str(cell_user), CELL_USER_PATH]
        command = (CELL_USER_PATH, str(CELL_UID), str(CELL_GID), *(a for d in owned for a in ("--own", d)),
                   *command)
    if env is not None:
        args.append("--clearenv")
        for key, value in env:
            args += ["--setenv", key, value]
    return [*args, "--remount-ro", "/", "--chdir", cwd, "--", *command]
