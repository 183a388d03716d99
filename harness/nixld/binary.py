"""A real nix-ld executable (supplied by path, or built from source) installed as a store path.

The executable is checked to be what nix-ld is (a static ELF with no interpreter) and copied
into the cache as ``<digest>-nix-ld-<label>/libexec/nix-ld``, the layout of the nixpkgs package.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from harness.cache import Cache
from harness.cache import entry as cache_entry
from harness.errors import LdmatrixError
from harness.loader.elf import read_interpreter
from harness.model import StorePath
from harness.progress import NullProgress
from harness.provision import nixbase32


def executable(path: Path) -> Path:
    """``path`` itself, or ``path/libexec/nix-ld`` for a package; checked to be a static ELF."""
    if path.is_dir():
        path = path / "libexec" / "nix-ld"
    if not path.is_file():
        raise LdmatrixError(f"nix-ld not found at {path}: give the nix-ld package or its libexec/nix-ld")
    with path.open("rb") as fh:
        if fh.read(4) != b"\x7fELF":
            raise LdmatrixError(f"{path} is not an ELF executable; nix-ld is a static ELF program")
    interpreter = read_interpreter(path)
    if interpreter is not None:
        raise LdmatrixError(f"{path} asks for the interpreter {interpreter}; nix-ld is statically linked, "
                            "is this really nix-ld?")
    return path


def install(label: str, path: Path, cache: Cache) -> StorePath:
    """The nix-ld at ``path`` as the store path ``<digest>-nix-ld-<label>``: a checked cache entry."""
    exe = executable(path)
    sha = cache_entry.file_sha256(exe)
    digest = nixbase32.digest("nix-ld", label, sha)
    entry = cache_entry.Entry(cache, "store", f"{digest}-nix-ld-{label}")

    def fill(out: Path, scratch: Path) -> None:
        (out / "libexec").mkdir()
        shutil.copyfile(exe, out / "libexec" / "nix-ld")
        os.chmod(out / "libexec" / "nix-ld", 0o555)

    final = cache_entry.ensure(entry, {"kind": "nix-ld", "label": label, "sha256": sha}, fill, NullProgress(),
                               f"store path {entry.name}")
    return StorePath("nix-ld", label, digest, final)
