"""nix-ld labels: the version a cell names, compared by the matrix's ``nix_ld: "<2.0.6"`` rules.

A label is a release version (``1.2.2``) or, for a commit that is no release, what
``git describe --tags`` says of it (``2.0.5-31-g4c22def``: 31 commits after 2.0.5). Anything
else (``latest``, ``main``) would silently match no version rule, so it is refused.
"""

from __future__ import annotations

import re

from harness.errors import LdmatrixError

LABEL = re.compile(r"^(\d+(?:\.\d+)*)(?:-(\d+)-g([0-9a-f]{7,40}))?$")
EXAMPLE = "1.2.2, 2.0.6, or git describe's 2.0.5-31-g4c22def"


def is_label(text: str) -> bool:
    return bool(LABEL.match(text))


def check_label(text: str, where: str) -> str:
    if not is_label(text):
        raise LdmatrixError(f"{where}: nix-ld label {text!r} is not a version ({EXAMPLE})")
    return text


def label_version(text: str) -> tuple[int, ...] | None:
    """``2.0.5`` -> (2, 0, 5); ``2.0.5-31-g4c22def`` -> (2, 0, 5, 0, 31): after 2.0.5, before 2.0.5.1."""
    match = LABEL.match(text)
    if not match:
        return None
    release = tuple(int(p) for p in match.group(1).split("."))
    if match.group(2) is None:
        return release
    return (*release, *(0,) * max(0, 3 - len(release)), 0, int(match.group(2)))
