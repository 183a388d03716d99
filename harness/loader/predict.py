"""What the loader will do with a program in a root, worked out from the ELF files alone.

``simulate`` follows glibc's ld.so: the interpreter must exist (or be nix-ld, which runs the loader
named by ``NIX_LD`` with ``NIX_LD_LIBRARY_PATH`` appended to ``LD_LIBRARY_PATH``); the libraries
are loaded breadth first, each found by its soname in, in order, the needing object's DT_RPATH
(when it has no DT_RUNPATH, with the program's), ``LD_LIBRARY_PATH``, its DT_RUNPATH, then the
loader's own search list (what its build compiled in: a nixpkgs-built glibc's own lib/ and
libgcc's, harness/loader/elf.py ``loader_search_path``; Debian's directories for an FHS loader); a library
already loaded is not looked for again. NixOS 24.05+'s stub-ld as the interpreter is a missing
interpreter, as is none at all. Then every
version an object requires of a library must be one that library defines. The first failure is
the prediction, as ld.so reports it: ``missing-interpreter``, ``missing-library``,
``glibc-too-old`` (a ``GLIBC_`` version) or ``error`` (any other version); otherwise the program
loads (``ok`` as far as the loader goes: what the program does then is the run's business).

A ``RootView`` answers where a path of the cell's root is on the host: the cell's mounts and the
root's links, following symbolic links as the kernel would.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from harness.errors import LdmatrixError
from harness.loader import elf
from harness.model import Outcome

DEFAULT_DIRS = ("/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/usr/lib64", "/lib", "/usr/lib")
LOADER_SONAME = "ld-linux-x86-64.so.2"
_MAX_LINKS = 40
_LOADED = (Outcome.OK, Outcome.ENV_CORRUPTED, Outcome.CRASH, Outcome.ERROR, Outcome.TIMEOUT)


@dataclass(frozen=True)
class Resolution:
    soname: str
    needed_by: str  # the object's name in the root
    found: str | None  # its path in the root, None: not found
    missing_versions: tuple[str, ...] = ()


@dataclass(frozen=True)
class Prediction:
    outcome: Outcome
    reason: str  # what decides it, in one line
    resolutions: tuple[Resolution, ...] = ()

    @property
    def unresolved(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(r.soname for r in self.resolutions if r.found is None))


def agrees(predicted: Outcome, outcome: Outcome) -> bool:
    """A run agrees with a prediction when the loader did what was predicted: a program that loaded
    may then be ok, corrupted, crash or fail its own check; those are the run's findings."""
    if predicted is Outcome.OK:
        return outcome in _LOADED
    return outcome is predicted


@dataclass
class RootView:
    """A cell's root as paths: ``mounts`` (root path -> host path) and ``links`` (root path -> target).

    Paths are worked on as strings (pathlib's parsing was most of a cell's prediction time), and
    what each root path is on the host (a link, a file or nothing) is looked up once per view:
    the host files behind a cell's root do not change while it is predicted."""

    mounts: dict[str, Path] = field(default_factory=dict)
    links: dict[str, str] = field(default_factory=dict)
    _index: dict[str, str] | None = field(default=None, repr=False, compare=False)
    _seen: dict[str, tuple[str, str]] = field(default_factory=dict, repr=False, compare=False)

    def _host(self, path: str) -> tuple[str | None, str]:
        """The host path behind ``path`` by its longest mounted prefix, and that prefix: each of the
        path's ancestors looked up, longest first (a cell has dozens of mounts, a path a few parts)."""
        by_target = self._by_target()
        prefix = path.rstrip("/") or "/"
        while True:
            best = by_target.get(prefix)
            if best is not None:
                rest = path[len(best):].lstrip("/")
                host = str(self.mounts[best])
                return (f"{host.rstrip('/')}/{rest}" if rest else host), best
            if prefix == "/" or not prefix.startswith("/"):  # a relative path (a RUNPATH of "lib") is nowhere
                return None, ""
            prefix = prefix.rsplit("/", 1)[0] or "/"

    def _by_target(self) -> dict[str, str]:
        """Each mount's target without a trailing slash -> the target as given (made once per view)."""
        if self._index is None or len(self._index) != len(self.mounts):
            self._index = {(target.rstrip("/") or "/"): target for target in self.mounts}
            self._seen.clear()
        return self._index

    def _what(self, prefix: str) -> tuple[str, str]:
        """What the root path ``prefix`` is: ("link", its target), ("file", the host path behind it),
        ("missing", "") or ("unmounted", "") (no mount holds it: its ancestors decide)."""
        known = self._seen.get(prefix)
        if known is not None:
            return known
        if prefix in self.links:
            what = ("link", self.links[prefix])
        else:
            host, _ = self._host(prefix)
            if host is None:
                what = ("unmounted", "")
            elif os.path.islink(host):
                what = ("link", os.readlink(host))
            elif os.path.exists(host):
                what = ("file", host)
            else:
                what = ("missing", "")
        self._seen[prefix] = what
        return what

    def resolve(self, path: str) -> Path | None:
        """The host file behind the root path ``path``, following links; None if there is none."""
        found = self.canonical(path)
        return found[1] if found else None

    def canonical(self, path: str) -> tuple[str, Path] | None:
        """``path`` with every link followed, as a path of the root, and the host file behind it."""
        path = os.path.normpath(path)
        for _ in range(_MAX_LINKS):
            absolute = path.startswith("/")
            parts = [part for part in path.split("/") if part]
            # each ancestor, shortest first, with the parts below it: /, /a, /a/b (or a, a/b)
            prefixes = (["/"] if absolute else []) + [("/" if absolute else "") + "/".join(parts[:i])
                                                      for i in range(1, len(parts) + 1)]
            below = ([parts] if absolute else []) + [parts[i:] for i in range(1, len(parts) + 1)]
            redirected = False
            for prefix, rest in zip(prefixes, below):
                kind, value = self._what(prefix)
                if kind == "link":
                    base = value if value.startswith("/") else os.path.join(os.path.dirname(prefix), value)
                    path = os.path.normpath(os.path.join(base, *rest))
                    redirected = True
                    break
                if kind == "missing":
                    return None
            if not redirected:
                kind, host = self._what(path)
                return (path, Path(host)) if kind == "file" else None
        return None


