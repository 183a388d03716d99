"""``--nixpkgs PIN``: the pins a run asks for, each realised here or skipped with the reason.

Resolved before the matrix is read, as ``--nix-ld`` is: a pin's glibc build becomes a column of the
glibc axis (``nixos-24.11 · glibc 2.40``, labelled by the glibc it really has), and its own nix-ld
joins the nix_ld axis on that column under its version (GlibcSet.own_nix_ld serves it there). A
pin that cannot be realised here (no Nix, no network) keeps its column, from the glibc version the
pins file records, and its cells are skipped with the reason; a pin without a hash stops the run.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from harness.cache import Cache
from harness.errors import LdmatrixError
from harness.model import GlibcSet
from harness.progress import Progress

from . import pins as pins_mod
from .pins import NixpkgsPin
from .realise import NixStore, NixUnavailable, PinBuild, Realise, missing_tools, pin_build, realise_with_nix

ITEMS_ENV = "LDMATRIX_NIXPKGS"  # --nixpkgs items, space-separated (tox -e matrix passes it on)
PINS_ENV = "LDMATRIX_NIXPKGS_PINS"  # another pins file


@dataclass(frozen=True)
class PinColumn:
    pin: NixpkgsPin
    build: PinBuild | None  # None: not realised here
    reason: str | None = None  # why not: the skip reason of its cells

    @property
    def glibc_version(self) -> str:
        version = self.build.glibc.glibc_version if self.build else self.pin.glibc
        if version is None:  # pins.load() refuses a hashed pin without one, so this is a pin in the making
            raise LdmatrixError(f"pin {self.pin.name} records no glibc version: "
                                f"run `ldmatrix pins update {self.pin.name}`")
        return version

    @property
    def nix_ld_label(self) -> str | None:
        return self.build.nix_ld_label if self.build else self.pin.nix_ld


@dataclass(frozen=True)
class NixpkgsSupply:
    columns: Mapping[str, PinColumn] = field(default_factory=dict)  # pin name -> its column

    def glibc_columns(self) -> dict[str, tuple[str, str | None]]:
        """pin -> (glibc version, its own nix-ld version): what matrix.load adds to the axes."""
        return {name: (column.glibc_version, column.nix_ld_label) for name, column in self.columns.items()}

    def glibc_sets(self) -> dict[str, GlibcSet]:
        return {name: c.build.glibc for name, c in self.columns.items() if c.build}

    def missing(self) -> dict[str, str]:
        return {name: c.reason or "not realised" for name, c in self.columns.items() if c.build is None}

    def header(self) -> dict[str, dict[str, str | None]]:
        """For a results file's header: each pin's revision and glibc, so a diff can say what moved."""
        return {name: {"rev": c.pin.rev, "glibc": c.glibc_version, "nix_ld": c.nix_ld_label,
                       "realised": "yes" if c.build else c.reason}
                for name, c in self.columns.items()}


def items_from_env() -> list[str]:
    return os.environ.get(ITEMS_ENV, "").split()


def pins_path(given: Path | None) -> Path | None:
    if given is not None:
        return given
    value = os.environ.get(PINS_ENV)
    return Path(value) if value else None


def supply(items: Iterable[str], cache: Cache, progress: Progress, *, pins_file: Path | None = None,
           store: NixStore | None = None, realise: Realise = realise_with_nix) -> NixpkgsSupply:
    """Resolve ``--nixpkgs`` items (and ``$LDMATRIX_NIXPKGS``) and realise each pin, or say why not."""
    items = [*items, *items_from_env()]
    if not items:
        return NixpkgsSupply()
    pins = pins_mod.load(pins_path(pins_file))
    chosen = pins.select(items)
    store = store or NixStore.from_env()
    absent = missing_tools()
    columns: dict[str, PinColumn] = {}
    for pin in chosen:
        if absent:
            progress.step(f"nixpkgs {pin.name}: {absent}; its cells are skipped")
            columns[pin.name] = PinColumn(pin, None, absent)
            continue
        workdir = cache.dir("nixpkgs") / f"{pin.name}-{(pin.rev or '')[:12]}"
        try:
            build = pin_build(pin, realise(pin, store, workdir, progress), store)
        except NixUnavailable as err:
            reason = f"nixpkgs {pin.name} could not be realised here: {err}"
            progress.step(f"{reason}; its cells are skipped")
            columns[pin.name] = PinColumn(pin, None, reason)
            continue
        if pin.glibc and pin.glibc != build.glibc.glibc_version:
            progress.step(f"nixpkgs {pin.name}: the pins file records glibc {pin.glibc}, the realised glibc is "
                          f"{build.glibc.glibc_version}: the column says {build.glibc.glibc_version}")
        progress.step(f"nixpkgs {pin.name}: glibc {build.glibc.glibc_version} ({build.glibc.glibc.store_path}), "
                      f"nix-ld {build.nix_ld_label}, {len(build.glibc.store_paths)} store paths "
                      f"from {store.describe()}")
        columns[pin.name] = PinColumn(pin, build)
    return NixpkgsSupply(columns)
