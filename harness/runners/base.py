"""The one contract every runner keeps: run PreparedCells, each answered by a CommandResult or a NotRun.

A runner that did not run a cell says why (``NotRun``: a skip, or an ``error`` with its reason),
never with a made-up exit status; an exception from ``run`` is that one cell's ``error``
(harness.session), not the run's end. A runner that gains from having every cell at once
(``batches``: the nixos-vm runner boots one VM per pin for all of its cells) overrides
``run_batch``; the others run one cell at a time, several at once (``-j``). The reproducers a run
needs are compiled by the runner's ``build_reproducer`` (bubblewrap in the suite's build root,
unless the runner compiles elsewhere: docker in the suite's image).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar

from harness.model import CommandResult, NotRun, PreparedCell

if TYPE_CHECKING:
    from harness.cache import Cache
    from harness.model import BuildRoot, BuiltBinary
    from harness.progress import Progress


class Runner:
    name: ClassVar[str]
    batches: ClassVar[bool] = False  # True: hand it every cell at once (run_batch), not one by one

    def unavailable(self) -> str | None:
        """None when the runner can work here, else one line saying what to install or start."""
        return None

    def run(self, prepared: PreparedCell) -> CommandResult | NotRun:
        raise NotImplementedError

    def run_batch(self, cells: Sequence[PreparedCell]) -> list[CommandResult | NotRun]:
        """Every cell's answer, in the order of ``cells``: by default each run in turn."""
        return [self.run(prepared) for prepared in cells]

    def build_reproducer(self, name: str, root: BuildRoot, cache: Cache, progress: Progress) -> BuiltBinary:
        """Compile (or find in the cache) reproducer ``name`` for the suite of ``root``."""
        from harness import reproducers

        return reproducers.build(name, root, cache, progress)

    def close(self) -> None:
        """Release what the runner holds (containers, images in use); called once at the end."""
