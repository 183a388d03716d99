"""The five fix strategies, one module each, looked up by the Strategy enum."""

from __future__ import annotations

from collections.abc import Callable

from harness.model import NotRun, Strategy
from harness.strategies import container, ld_library_path, nix_ld, none, patchelf
from harness.strategies.base import Plan, StrategyContext

# apply(plan, ctx): adds to the plan; a NotRun when the cell cannot be laid out here
APPLY: dict[Strategy, Callable[[Plan, StrategyContext], NotRun | None]] = {
    Strategy.NONE: none.apply,
    Strategy.PATCHELF: patchelf.apply,
    Strategy.NIX_LD: nix_ld.apply,
    Strategy.LD_LIBRARY_PATH: ld_library_path.apply,
    Strategy.CONTAINER: container.apply,
}

__all__ = ["APPLY", "Plan", "StrategyContext"]
