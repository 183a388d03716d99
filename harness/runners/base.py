"""The one contract every runner keeps: run a PreparedCell, return a CommandResult."""

from __future__ import annotations

from typing import Protocol

from harness.model import CommandResult, PreparedCell


class Runner(Protocol):
    name: str

    def unavailable(self) -> str | None:
        """None when the runner can work here, else one line saying what to install or start."""

    def run(self, prepared: PreparedCell) -> CommandResult: ...

    def close(self) -> None:
        """Release what the runner holds (containers, images in use); called once at the end."""
