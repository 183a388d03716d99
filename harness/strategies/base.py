"""What a strategy may change about a cell, and the context it decides from.

A strategy is a function ``apply(plan, ctx)``. Strategies compose left to right
(``patchelf+LD_LIBRARY_PATH``); each only adds to the plan, or returns a ``NotRun`` saying why the
cell cannot be laid out here (``nix-ld`` of a version nobody supplied).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from harness.model import BuildRoot, GlibcSet, LibrarySet, Link, Mount, StorePath


@dataclass(frozen=True)
class StrategyContext:
    glibc: GlibcSet
    build_root: BuildRoot | None  # the build root of the binary under test (its FHS root; None: it names none)
    nix_ld: StorePath | None  # the nix-ld under test, when the cell names one and it is supplied
    nix_ld_label: str | None
    nix_ld_missing: str = ""  # why there is no nix-ld of that label, and how to supply one
    # The cell's library set as listed (``libs``): what a RUNPATH or LD_LIBRARY_PATH names.
    libraries: LibrarySet = LibrarySet()  # noqa: RUF009 - frozen: one shared empty set is safe
    # programs.nix-ld.libraries as the cell's NixOS release ends up with it for that set
    # (harness/root/release.py: added to the base libraries on 24.05+, replacing them on 23.11).
    nix_ld_libraries: LibrarySet = LibrarySet()  # noqa: RUF009 - frozen, as above


@dataclass
class Plan:
    """Mutable while strategies run; frozen into a PreparedCell afterwards."""

    interpreter: str | None = None  # patchelf --set-interpreter for the binary under test
    runpath: list[str] = field(default_factory=list)  # patchelf --set-rpath
    env: list[tuple[str, str]] = field(default_factory=list)  # added to the login environment
    nix_ld_env: list[tuple[str, str]] = field(default_factory=list)  # NIX_LD, NIX_LD_LIBRARY_PATH
    links: list[Link] = field(default_factory=list)  # extra links in the root (/lib64/...)
    mounts: list[Mount] = field(default_factory=list)
    store_paths: list[StorePath] = field(default_factory=list)  # extra store paths (nix-ld)
    fhs: bool = False  # run in the build suite's FHS root instead of the NixOS-like root

    def add_store_paths(self, paths: tuple[StorePath, ...] | list[StorePath]) -> None:
        """Store paths the cell needs bound, each once (composed strategies may name the same)."""
        have = {p.basename for p in self.store_paths}
        self.store_paths += [p for p in paths if p.basename not in have]
