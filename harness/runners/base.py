"""The one contract every runner keeps: run a PreparedCell, return a CommandResult or a NotRun.

A runner that did not run a cell says why (``NotRun``), never with a made-up exit status; an
exception from ``run`` is that one cell's ``error`` (harness.session.run_one), not the run's end.
"""

from __future__ import annotations

from typing import Protocol

from harness.model import CommandResult, NotRun, PreparedCell


class Runner(Protocol):
    name: str

    def unavailable(self) -> str | None:
        """None when the runner can work here, else one line saying what to install or start."""

    def run(self, prepared: PreparedCell) -> CommandResult | NotRun: ...

    def close(self) -> None:
        """Release what the runner holds (containers, images in use); called once at the end."""
