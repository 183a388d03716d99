"""``LD_LIBRARY_PATH``: the store library dirs on LD_LIBRARY_PATH, as a nix develop shell sets it.

Alone it does not help: the interpreter is still missing. Composed after ``patchelf`` or
``nix-ld`` it supplies what RUNPATH lacks (libcrypt.so.1 for the seed's Python).
"""

from __future__ import annotations

from harness.strategies.base import Plan, StrategyContext


def apply(plan: Plan, ctx: StrategyContext) -> None:
    dirs = [ctx.glibc.libxcrypt.lib_dir, ctx.glibc.gcc_lib.lib_dir]
    plan.env.append(("LD_LIBRARY_PATH", ":".join(dirs)))
