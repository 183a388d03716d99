"""``command.sh`` in a cell's folder: the command as it ran, shell-quoted, to be run again as written.

The environment is part of the command (``env -i K=V ... bwrap ...``, in the cell's order, which
nix-ld 1.x cares about). A cell's writable directories (its HOME) are fresh per run and removed
afterwards, so the script makes a fresh one of each, with the same files in it, owned as in the
run (by the cell user, uid 1000, when the script runs as root: the cell runs as uid 1000 then),
and removes it at the end; every other path it names (store paths, shared binaries, build roots) is in the cache.
"""

from __future__ import annotations

import base64
import os
import shlex
from collections.abc import Iterable, Sequence
from pathlib import Path

from harness.model import PreparedCell
from harness.root.limits import CELL_GID, CELL_UID

NAME = "command.sh"


def _quote(arg: str, fresh: dict[str, str]) -> str:
    """``arg`` shell-quoted, each fresh directory's host path in it replaced by its variable."""
    for host, var in fresh.items():
        if host in arg:
            return f'"${var}"'.join(_quote(part, fresh) if part else "" for part in arg.split(host))
    return shlex.quote(arg)


def _contents(directory: Path, made: frozenset[str] = frozenset()) -> tuple[list[str], list[str]]:
    """The directories and files under ``directory`` (relative), to make them again in a fresh one;
    ``made``: relative paths the command makes itself (bubblewrap's mount points), left out with the
    directories that hold nothing else."""
    dirs, files = [], []
    for parent, subdirs, names in os.walk(directory):
        rel = Path(parent).relative_to(directory)
        files += [str(rel / n) for n in sorted(names) if str(rel / n) not in made]
        dirs += [str(rel / d) for d in sorted(subdirs)]
    needed = {str(Path(f).parent) for f in files}
    dirs = [d for d in dirs if any(n == d or n.startswith(d + "/") for n in needed) or not _only_made(d, made)]
    return dirs, files


def _only_made(directory: str, made: frozenset[str]) -> bool:
    return any(m.startswith(directory + "/") for m in made)


def script(argv: Sequence[str], *, env: Iterable[tuple[str, str]] | None = None, fresh: Sequence[Path] = (),
           title: str = "", made: Sequence[frozenset[str]] = ()) -> str:
    variables = {str(path): ("home" if i == 0 else f"fresh{i}") for i, path in enumerate(fresh)}
    lines = ["#!/bin/sh", f"# {title}" if title else "# ldmatrix", "# Run it again as it ran: sh command.sh"]
    if fresh:
        lines.append("# Writable directories are fresh, as in the run, and removed at the end.")
    lines.append("set -eu")
    for var in variables.values():
        lines += [f"{var}=$(mktemp -d)", f'chmod 755 "${var}"']
    if variables:
        lines.append("trap 'rm -rf " + " ".join(f'"${var}"' for var in variables.values()) + "' EXIT")
    for i, (path, var) in enumerate(variables.items()):
        dirs, files = _contents(Path(path), made[i] if i < len(made) else frozenset())
        lines += [f'mkdir -p "${var}"/{shlex.quote(d)}' for d in dirs]
        for f in files:  # the cell's own files (a launcher's script and record) with their contents
            data = (Path(path) / f).read_bytes()
            if data:
                encoded = base64.b64encode(data).decode()
                lines.append(f'printf %s {encoded} | base64 -d > "${var}"/{shlex.quote(f)}')
            else:
                lines.append(f'touch "${var}"/{shlex.quote(f)}')
    if variables:  # as the run gave them (harness.root.limits.give_to_cell_user): run as root, the cell is uid 1000
        owner = f"{CELL_UID}:{CELL_GID}"
        lines.append('if [ "$(id -u)" = 0 ]; then chown -R ' + owner + " "
                     + " ".join(f'"${var}"' for var in variables.values()) + "; fi")
    rows = [["env", "-i"], *([shlex.quote(f"{k}={v}")] for k, v in env)] if env is not None else []
    rows.append([])
    options = True  # a new row for each option of the command, up to "--"
    for arg in argv:
        if rows[-1] and options and arg.startswith("-"):
            rows.append([])
        options = options and arg != "--"
        rows[-1].append(_quote(arg, variables))
    lines.append(" \\\n  ".join(" ".join(row) for row in rows))
    return "\n".join(lines) + "\n"


def write(prepared: PreparedCell, argv: Sequence[str], *, env: Iterable[tuple[str, str]] | None = None,
          runner: str, makes_mount_points: bool = False) -> Path:
    """``command.sh`` in the cell's folder; ``env``: the environment the command itself was started with.
    ``makes_mount_points``: the command makes the mount points inside its writable directories itself
    (bubblewrap does), so the script need not make them first (each a process less)."""
    writable = [m for m in prepared.mounts if m.writable]
    made = [frozenset(m.target[len(w.target) + 1:] for m in prepared.mounts
                      if makes_mount_points and m.target.startswith(w.target + "/")) for w in writable]
    path = prepared.workdir / NAME
    path.write_text(script(argv, env=env, fresh=[m.host for m in writable], made=made,
                           title=f"ldmatrix cell {prepared.cell.id}, runner {runner}"))
    path.chmod(0o755)
    return path
