"""ldmatrix: does a binary built outside Nix run on NixOS — with which fix, on which glibc?

The programs ldmatrix hands a cell or a build (scripts, C sources, the VM test's driver script)
and the grid's page are files under harness/data/, read at run time (``data_text``).
"""

from __future__ import annotations

from pathlib import Path

__version__ = "0.1.0"

DATA = Path(__file__).resolve().parent / "data"


def data_text(name: str) -> str:
    """harness/data/NAME as text."""
    return (DATA / name).read_text(encoding="utf-8")
