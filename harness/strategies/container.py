"""``container``: give up on NixOS and run in an FHS root of the build distribution.

The binary, unpatched, runs in the root file system of the suite it was built in.
"""

from __future__ import annotations

from harness.strategies.base import Plan, StrategyContext


def apply(plan: Plan, ctx: StrategyContext) -> None:
    plan.fhs = True
