"""What a ``--nix-ld`` item (or an item of ``$LDMATRIX_NIX_LD``) asks for.

    VERSION=PATH                    a real nix-ld build: the package or its libexec/nix-ld
    /nix/store/<hash>-nix-ld-VER    the same, the version read from the store path's name
    src:PATH                        source: a release archive or an unpacked tree
    src:REPO#REV                    source: a git repository or bundle at a tag or commit
    VERSION=src:...                 source, with the version it must turn out to be
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from harness.errors import LdmatrixError

from .labels import EXAMPLE, check_label

SOURCE_PREFIX = "src:"
_STORE_NAME = re.compile(r"^[0-9a-z]{32}-nix-ld(?:-rs)?-([0-9][A-Za-z0-9.\-_]*)$")
USAGE = ("expected VERSION=PATH (a nix-ld build), a store path /nix/store/<hash>-nix-ld-VERSION, "
         "src:ARCHIVE-OR-TREE, or src:REPO#REV (a git repository or bundle)")


@dataclass(frozen=True)
class Request:
    text: str  # as given, for messages
    label: str | None  # the version the user named (read from the source when None)
    path: Path
    source: bool  # build from source (else: a built nix-ld)
    rev: str | None = None  # with a git repository or bundle

    @property
    def where(self) -> str:
        return f"--nix-ld {self.text}"


def parse(text: str) -> Request:
    text = text.strip()
    label: str | None = None
    rest = text
    if not text.startswith(SOURCE_PREFIX) and "=" in text:
        label, _, rest = text.partition("=")
        if not label:
            raise LdmatrixError(f"--nix-ld {text!r}: {USAGE}")
        check_label(label, f"--nix-ld {text}")
    if rest.startswith(SOURCE_PREFIX):
        location = rest[len(SOURCE_PREFIX):]
        path_text, sep, rev = location.rpartition("#") if "#" in location else (location, "", "")
        if not path_text or (sep and not rev):
            raise LdmatrixError(f"--nix-ld {text!r}: {USAGE}")
        return Request(text, label, Path(path_text).expanduser(), True, rev or None)
    if label is None:
        named = _STORE_NAME.match(Path(rest).name)
        if not named:
            raise LdmatrixError(f"--nix-ld {text!r}: {USAGE}")
        label = check_label(named.group(1), f"--nix-ld {text} (version {EXAMPLE})")
    if not rest:
        raise LdmatrixError(f"--nix-ld {text!r}: {USAGE}")
    return Request(text, label, Path(rest).expanduser(), False)
