"""Where the nix-ld under test comes from: a real build, supplied by path. Never imitated.

``--nix-ld 1.2.2=/nix/store/...-nix-ld-1.2.2`` (the package, or its ``libexec/nix-ld``) is copied
into the cache as a store path ``<digest>-nix-ld-1.2.2/libexec/nix-ld``. The environment variable
``LDMATRIX_NIX_LD`` takes the same ``LABEL=PATH`` items, separated by spaces.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from pathlib import Path

from harness.cache import Cache
from harness.elf import read_interpreter
from harness.errors import LdmatrixError
from harness.model import StorePath
from harness.provision import nixbase32

_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.\-_]*$")


_STORE_NAME = re.compile(r"^[0-9a-z]{32}-nix-ld(?:-rs)?-([0-9][A-Za-z0-9.\-_]*)$")


def parse_spec(text: str) -> tuple[str, Path]:
    """``VERSION=PATH``, or a store path ``/nix/store/<hash>-nix-ld-VERSION`` that names its version."""
    label, sep, path = text.partition("=")
    if not sep:
        named = _STORE_NAME.match(Path(text).name)
        if named:
            return named.group(1), Path(text)
    if not sep or not _LABEL.match(label) or not path:
        raise LdmatrixError(f"--nix-ld {text!r}: expected VERSION=PATH (e.g. --nix-ld 1.2.2=/path/to/nix-ld) "
                            "or a store path /nix/store/<hash>-nix-ld-VERSION")
    return label, Path(path).expanduser()


def specs_from_env() -> list[str]:
    return os.environ.get("LDMATRIX_NIX_LD", "").split()


def labels(specs: list[str]) -> list[str]:
    """The versions named by ``VERSION=PATH`` items, checked for form."""
    return [parse_spec(text)[0] for text in specs]


def _executable(path: Path) -> Path:
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
    exe = _executable(path)
    sha = hashlib.sha256(exe.read_bytes()).hexdigest()
    digest = nixbase32.digest("nix-ld", label, sha)
    store = StorePath("nix-ld", label, digest, cache.store / f"{digest}-nix-ld-{label}")
    target = store.host_path / "libexec" / "nix-ld"
    if not target.exists():
        tmp = cache.store / f".tmp-{digest}-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        (tmp / "libexec").mkdir(parents=True)
        shutil.copy2(exe, tmp / "libexec" / "nix-ld")
        os.chmod(tmp / "libexec" / "nix-ld", 0o555)
        try:
            os.replace(tmp, store.host_path)
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)  # a concurrent run won the race
    return store


def providers(specs: list[str], cache: Cache) -> dict[str, StorePath]:
    out: dict[str, StorePath] = {}
    for text in specs:
        label, path = parse_spec(text)
        if label in out:
            raise LdmatrixError(f"--nix-ld {label} given twice")
        out[label] = install(label, path, cache)
    return out
