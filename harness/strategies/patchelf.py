"""``patchelf``: point the interpreter into the store, as ``patchelf --set-interpreter`` does, and
RUNPATH at the cell's library set (autoPatchelfHook's buildInputs), as Nix builds them.

With no library set, only the interpreter changes (RUNPATH stays as built): nixpkgs' loader finds
glibc's own libraries and libgcc_s.so.1 by itself (harness/provision/glibc_build.py). A library
outside those (libcrypt.so.1, the seed's) stays missing unless the set names it.
"""

from __future__ import annotations

from harness.model import LibrarySet
from harness.strategies.base import Plan, StrategyContext


def runpath(libraries: LibrarySet) -> list[str]:
    """Each listed package's lib/ (its dependencies are found through its own RUNPATH)."""
    return [p.lib_dir for p in libraries.own]


def apply(plan: Plan, ctx: StrategyContext) -> None:
    plan.interpreter = ctx.glibc.loader
    plan.runpath += runpath(ctx.libraries)
    plan.add_store_paths(ctx.libraries.closure)
