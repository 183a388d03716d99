"""Errors a person can act on: one line each, no traceback."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def did_you_mean(value: object, allowed: Iterable[str]) -> str:
    """``"; did you mean 'patchelf'?"`` when ``value`` is close to one of ``allowed``, else ``""``."""
    close = difflib.get_close_matches(str(value), list(allowed), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


class LdmatrixError(Exception):
    """Base class: ``str(err)`` is the whole message shown to the user."""


class MatrixError(LdmatrixError):
    def __init__(self, file: str, line: int | None, key: str, message: str, allowed: list[str] | None = None):
        self.file, self.line, self.key, self.allowed = file, line, key, allowed
        where = f"{file}:{line}" if line else file
        text = f"{where}: {key}: {message}"
        if allowed:
            text += f" (allowed: {', '.join(allowed)})"
        super().__init__(text)


class ProvisionError(LdmatrixError):
    """A download, a verification or a build root failed; the message says what to do."""


class RunnerUnavailable(LdmatrixError):
    """A runner cannot work on this machine; the message says what to install or start."""
