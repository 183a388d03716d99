"""``LD_LIBRARY_PATH``: the store library dirs on LD_LIBRARY_PATH, as a nix develop shell sets it.

Alone it does not help: the interpreter is still missing. Composed after ``patchelf`` or
``nix-ld`` it supplies what RUNPATH lacks (libcrypt.so.1 for the seed's Python), and the lib/ of
every store path of the cell's library set.
"""

from __future__ import annotations

from harness.strategies.base import Plan, StrategyContext


def apply(plan: Plan, ctx: StrategyContext) -> None:
    dirs = [ctx.glibc.libxcrypt.lib_dir, ctx.glibc.gcc_lib.lib_dir, *(p.lib_dir for p in ctx.libraries)]
    plan.env.append(("LD_LIBRARY_PATH", ":".join(dict.fromkeys(dirs))))
    plan.add_store_paths(ctx.libraries)
