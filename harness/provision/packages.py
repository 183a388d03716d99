"""Library and system packages of one suite as store paths, patched the way Nix builds them.

A Nix-built library finds what it needs through its own RUNPATH (each dependency's store path),
so ``programs.nix-ld.libraries`` or a RUNPATH only has to name the top-level libraries. A Debian
library has no RUNPATH; here each package's libraries and programs get one — their own lib/, the
lib/ of every library package they depend on (the lock's ``depends``), the store glibc and
gcc-lib — and programs get the store glibc's loader. Layout: ``lib/`` (flattened from
``(usr/)lib/<triplet>``), ``bin/`` (from ``(usr/)(s)bin``), ``share/`` (``usr/share``).

- the store glibc's own ``bin`` output (``glibc_bin``) gets ``ldd``'s ``#!`` on the store's bash (as
  nixpkgs' ``glibc.bin``); its ``RTLDLIST`` names the store loader already.
- ``ca-certificates`` also gets ``etc/ssl/certs/ca-certificates.crt``, the bundle of its
  certificates (what update-ca-certificates makes on Debian, nixpkgs' cacert on NixOS).
"""

from __future__ import annotations

import os
import re
import shutil
import threading
from pathlib import Path

from harness.cache import Cache
from harness.cache import entry as cache_entry
from harness.errors import ProvisionError
from harness.loader.patchelf import patch
from harness.model import GlibcSet, LibrarySet, StorePath
from harness.progress import Progress

from . import nixbase32
from .libraries import ALIASES
from .libraries import CONFIG as LIBRARIES
from .lockfile import Lock
from .store import BIN_DIRS, LIB_DIRS, _flatten_dir, make_package_path, store_version

SBIN_DIRS = ("sbin", "usr/sbin")
_PYTHON_PACKAGE = re.compile(r"^(lib)?python3\.\d+-(minimal|stdlib)$|^python3-distutils$")
CA_BUNDLE = "etc/ssl/certs/ca-certificates.crt"


def _is_elf(path: Path) -> bool:
    try:
        with path.open("rb") as fh:
            return fh.read(4) == b"\x7fELF"
    except OSError:
        return False


def _dynamic_elf(path: Path) -> tuple[bool, bool]:
    """(is a dynamically linked ELF, has an interpreter)."""
    from harness.loader import elf

    if path.is_symlink() or not path.is_file() or not _is_elf(path):
        return False, False
    info = elf.read(path)
    return info.dynamic, info.interpreter is not None


