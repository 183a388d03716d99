"""``LD_LIBRARY_PATH``: the store library dirs on LD_LIBRARY_PATH, as a nix develop shell sets it.

Alone it does not help: the interpreter is still missing. Composed after ``patchelf`` or
``nix-ld`` it supplies what RUNPATH lacks (libcrypt.so.1 for the seed's Python), and the lib/ of
every store path of the cell's library set.
"""

from __future__ import annotations

from harness.model import GlibcSet, StorePath
from harness.strategies.base import Plan, StrategyContext


def value(glibc: GlibcSet, libraries: tuple[StorePath, ...]) -> str:
    """The variable's value: each directory once, in order."""
    dirs = [glibc.libxcrypt.lib_dir, glibc.gcc_lib.lib_dir, *(p.lib_dir for p in libraries)]
    return ":".join(dict.fromkeys(dirs))


def apply(plan: Plan, ctx: StrategyContext) -> None:
    plan.env.append(("LD_LIBRARY_PATH", value(ctx.glibc, ctx.libraries)))
    plan.add_store_paths(ctx.libraries)
