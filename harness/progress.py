"""Progress for slow work: a line per step on a pipe, a live bar on a terminal."""

from __future__ import annotations

import sys
import time
from typing import Protocol, TextIO


class Progress(Protocol):
    def step(self, message: str) -> None: ...


class StderrProgress:
    """Prints ``[ldmatrix] message`` to stderr; what every slow step calls."""

    def __init__(self, stream: TextIO | None = None, quiet: bool = False):
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.start = time.monotonic()

    def step(self, message: str) -> None:
        if not self.quiet:
            elapsed = time.monotonic() - self.start
            print(f"[ldmatrix {elapsed:6.1f}s] {message}", file=self.stream, flush=True)


class NullProgress:
    def step(self, message: str) -> None:
        pass
