"""``none``: run the foreign binary as it is. On NixOS its interpreter does not exist."""

from __future__ import annotations

from harness.strategies.base import Plan, StrategyContext


def apply(plan: Plan, ctx: StrategyContext) -> None:
    return None
