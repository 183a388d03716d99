"""The programs every sandboxed cell starts through, built once and cached (harness/provision/static_program.py):
harness/data/cell_start.c starts bubblewrap in the cell's cgroup under its limits (harness/root/limits.py),
harness/data/cell_user.c, bound read-only into each cell (harness.root.bwrap.CELL_USER_PATH), drops to the
cell's user."""

from __future__ import annotations

from pathlib import Path

from harness.cache import Cache
from harness.progress import Progress
from harness.provision.static_program import StaticProgram
from harness.provision.static_program import ensure as ensure_program

FLAGS = ("-static", "-O2", "-Wall", "-Wextra", "-Werror")
# recipe 2: --own DIR (a cell's HOME, a tmpfs, given to the cell user)
CELL_USER = StaticProgram("ldmatrix-cell-user", "cell-user", "cell_user.c", "2", FLAGS)
CELL_START = StaticProgram("ldmatrix-cell-start", "cell-start", "cell_start.c", "1", FLAGS)


def ensure(cache: Cache | None = None, progress: Progress | None = None) -> Path:
    """The host path of the built cell-user program (built now if it is not in the cache)."""
    return ensure_program(CELL_USER, cache, progress)


def ensure_start(cache: Cache | None = None, progress: Progress | None = None) -> Path:
    """The host path of the built cell-start program (built now if it is not in the cache)."""
    return ensure_program(CELL_START, cache, progress)