def _expand(directory: str, origin: str) -> str:
    return directory.replace("$ORIGIN", origin).replace("${ORIGIN}", origin)


def _split(value: str | None) -> list[str]:
    return [d for d in (value or "").split(":") if d]


def _is_nix_ld(host: Path) -> bool:
    return host.name == "nix-ld" and any("-nix-ld-" in part for part in host.parts)


def simulate(program: elf.ElfInfo, program_path: str, view: RootView, env: Mapping[str, str],
             interpreter_is_nix_ld: bool | None = None) -> Prediction:
    """What ld.so (or nix-ld, then ld.so) will do with ``program`` at ``program_path`` in ``view``."""
    if program.interpreter is None:
        return Prediction(Outcome.OK, "a static program: no loader")
    interpreter = None
    if not interpreter_is_nix_ld:  # True: nix-ld is the interpreter, whatever the root has there
        canonical = view.canonical(program.interpreter)
        if canonical is None:
            return Prediction(Outcome.MISSING_INTERPRETER, f"{program.interpreter} does not exist in the root")
        if re.fullmatch(r"/nix/store/[^/]+-stub-ld", canonical[0]):
            return Prediction(Outcome.MISSING_INTERPRETER,
                              f"{program.interpreter} is NixOS's stub-ld ({canonical[0]})")
        interpreter = canonical[1]
    ld_library_path = _split(env.get("LD_LIBRARY_PATH"))
    nix_ld = interpreter_is_nix_ld if interpreter_is_nix_ld is not None else \
        interpreter is not None and _is_nix_ld(interpreter)
    if nix_ld:
        loader = env.get("NIX_LD")
        if not loader or view.resolve(loader) is None:
            return Prediction(Outcome.ERROR, f"nix-ld: NIX_LD {loader or '(unset)'} does not exist in the root")
        ld_library_path += _split(env.get("NIX_LD_LIBRARY_PATH"))
    system_dirs = _system_dirs(view, env["NIX_LD"] if nix_ld else program.interpreter)
    loaded: dict[str, tuple[str, elf.ElfInfo]] = {}
    queue: list[tuple[str, elf.ElfInfo]] = [(program_path, program)]
    resolutions: list[Resolution] = []
    first_missing: Resolution | None = None
    while queue:
        path, obj = queue.pop(0)
        origin = str(PurePosixPath(path).parent)
        for soname in obj.needed:
            if soname in loaded or soname == LOADER_SONAME:
                continue
            dirs = [*(obj.rpath + program.rpath if obj.rpath and not obj.runpath else ()), *ld_library_path,
                    *obj.runpath, *system_dirs]
            found = None
            for directory in dirs:
                candidate = f"{_expand(directory, origin).rstrip('/')}/{soname}"
                host = view.resolve(candidate)
                if host is not None and host.is_file():
                    try:
                        info = elf.read(host)
                    except LdmatrixError:
                        continue
                    found = candidate
                    loaded[soname] = (candidate, info)
                    queue.append((candidate, info))
                    break
            resolution = Resolution(soname, path, found)
            resolutions.append(resolution)
            if found is None and first_missing is None:
                first_missing = resolution
    if first_missing is not None:
        return Prediction(Outcome.MISSING_LIBRARY, f"{first_missing.soname} (needed by "
                          f"{PurePosixPath(first_missing.needed_by).name}) is in no directory the loader searches",
                          tuple(resolutions))
    loader_host = view.resolve(env["NIX_LD"]) if nix_ld else interpreter
    assert loader_host is not None
    loader_info = elf.read(loader_host)
    for path, obj in [(program_path, program), *loaded.values()]:
        for soname, versions in obj.requires.items():
            target = loader_info if soname == LOADER_SONAME else loaded.get(soname, (None, None))[1]
            if target is None:
                continue
            missing = tuple(v for v in versions if v not in target.defines)
            if missing:
                outcome = Outcome.GLIBC_TOO_OLD if missing[0].startswith("GLIBC_") else Outcome.ERROR
                return Prediction(outcome, f"{soname} defines no {missing[0]} (required by "
                                  f"{PurePosixPath(path).name})", tuple(resolutions))
    return Prediction(Outcome.OK, "every library and symbol version resolves", tuple(resolutions))


def _system_dirs(view: RootView, loader: str) -> tuple[str, ...]:
    """The loader's own search list: what its build compiled in (nixpkgs' glibc: its lib/, then
    libgcc's lib/; harness/provision/glibc_build.py), or Debian's directories for an FHS loader."""
    found = view.canonical(loader)
    if found is None:
        return DEFAULT_DIRS
    root_path, host = found
    return elf.loader_search_path(host, str(PurePosixPath(root_path).parent)) or DEFAULT_DIRS


def view_of(mounts: Iterable[tuple[str, Path]], links: Iterable[tuple[str, str]] = ()) -> RootView:
    return RootView(dict(mounts), dict(links))
