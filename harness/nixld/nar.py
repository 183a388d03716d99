"""The NAR hash of a directory tree: what ``nix hash path`` and nixpkgs' ``fetchFromGitHub { hash }`` give.

A source pinned this way verifies alike whether it came from upstream's release archive, a
local copy of it, or ``git archive`` of the tag: only names, contents, symlink targets and the
executable bit count, never timestamps, owners or the archive's own bytes.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import stat
from pathlib import Path
from typing import Protocol

_SRI = re.compile(r"^sha256-([A-Za-z0-9+/]{43}=)$")


class _Sink(Protocol):
    def update(self, data: bytes, /) -> None: ...


def _str(sink: _Sink, data: bytes) -> None:
    sink.update(len(data).to_bytes(8, "little"))
    sink.update(data)
    sink.update(b"\0" * (-len(data) % 8))


def _file(sink: _Sink, path: Path, executable: bool) -> None:
    _str(sink, b"type")
    _str(sink, b"regular")
    if executable:
        _str(sink, b"executable")
        _str(sink, b"")
    size = path.stat().st_size
    _str(sink, b"contents")
    sink.update(size.to_bytes(8, "little"))
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            sink.update(chunk)
    sink.update(b"\0" * (-size % 8))


def _node(sink: _Sink, path: Path) -> None:
    st = path.lstat()
    _str(sink, b"(")
    if stat.S_ISLNK(st.st_mode):
        _str(sink, b"type")
        _str(sink, b"symlink")
        _str(sink, b"target")
        _str(sink, os.fsencode(os.readlink(path)))
    elif stat.S_ISDIR(st.st_mode):
        _str(sink, b"type")
        _str(sink, b"directory")
        for name in sorted(os.listdir(path), key=os.fsencode):
            _str(sink, b"entry")
            _str(sink, b"(")
            _str(sink, b"name")
            _str(sink, os.fsencode(name))
            _str(sink, b"node")
            _node(sink, path / name)
            _str(sink, b")")
    elif stat.S_ISREG(st.st_mode):
        _file(sink, path, bool(st.st_mode & stat.S_IXUSR))
    else:
        raise ValueError(f"{path}: not a file, directory or symlink; a NAR cannot hold it")
    _str(sink, b")")


def nar_sha256(path: Path) -> bytes:
    """sha256 of the NAR serialisation of ``path``."""
    h = hashlib.sha256()
    _str(h, b"nix-archive-1")
    _node(h, Path(path))
    return h.digest()


def sri(digest: bytes) -> str:
    return "sha256-" + base64.b64encode(digest).decode()


def tree_hash(path: Path) -> str:
    """``sha256-<base64>``: the NAR hash of ``path`` in SRI form."""
    return sri(nar_sha256(path))


def is_sri(text: str) -> bool:
    return bool(_SRI.match(text))
