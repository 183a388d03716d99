"""``patchelf``: point the interpreter and RUNPATH into the store, as autoPatchelfHook would.

RUNPATH gets the store glibc and gcc-lib (what stdenv's compiler gives every Nix-built binary)
and the lib/ of every store path of the cell's library set (autoPatchelfHook's buildInputs), not
libxcrypt: a library outside those stays missing, as in the seed.
"""

from __future__ import annotations

from harness.model import GlibcSet, StorePath
from harness.strategies.base import Plan, StrategyContext


def runpath(glibc: GlibcSet, libraries: tuple[StorePath, ...]) -> list[str]:
    return [glibc.glibc.lib_dir, glibc.gcc_lib.lib_dir, *(p.lib_dir for p in libraries)]


def apply(plan: Plan, ctx: StrategyContext) -> None:
    plan.interpreter = ctx.glibc.loader
    plan.runpath += runpath(ctx.glibc, ctx.libraries)
    plan.add_store_paths(ctx.libraries)
