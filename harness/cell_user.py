"""The program every sandboxed cell starts through: harness/data/cell_user.c, built once and cached
(harness/static_program.py), and bound read-only into each cell (harness.bwrap.CELL_USER_PATH)."""

from __future__ import annotations

from pathlib import Path

from harness.cache import Cache
from harness.progress import Progress
from harness.static_program import StaticProgram, ensure as ensure_program

# recipe 2: --own DIR (a cell's HOME, a tmpfs, given to the cell user)
CELL_USER = StaticProgram("ldmatrix-cell-user", "cell-user", "cell_user.c", "2",
                          ("-static", "-O2", "-Wall", "-Wextra", "-Werror"))


def ensure(cache: Cache | None = None, progress: Progress | None = None) -> Path:
    """The host path of the built cell-user program (built now if it is not in the cache)."""
    return ensure_program(CELL_USER, cache, progress)
