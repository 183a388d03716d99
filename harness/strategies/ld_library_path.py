"""``LD_LIBRARY_PATH``: store library dirs on LD_LIBRARY_PATH, as a nix develop shell sets it.

Alone it does not help: the interpreter is still missing. Composed after ``patchelf`` or
``nix-ld`` it supplies what the loader lacks: libxcrypt's lib/ (libcrypt.so.1, the seed's fix for
python-build-standalone) and the lib/ of each package of the cell's library set as listed.
"""

from __future__ import annotations

from harness.model import GlibcSet, LibrarySet
from harness.strategies.base import Plan, StrategyContext


def value(glibc: GlibcSet, libraries: LibrarySet) -> str:
    """The variable's value: each directory once, in order."""
    dirs = [glibc.libxcrypt.lib_dir, *(p.lib_dir for p in libraries.own)]
    return ":".join(dict.fromkeys(dirs))


def apply(plan: Plan, ctx: StrategyContext) -> None:
    plan.env.append(("LD_LIBRARY_PATH", value(ctx.glibc, ctx.libraries)))
    plan.add_store_paths(ctx.libraries.closure)
