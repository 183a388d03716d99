"""``ldmatrix inspect FILE``: what a NixOS user writes to run a foreign program with nix-ld, per
NixOS release, each answer confirmed by a real cell before it is printed; the details (what the
ELF asks for, what each strategy and library set gives it) after, with ``-v``.

The answer comes from harness/loader/predict.py's loader model on the store paths cells run with (the
store glibc, the library sets as Nix builds them: harness/provision/packages.py), searched for the
fewest nixpkgs attributes under which the program loads. A release whose list is added to the base
libraries (24.05+) is asked what to *add*; one whose list replaces them (23.11) for the whole list
(harness/root/release.py). The confirmation is one nix-ld cell per answer in the sandbox, with exactly
that list, judged by whether the program loaded (any exit status of its own), its id printed.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.loader import elf
from harness.loader.predict import Prediction, RootView, simulate, view_of
from harness.model import GlibcSet, LibrarySet, Outcome
from harness.provision.libraries import CONFIG as LIBRARIES
from harness.provision.packages import PackageStore
from harness.root.release import LibraryList, NixosRelease
from harness.strategies import ld_library_path, patchelf

FHS_LOADER = "/lib64/ld-linux-x86-64.so.2"
PROGRAM_PATH = "/home/user/bin/program"
STRATEGIES = ("none", "patchelf", "LD_LIBRARY_PATH", "patchelf+LD_LIBRARY_PATH", "nix-ld", "nix-ld+LD_LIBRARY_PATH")
LOADER_FAILURES = (Outcome.MISSING_INTERPRETER, Outcome.MISSING_LIBRARY, Outcome.GLIBC_TOO_OLD)
DEFAULT_GLIBC = "2.42"  # NixOS 26.05's glibc (harness/data/suites.json builds it)
DEFAULT_RELEASES = ("23.11", "26.05")  # a list that replaces the base libraries, and one added to them


@dataclass(frozen=True)
class Column:
    """One store glibc with one library set: what a cell of that column has."""

    glibc: GlibcSet
    libs_name: str
    libraries: LibrarySet


@dataclass(frozen=True)
class Answer:
    """What to write on ``release`` for the program to load through nix-ld on ``glibc``."""

    release: NixosRelease
    glibc: str
    attributes: tuple[str, ...]  # the list to write: added to the base (24.05+), or the whole list (23.11)
    prediction: Prediction  # with them
    unprovided: tuple[str, ...]  # sonames no attribute here provides

    @property
    def loads(self) -> bool:
        return self.prediction.outcome not in LOADER_FAILURES

    @property
    def snippet(self) -> str:
        if self.release.libraries is LibraryList.ADD:
            if not self.attributes:
                return "programs.nix-ld.enable = true;   # the base libraries have all it needs"
            return f"{nix_list(self.attributes)}   # added to the base libraries"
        if not self.attributes:
            return "programs.nix-ld.enable = true;   # it needs no library (the default list does no harm)"
        return f"{nix_list(self.attributes)}   # the whole list: it replaces the default one"

    @property
    def libs(self) -> str:
        """The ``libs`` value of a cell that has exactly this list on this release."""
        return "+".join(self.attributes) if self.attributes else "default"  # programs.nix-ld.enable alone


def _view(column: Column, program: Path) -> RootView:
    paths = (*column.glibc.store_paths, *column.libraries.closure)
    return view_of([*((p.store_path, p.host_path) for p in paths), (PROGRAM_PATH, program)])


def predict(info: elf.ElfInfo, program: Path, column: Column, strategy: str) -> Prediction:
    """The loader's outcome for ``program`` under ``strategy`` in ``column``'s NixOS-like root."""
    glibc = column.glibc
    view = _view(column, program)
    parts = set(strategy.split("+"))
    env: dict[str, str] = {}
    if "LD_LIBRARY_PATH" in parts:
        env["LD_LIBRARY_PATH"] = ld_library_path.value(glibc, column.libraries)
    if "patchelf" in parts:
        runpath = tuple(patchelf.runpath(column.libraries)) or info.runpath  # no set: RUNPATH as built
        info = dataclasses.replace(info, interpreter=glibc.loader, rpath=() if runpath != info.runpath else info.rpath,
                                   runpath=runpath)
    if "nix-ld" in parts:
        if info.interpreter != FHS_LOADER:
            return Prediction(Outcome.MISSING_INTERPRETER, f"{info.interpreter} is not where nix-ld is ({FHS_LOADER})")
        # nix-ld's directory links the listed packages' lib/ entries, the first of a name winning
        env.update(NIX_LD=glibc.loader, NIX_LD_LIBRARY_PATH=":".join(p.lib_dir for p in column.libraries.own))
        return simulate(info, PROGRAM_PATH, view, env, interpreter_is_nix_ld=True)
    return simulate(info, PROGRAM_PATH, view, env)


def _providers(store: PackageStore) -> dict[str, list[str]]:
    """soname -> the nixpkgs attributes whose own store paths hold it (not their dependencies')."""
    out: dict[str, list[str]] = {}
    for attr in LIBRARIES.attributes:
        for path in store.own(attr):
            lib_dir = path.host_path / "lib"
            for lib in sorted(lib_dir.iterdir()) if lib_dir.is_dir() else ():
                if ".so" in lib.name:
                    out.setdefault(lib.name, []).append(attr)
    return out


def answer(info: elf.ElfInfo, program: Path, glibc: GlibcSet, store: PackageStore, release: NixosRelease) -> Answer:
    """The fewest nixpkgs attributes to write on ``release`` for ``program`` to load through nix-ld."""
    providers = _providers(store)
    base = LIBRARIES.default
    rank = {attr: i for i, attr in enumerate(base)}
    attrs: list[str] = []
    unprovided: list[str] = []
    for _ in range(len(LIBRARIES.attributes) + 1):
        listed = tuple(attrs)
        effective = release.nix_ld_attributes("+".join(listed) if listed else "none", listed, base) \
            if listed or release.libraries is LibraryList.REPLACE else base
        prediction = predict(info, program, Column(glibc, "+".join(effective), store.libraries(effective)), "nix-ld")
        missing = [s for s in prediction.unresolved if s not in unprovided]
        if prediction.outcome is not Outcome.MISSING_LIBRARY or not missing:
            break
        candidates = [a for a in providers.get(missing[0], []) if a not in effective]
        if not candidates:
            unprovided.append(missing[0])
            continue
        attrs.append(min(candidates, key=lambda a: (rank.get(a, len(rank)), len(store.closure(a)), a)))
    return Answer(release, glibc.glibc_version, tuple(attrs), prediction, tuple(unprovided))


def nix_list(attrs: Sequence[str]) -> str:
    return "programs.nix-ld.libraries = with pkgs; [ " + " ".join(attrs) + (" ];" if attrs else "];")


def summary(info: elf.ElfInfo) -> str:
    """One line: what kind of program it is and what it asks for."""
    newest = info.newest_requirements()
    needs = " ".join(n for n in info.needed if n != "ld-linux-x86-64.so.2") or "nothing"
    machine = {"EM_X86_64": "x86-64"}.get(info.machine, info.machine)
    return (f"{info.path.name}: a dynamically linked {machine} program, interpreter {info.interpreter}; "
            f"needs {needs}" + (f"; requires {' · '.join(newest.values())}" if newest else ""))


def describe(info: elf.ElfInfo) -> list[str]:
    newest = info.newest_requirements()
    return [
        f"{info.path}: {info.kind} for {info.machine}",
        f"  interpreter  {info.interpreter or '(none: static)'}",
        f"  needs        {' '.join(info.needed) or '(nothing)'}",
        f"  RUNPATH      {':'.join(info.runpath) or '(none)'}"
        + (f"   RPATH {':'.join(info.rpath)}" if info.rpath else ""),
        f"  requires     {' · '.join(newest.values()) or '(no symbol versions)'}",
    ]


def _store_name(path: str) -> str:
    """``/nix/store/<digest>-zlib1g-1.2.13/lib/libz.so.1`` -> ``zlib1g-1.2.13``."""
    parts = path.split("/")
    return parts[3].split("-", 1)[1] if len(parts) > 3 and parts[1:3] == ["nix", "store"] else path


def _where(prediction: Prediction) -> str:
    found = [f"{r.soname} <- {_store_name(r.found)}" for r in prediction.resolutions if r.found]
    missing = list(prediction.unresolved)
    return ("resolves " + (", ".join(found) or "nothing")) + (f"; missing {', '.join(missing)}" if missing else "")


def details(info: elf.ElfInfo, path: Path, glibcs: Sequence[GlibcSet], stores: Sequence[PackageStore],
            library_sets: dict[str, tuple[str, ...]]) -> list[str]:
    """Per store glibc and library set (as listed), what each strategy gives the program."""
    lines = describe(info)
    for glibc, store in zip(glibcs, stores):
        for name, attrs in library_sets.items():
            column = Column(glibc, name, store.libraries(attrs))
            lines.append(f"glibc {glibc.glibc_version} ({glibc.suite} packages), libs {name}:")
            for strategy in STRATEGIES:
                p = predict(info, path, column, strategy)
                lines.append(f"  {strategy:<26} {p.outcome.value:<20} {p.reason}")
            lines.append("  " + _where(predict(info, path, column, "nix-ld")))
    return lines


def cell_name(path: Path) -> str:
    """A binary name for the file (lower case letters, digits, '.', '-')."""
    name = re.sub(r"[^a-z0-9.-]+", "-", path.name.lower()).strip(".-")
    return name or "program"


@dataclass(frozen=True)
class Confirmation:
    cell_id: str
    outcome: Outcome | None  # None: not run (``reason`` says why)
    evidence: str
    results: Path | None = None

    @property
    def loaded(self) -> bool:
        return self.outcome is not None and self.outcome not in (*LOADER_FAILURES, Outcome.CRASH, Outcome.TIMEOUT)

    def line(self) -> str:
        if self.outcome is None:
            return f"not confirmed: {self.evidence}"
        how = f"{self.outcome.value}: {self.evidence}"
        show = f"   (ldmatrix show {self.cell_id} --results {self.results})" if self.results else ""
        return (f"confirmed by cell {self.cell_id}: {how}" if self.loaded
                else f"NOT confirmed: cell {self.cell_id} gave {how}") + show


def confirmation_matrix(path: Path, answers: Sequence[Answer], run: Sequence[str], nix_ld: str,
                        source: tuple[str, str] | None) -> str:
    """A matrix of one nix-ld cell per answer: the program with exactly that list on that release."""
    import json

    name = cell_name(path)
    releases = sorted({a.release.version for a in answers})
    libs = list(dict.fromkeys(a.libs for a in answers))
    glibcs = sorted({a.glibc for a in answers})
    binary = {"file": str(path.resolve()), "run": list(run), "expect": {"exit": "any"}}
    lines = [
        f"name: inspect-{name}",
        "description: ldmatrix inspect's confirmation of its answers (generated)",
        "runner: sandbox",
        "timeout: 30",
        f"binaries: {{{json.dumps(name)}: {json.dumps(binary)}}}",
        "axes:",
        "  strategy: [nix-ld]",
        f"  glibc: {json.dumps(glibcs)}",
        f"  nix_ld: {json.dumps([nix_ld])}",
        f"  nixos: {json.dumps(releases)}",
        f"  libs: {json.dumps(libs)}",
    ]
    if source is not None:
        lines += ["nix_ld_sources:", f"  {json.dumps(nix_ld)}: {{url: {json.dumps(source[0])}, "
                                     f"hash: {json.dumps(source[1])}}}"]
    lines += ["expect:", "  - outcome: ok"]
    return "\n".join(lines) + "\n"
