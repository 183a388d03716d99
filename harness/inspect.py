"""``ldmatrix inspect FILE``: what an ELF asks for, what each store glibc and library set gives it,
the outcome that predicts per strategy, and the smallest ``programs.nix-ld.libraries`` that makes
it load.

The predictions are harness/predict.py's, on the same store paths the cells run with: the glibc
set of each glibc, the system's paths, and the library sets (harness/provision/packages.py).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from harness import elf
from harness.cache import Cache
from harness.errors import LdmatrixError
from harness.model import GlibcSet, Outcome, StorePath
from harness.predict import Prediction, RootView, simulate, view_of
from harness.progress import Progress
from harness.provision.libraries import CONFIG as LIBRARIES
from harness.provision.packages import PackageStore
from harness.strategies import ld_library_path, nix_ld, patchelf

FHS_LOADER = "/lib64/ld-linux-x86-64.so.2"
PROGRAM_PATH = "/home/user/bin/program"
STRATEGIES = ("none", "patchelf", "LD_LIBRARY_PATH", "patchelf+LD_LIBRARY_PATH", "nix-ld", "nix-ld+LD_LIBRARY_PATH")


@dataclass(frozen=True)
class Column:
    """One store glibc with one library set: what a cell of that column has."""

    glibc: GlibcSet
    libs_name: str
    libraries: tuple[StorePath, ...]


def _view(column: Column, program: Path, extra: Sequence[StorePath] = ()) -> RootView:
    paths = (*column.glibc.store_paths, *column.libraries, *extra)
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
        info = dataclasses.replace(info, interpreter=glibc.loader, rpath=(),
                                   runpath=tuple(patchelf.runpath(glibc, column.libraries)))
    if "nix-ld" in parts:
        if info.interpreter != FHS_LOADER:
            return Prediction(Outcome.MISSING_INTERPRETER, f"{info.interpreter} is not where nix-ld is ({FHS_LOADER})")
        # nix-ld's lib dir links the glibc's and the library set's libraries, the first of a name winning
        linked = nix_ld.linked_store_paths(glibc, column.libraries)
        env.update(NIX_LD=glibc.loader, NIX_LD_LIBRARY_PATH=":".join(p.lib_dir for p in linked))
        return simulate(info, PROGRAM_PATH, view, env, interpreter_is_nix_ld=True)
    return simulate(info, PROGRAM_PATH, view, env)


def _providers(store: PackageStore) -> dict[str, list[str]]:
    """soname -> the nixpkgs attributes whose own packages hold it (not their dependencies')."""
    out: dict[str, list[str]] = {}
    for attr, specs in LIBRARIES.attributes.items():
        closure = store.closure(attr)
        own = closure[:len(specs)]
        for path in own:
            for lib in sorted((path.host_path / "lib").iterdir()):
                if ".so" in lib.name:
                    out.setdefault(lib.name, []).append(attr)
    return out


def smallest_libraries(info: elf.ElfInfo, program: Path, glibc: GlibcSet, store: PackageStore) \
        -> tuple[tuple[str, ...], Prediction, tuple[str, ...]]:
    """The fewest nixpkgs attributes for ``programs.nix-ld.libraries`` under which ``program`` loads
    through nix-ld: (attributes, the prediction with them, sonames no attribute provides)."""
    providers = _providers(store)
    default_rank = {attr: i for i, attr in enumerate(LIBRARIES.default)}
    attrs: list[str] = []
    unprovided: list[str] = []
    for _ in range(len(LIBRARIES.attributes) + 1):
        prediction = predict(info, program, Column(glibc, "+".join(attrs), store.libraries(tuple(attrs))), "nix-ld")
        missing = [s for s in prediction.unresolved if s not in unprovided]
        if prediction.outcome is not Outcome.MISSING_LIBRARY or not missing:
            break
        candidates = providers.get(missing[0], [])
        if not candidates:
            unprovided.append(missing[0])
            continue
        attrs.append(min(candidates, key=lambda a: (default_rank.get(a, len(default_rank)),
                                                    len(store.closure(a)), a)))
    return tuple(attrs), prediction, tuple(unprovided)


def nix_list(attrs: Sequence[str]) -> str:
    return "programs.nix-ld.libraries = with pkgs; [ " + " ".join(attrs) + (" ];" if attrs else "];")


def describe(info: elf.ElfInfo) -> list[str]:
    newest = info.newest_requirements()
    return [
        f"{info.path}: {info.kind} for {info.machine}",
        f"  interpreter  {info.interpreter or '(none: static)'}",
        f"  needs        {' '.join(info.needed) or '(nothing)'}",
        f"  RUNPATH      {':'.join(info.runpath) or '(none)'}" + (f"   RPATH {':'.join(info.rpath)}" if info.rpath else ""),
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


def inspect(path: Path, glibcs: Sequence[GlibcSet], library_sets: dict[str, tuple[str, ...]], lock, cache: Cache,
            progress: Progress) -> str:
    info = elf.read(path)
    if info.interpreter is None and info.soname is not None:
        raise LdmatrixError(f"{path}: a shared library ({info.soname}), not a program: inspect the program "
                            "that loads it")
    lines = describe(info)
    smallest: dict[tuple[str, ...], list[str]] = {}
    for glibc in glibcs:
        store = PackageStore(glibc, lock, cache, progress)
        for name, attrs in library_sets.items():
            column = Column(glibc, name, store.libraries(attrs))
            lines.append(f"glibc {glibc.glibc_version} ({glibc.suite}), libs {name}:")
            for strategy in STRATEGIES:
                p = predict(info, path, column, strategy)
                lines.append(f"  {strategy:<26} {p.outcome.value:<20} {p.reason}")
            lines.append("  " + _where(predict(info, path, column, "nix-ld")))
        progress.step(f"inspect: the smallest library set for glibc {glibc.glibc_version}")
        attrs, prediction, unprovided = smallest_libraries(info, path, glibc, store)
        note = f" (then: {prediction.outcome.value}, {prediction.reason})" if prediction.outcome is not Outcome.OK else ""
        if unprovided:
            note += f"; no attribute here provides {', '.join(unprovided)}"
        smallest.setdefault(attrs, []).append(glibc.glibc_version + note)
    lines.append("the smallest programs.nix-ld.libraries that makes it load:")
    for attrs, where in smallest.items():
        lines.append(f"  {nix_list(attrs)}   # glibc {'; '.join(where)}")
    return "\n".join(lines)
