"""What a run builds of nix-ld's own tests, and the library directories of ours a matrix names.

- Fixtures (``binaries: {x: {nix_ld_test: dt-needed, source: "2.0.6", built_in: bullseye}}``) and
  ``libtest`` (``libraries: {libtest: {nix_ld_test: libtest, ...}}``) are compiled from the pinned
  nix-ld source's ``tests/*.c`` (harness/nixld/suite.py), once per source and suite.
- A directory (``libraries: {mine: {dir: ./lib}}``) becomes a store path of its own: its files
  copied into the cache under ``lib/``, named by their content.

A source that cannot be had is no error of the run: the cells that need it are skipped, saying why.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from harness import nixld
from harness.cache import Cache
from harness.cache import entry as cache_entry
from harness.matrix import Matrix, NixLdTest, OwnLibrary
from harness.model import BuildRoot, BuiltBinary, Cell, StorePath
from harness.nixld.suite import LIBRARY, Fixtures, fixtures
from harness.progress import Progress
from harness.provision import nixbase32

STORE_AREA = "store"


@dataclass
class Provided:
    binaries: dict[tuple[str, str], BuiltBinary] = field(default_factory=dict)  # BinarySpec.key -> program
    libraries: dict[str, StorePath] = field(default_factory=dict)  # own library name -> its store path
    missing: dict[str, str] = field(default_factory=dict)  # binary or library name -> why it is not here


def directory_store_path(library: OwnLibrary, cache: Cache, progress: Progress) -> StorePath:
    """A directory of libraries as a store path: its files under lib/, named by their content."""
    directory = library.directory
    assert directory is not None
    files = sorted(p for p in directory.rglob("*") if p.is_file() or p.is_symlink())
    made_from = {"kind": "library-dir", "name": library.name,
                 "files": [[str(p.relative_to(directory)), cache_entry.file_sha256(p) if p.is_file() else
                            str(p.readlink())] for p in files]}
    digest = nixbase32.digest(json.dumps(made_from, sort_keys=True))
    entry = cache_entry.Entry(cache, STORE_AREA, f"{digest}-{library.name}")

    def fill(out: Path, scratch: Path) -> None:
        shutil.copytree(directory, out / "lib", symlinks=True, dirs_exist_ok=True)

    cache_entry.ensure(entry, made_from, fill, progress, f"library directory {library.name}")
    return StorePath(library.name, "", digest, entry.path)


def provide(matrix: Matrix, cells: Iterable[Cell], supply: nixld.Supply, roots: dict[str, BuildRoot],
            root_of: Callable[[str], BuildRoot], cache: Cache, progress: Progress) -> Provided:
    """The fixtures and own libraries ``cells`` use; ``root_of(suite)`` gives a build root (cached)."""
    cells = list(cells)
    specs = {matrix.binaries[n] for c in cells for n in (c.binary, matrix.binaries[c.binary].child) if n}
    tests = {s.name: s.nix_ld_test for s in specs if s.nix_ld_test is not None}
    used = {name for c in cells for name in matrix.library_sets.get(c.libs, ()) if name in matrix.own_libraries}
    own = {name: matrix.own_libraries[name] for name in used}
    wanted: dict[str, NixLdTest] = {**tests, **{n: lib.nix_ld_test for n, lib in own.items() if lib.nix_ld_test}}
    out = Provided()
    built: dict[tuple[str, str], Fixtures | str] = {}  # (source, suite) -> the fixtures, or why not
    for name, test in sorted(wanted.items()):
        key = (test.source, test.built_in)
        if key not in built:
            tree = nixld.source_tree(test.source, supply, matrix.nix_ld_sources, cache, progress)
            if isinstance(tree, str):
                built[key] = tree
            else:
                if test.built_in not in roots:
                    roots[test.built_in] = root_of(test.built_in)
                built[key] = fixtures(tree, roots[test.built_in], cache, progress)
        got = built[key]
        if isinstance(got, str):
            out.missing[name] = f"nix-ld {test.source}'s tests cannot be built: {got}"
        elif test.test == LIBRARY:
            out.libraries[name] = got.library
        else:
            out.binaries[matrix.binaries[name].key] = got.programs[test.test]
    for name, library in sorted(own.items()):
        if library.directory is not None:
            out.libraries[name] = directory_store_path(library, cache, progress)
    return out
