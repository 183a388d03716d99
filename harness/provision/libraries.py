"""The libraries NixOS offers, from Debian packages: which packages stand for a nixpkgs attribute in
a suite (with their library dependencies), read from the suite's Packages index when the lock is
made (harness/data/libraries.json names them).

A closure is the packages of one attribute and, following Depends and Pre-Depends, every
library package they need; the glibc set's own packages (libc6, libcrypt1, libgcc-s1) are not
followed, and packages that are not libraries (``lib*``, ``zlib1g``) end the walk.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from harness.errors import ProvisionError

LIBRARIES_PATH = Path(__file__).resolve().parent.parent / "data" / "libraries.json"
GLIBC_SET_PACKAGES = frozenset({"libc6", "libcrypt1", "libgcc-s1"})
ALIASES = {"@libxcrypt": "libxcrypt", "@gcc_lib": "gcc_lib"}  # a glibc set's own store paths, by GlibcSet field
NONE, DEFAULT = "none", "default"
_CONSTRAINT = re.compile(r"\s*\(.*?\)|:\w+")


@dataclass(frozen=True)
class LibraryConfig:
    default: tuple[str, ...]
    attributes: dict[str, tuple[str, ...]]  # nixpkgs attribute -> package specs ("a|b" alternatives,
    # "?a" a package only some suites have, "@alias")
    system: dict[str, tuple[str, ...]]  # what the NixOS-like root takes from Debian: role -> package specs

    @property
    def closures(self) -> dict[str, tuple[str, ...]]:
        """Every name the lock keeps a closure for: the attributes and the system's roles."""
        return {**self.attributes, **self.system}

    @property
    def digest(self) -> str:
        """Of what the closures are made from: a lock resolved from other specs resolves them again."""
        text = json.dumps(sorted(self.closures.items()), separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def load_config(path: Path = LIBRARIES_PATH) -> LibraryConfig:
    try:
        raw = json.loads(path.read_text())
        return LibraryConfig(tuple(raw["default"]), {k: tuple(v) for k, v in raw["attributes"].items()},
                             {k: tuple(v) for k, v in raw["system"].items()})
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ProvisionError(f"{path}: cannot read the libraries map: {err!r}") from None


CONFIG = load_config()


def is_library(package: str) -> bool:
    return (package.startswith("lib") or package == "zlib1g") and package not in GLIBC_SET_PACKAGES


def pick(spec: str, index: Mapping[str, object]) -> str | None:
    """The first alternative of ``a | b (>= 1)`` the index has (also tried with Debian's t64 suffix)."""
    for alternative in spec.split("|"):
        name = _CONSTRAINT.sub("", alternative).strip()
        for candidate in (name, f"{name}t64"):
            if candidate in index:
                return candidate
    return None


def depends(stanza: Mapping[str, str], index: Mapping[str, object]) -> list[str]:
    """The library packages a package needs directly (Pre-Depends and Depends, first alternative it has)."""
    out: list[str] = []
    for field in ("Pre-Depends", "Depends"):
        for group in stanza.get(field, "").split(","):
            if not group.strip():
                continue
            name = pick(group, index)
            if name is not None and is_library(name) and name not in out:
                out.append(name)
    return out


@dataclass(frozen=True)
class SuiteLibraries:
    closures: dict[str, tuple[str, ...]]  # attribute or role -> its packages, the named ones first
    depends: dict[str, tuple[str, ...]]  # package -> the library packages it needs directly

    @property
    def packages(self) -> tuple[str, ...]:
        return tuple(sorted({p for packages in self.closures.values() for p in packages}))


def resolve(suite: str, index: Mapping[str, Mapping[str, str]], config: LibraryConfig = CONFIG) -> SuiteLibraries:
    """The closures of every attribute and role in ``suite``'s index (``index``: package -> stanza)."""
    closures: dict[str, tuple[str, ...]] = {}
    edges: dict[str, tuple[str, ...]] = {}
    for name, specs in config.closures.items():
        roots = []
        for spec in specs:
            if spec in ALIASES:
                continue
            package = pick(spec.removeprefix("?"), index)
            if package is None and spec.startswith("?"):  # optional: a suite without it goes without
                continue
            if package is None:
                raise ProvisionError(f"dists/{suite}: no package for {name} ({spec}) in main; "
                                     f"update {LIBRARIES_PATH.name}")
            roots.append(package)
        order: list[str] = []
        queue = list(roots)
        while queue:
            package = queue.pop(0)
            if package in order:
                continue
            order.append(package)
            edges[package] = tuple(depends(index[package], index))
            queue += [d for d in edges[package] if d not in order]
        closures[name] = tuple(order)
    return SuiteLibraries(closures, edges)