def _merge_dir(tree: Path, sources: tuple[str, ...], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for source in sources:
        src = tree / source
        if not src.is_dir() or src.is_symlink():
            continue
        for entry in sorted(src.iterdir()):
            if not (out / entry.name).exists() and not (out / entry.name).is_symlink():
                os.rename(entry, out / entry.name)


def _layout(tree: Path, out: Path, what: str) -> None:
    lib_dirs = tuple(d for d in LIB_DIRS if (tree / d).is_dir() and any((tree / d).iterdir()))
    if lib_dirs:
        _flatten_dir(tree, lib_dirs, out / "lib", what)
    else:
        (out / "lib").mkdir()
    _merge_dir(tree, (*BIN_DIRS, *SBIN_DIRS), out / "bin")
    if (tree / "usr" / "share").is_dir():
        os.rename(tree / "usr" / "share", out / "share")


def _patch_tree(out: Path, glibc: GlibcSet, dep_libs: list[str]) -> None:
    for directory, origin in ((out / "lib", "$ORIGIN"), (out / "bin", "$ORIGIN/../lib")):
        for path in sorted(directory.iterdir()) if directory.is_dir() else ():
            dynamic, has_interpreter = _dynamic_elf(path)
            if not dynamic:
                continue
            mode = path.stat().st_mode
            path.chmod(mode | 0o200)
            patch(path, glibc.loader if has_interpreter else None,
                  [origin, *dep_libs, glibc.glibc.lib_dir, glibc.gcc_lib.lib_dir])
            path.chmod(mode)


def _bundle_certificates(out: Path) -> None:
    certificates = sorted((out / "share" / "ca-certificates").rglob("*.crt"))
    if not certificates:
        raise ProvisionError(f"{out.name}: ca-certificates holds no share/ca-certificates/*.crt")
    bundle = out / CA_BUNDLE
    bundle.parent.mkdir(parents=True)
    bundle.write_text("".join(c.read_text() for c in certificates))


class PackageStore:
    """The library and system packages of ``glibc``'s suite, as store paths made on first use."""

    def __init__(self, glibc: GlibcSet, lock: Lock, cache: Cache, progress: Progress):
        self.glibc, self.lock, self.cache, self.progress = glibc, lock, cache, progress
        self.suite = glibc.suite
        self._made: dict[str, StorePath] = {}
        self._lock = threading.RLock()

    def path(self, package: str) -> StorePath:
        """The store path of ``package`` (and, first, of every library package it depends on)."""
        with self._lock:
            if package not in self._made:
                self._made[package] = self._make(package)
            return self._made[package]

    def _make(self, package: str) -> StorePath:
        deps = [self.path(d) for d in self.lock.depends(self.suite, package)]
        deb = self.lock.deb(self.suite, package)
        glibc = self.glibc

        def layout(tree: Path, out: Path, what: str) -> None:
            _layout(tree, out, what)
            _patch_tree(out, glibc, [d.lib_dir for d in deps])
            if package == "ca-certificates":
                _bundle_certificates(out)

        extra = (glibc.glibc.basename, glibc.gcc_lib.basename, *(d.basename for d in deps))
        return make_package_path(package, store_version(deb.version), (deb,), self.cache, self.progress, layout,
                                 extra=extra)

    def glibc_bin(self) -> StorePath:
        """The store glibc's ``bin`` output (``ldd`` …) as nixpkgs' ``glibc.bin``: its programs, with
        ``ldd``'s ``#!`` on the store's bash (nixpkgs sets ``BASH_SHELL`` for it)."""
        with self._lock:
            if "glibc-bin" not in self._made:
                self._made["glibc-bin"] = self._make_glibc_bin()
            return self._made["glibc-bin"]

    def _make_glibc_bin(self) -> StorePath:
        glibc, programs = self.glibc, self.glibc.programs
        if programs is None:
            raise ProvisionError(f"{glibc.glibc.basename}: no bin output to take ldd from")
        bash = self.path("bash")
        sp = StorePath("glibc", f"{glibc.glibc.version}-bin", nixbase32.digest("glibc-bin", glibc.glibc.basename,
                                                                               bash.basename), self.cache.store)
        entry = cache_entry.Entry(self.cache, "store", sp.basename)

        def fill(out: Path, scratch: Path) -> None:
            shutil.copytree(programs / "bin", out / "bin", symlinks=True)
            ldd = out / "bin" / "ldd"
            text = ldd.read_text()
            if not text.startswith("#!") or "RTLDLIST=" not in text:
                raise ProvisionError(f"{programs}/bin/ldd is not glibc's ldd script")
            ldd.write_text(re.sub(r"^#!.*\n", f"#!{bash.store_path}/bin/bash\n", text, count=1))
            out.chmod(0o755)

        made_from = {"kind": "glibc-bin", "glibc": glibc.glibc.basename, "bash": bash.basename}
        final = cache_entry.ensure(entry, made_from, fill, self.progress, f"store path {sp.basename}")
        return StorePath(sp.name, sp.version, sp.digest, final)

    def python(self) -> StorePath:
        """The suite's python3 as one prefix (interpreter, minimal and full standard library), its
        interpreter and extension modules pointed at the store like every other program here."""
        with self._lock:
            if "python3" not in self._made:
                self._made["python3"] = self._make_python()
            return self._made["python3"]

    def python_closure(self) -> tuple[StorePath, ...]:
        """The python3 prefix first, then the library store paths its interpreter and modules need."""
        closure = self.lock.closure(self.suite, "python3")
        return (self.python(), *(self.path(p) for p in closure if not _PYTHON_PACKAGE.match(p)))

    def _make_python(self) -> StorePath:
        closure = self.lock.closure(self.suite, "python3")
        own = tuple(p for p in closure if _PYTHON_PACKAGE.match(p))
        deps = [self.path(p) for p in closure if p not in own]
        debs = tuple(self.lock.deb(self.suite, p) for p in own)
        minimal = next(d for d in debs if d.package.endswith("-minimal"))
        short = minimal.package.removeprefix("python").removesuffix("-minimal")  # "3.11"
        glibc = self.glibc

        def layout(tree: Path, out: Path, what: str) -> None:
            stdlib = tree / "usr" / "lib" / f"python{short}"
            interpreter = tree / "usr" / "bin" / f"python{short}"
            if not interpreter.is_file() or not (stdlib / "os.py").is_file() or not (stdlib / "json").is_dir():
                raise ProvisionError(f"{what}: no bin/python{short} with lib/python{short}/os.py and json")
            (out / "bin").mkdir()
            (out / "lib").mkdir()
            os.rename(interpreter, out / "bin" / f"python{short}")
            (out / "bin" / "python3").symlink_to(f"python{short}")
            os.rename(stdlib, out / "lib" / f"python{short}")  # found by this landmark beside bin/
            dep_libs = [d.lib_dir for d in deps]
            _patch_tree(out, glibc, dep_libs)
            dynload = out / "lib" / f"python{short}" / "lib-dynload"
            for module in sorted(dynload.glob("*.so")):
                patch(module, None, [*dep_libs, glibc.glibc.lib_dir, glibc.gcc_lib.lib_dir])

        extra = (glibc.glibc.basename, glibc.gcc_lib.basename, *(d.basename for d in deps))
        return make_package_path("python3", store_version(minimal.version), debs, self.cache, self.progress,
                                 layout, extra=extra)

    def closure(self, name: str) -> tuple[StorePath, ...]:
        """The store paths of a library attribute or a system role: its packages, and aliases to the
        glibc set's own store paths (``@libxcrypt``)."""
        specs = LIBRARIES.closures.get(name)
        if specs is None:
            raise ProvisionError(f"unknown library {name!r} (allowed: {', '.join(sorted(LIBRARIES.attributes))})")
        aliases = tuple(getattr(self.glibc, ALIASES[s]) for s in specs if s in ALIASES)
        packages = self.lock.closure(self.suite, name) if any(s not in ALIASES for s in specs) else ()
        return (*aliases, *(self.path(p) for p in packages))

    def own(self, name: str) -> tuple[StorePath, ...]:
        """The store paths an attribute itself is (``lib.getLib`` of it in nixpkgs): its packages, not
        the library packages they depend on, which their RUNPATHs name."""
        specs = LIBRARIES.closures.get(name)
        if specs is None:
            raise ProvisionError(f"unknown library {name!r} (allowed: {', '.join(sorted(LIBRARIES.attributes))})")
        aliases = tuple(getattr(self.glibc, ALIASES[s]) for s in specs if s in ALIASES)
        packages = self.lock.closure(self.suite, name) if len(aliases) < len(specs) else ()
        own = [p for p in packages if any(_names(spec, p) for spec in specs if spec not in ALIASES)]
        return (*aliases, *(self.path(p) for p in own))

    def libraries(self, names: tuple[str, ...]) -> LibrarySet:
        """A library set as Nix builds it: the attributes' own store paths, each once, in the order
        they are named, and their closure (what their RUNPATHs need in the store)."""
        own: dict[str, StorePath] = {}
        closure: dict[str, StorePath] = {}
        for name in names:
            for path in self.own(name):
                own.setdefault(path.basename, path)
        for path in own.values():
            closure.setdefault(path.basename, path)
        for name in names:
            for path in self.closure(name):
                closure.setdefault(path.basename, path)
        return LibrarySet(tuple(names), tuple(own.values()), tuple(closure.values()))


def _names(spec: str, package: str) -> bool:
    """``package`` is one of the alternatives ``spec`` names (``libcurl4|libcurl4t64``, ``?python3-distutils``;
    Debian's t64 rename counts)."""
    for alternative in spec.removeprefix("?").split("|"):
        name = alternative.strip()
        if package in (name, f"{name}t64"):
            return True
    return False
