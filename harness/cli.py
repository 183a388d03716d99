"""``ldmatrix``: run a matrix, show a cell, refresh the lock, compare two runs.

Each subcommand is a module of harness/commands/. Errors a person can act on are printed as one
line (``ldmatrix: ...``) with exit status 2, never a traceback.
"""

from __future__ import annotations

import io
import os
import sys

from harness.commands import parser
from harness.errors import LdmatrixError

__all__ = ["main", "parser"]


def main(argv: list[str] | None = None) -> int:
    try:
        try:
            args = parser().parse_args(argv)
        except SystemExit as done:  # --help, or a usage mistake already printed in one line
            return done.code if isinstance(done.code, int) else 2
        status = args.func(args)
        sys.stdout.flush()  # a closed pipe shows here, where it can be handled, not at exit
        return status
    except LdmatrixError as err:
        print(f"ldmatrix: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        _stdout_to_devnull()
        return 1
    except OSError as err:  # a file or directory the system refused, where no check named it first
        where = f"{err.filename}: " if err.filename else ""
        print(f"ldmatrix: {where}{err.strerror or err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ldmatrix: interrupted; finished cells are in results.jsonl", file=sys.stderr)
        return 130


def _stdout_to_devnull() -> None:
    """The reader went away (``ldmatrix list | head``): stop quietly, as the Python docs advise on SIGPIPE."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, io.UnsupportedOperation):
        pass  # stdout is no file (tests capture it): nothing will flush into a closed pipe


if __name__ == "__main__":
    sys.exit(main())
