"""What a cell runs: its programs, placed where the cell sees them and installed as the fix says.

- A reproducer is one file at ``~/bin/NAME``; the started program's NAME is its own, or a short or
  a long one (the ``name`` axis; a child keeps its own).
- A real program is installed whole (harness/artifacts/tree.py): its artifact's tree bound read-only
  at ``~/opt/<binary>/``, the program run from its place in it (``path:``, a link in the tree as
  it is), so ``$ORIGIN`` finds what it ships beside it. A patched program is bound over its own
  file in the tree. In the ``container`` strategy a Debian package is the root's own, installed
  there by apt with its dependencies (harness/provision/package_root.py): run from ``/<path>``.
- The cell's binary is the program under test, or a launcher standing for a Nix-built program
  (patched into the store) whose child is; a prebuilt parent (spawn-child, a wheel's node) is
  itself under test, and its child another prebuilt program under the same fix, or a Nix-built
  one (``nix_built``: its own glibc build and libraries).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from harness import DATA as HARNESS_DATA
from harness.cache import Cache, installed
from harness.cache.entry import file_sha256
from harness.errors import LdmatrixError
from harness.matrix import BinarySpec
from harness.model import (
    BuildRoot,
    BuiltBinary,
    Cell,
    GlibcSet,
    InstalledBinary,
    LibrarySet,
    Mount,
    NameLength,
    NotRun,
    StorePath,
)
from harness.reproducers import LAUNCHER_NO_EXPECT, REPRODUCERS
from harness.root.environments import HOME
from harness.strategies import Plan

BIN_DIR = f"{HOME}/bin"
OPT_DIR = f"{HOME}/opt"  # where real programs' trees are
DATA = HARNESS_DATA  # scripts a real program runs (harness/data/spawn_child.js)
LONG_NAME = 200  # characters in a long file name (a path component may have 255)


def is_printer(spec: BinarySpec) -> bool:
    """The start-up printer checks what it is passed against its parent's ``--expect`` record."""
    return spec.reproducer is not None and REPRODUCERS[spec.reproducer].checks_startup


def file_name(name: str, length: NameLength) -> str:
    """The started program's file name: its own, or a reproducer's short (one character) or long one.
    nix-ld 1.x's overrun reads 15 bytes past NIX_LD_LIBRARY_PATH's entry: when that is the last one,
    what it reads is the file name the kernel put after the environment, then the stack's end."""
    if length is NameLength.SHORT:
        return name[0]
    if length is NameLength.LONG:
        return f"{name}-" + "x" * (LONG_NAME - len(name) - 1)
    return name


def program_argv(paths: list[str], subject: BinarySpec, launched: bool) -> list[str]:
    """``[PROGRAM, *run]``, or ``[LAUNCHER, CHILD, *run]``: a launcher gives its child ``--expect FILE``
    for the start-up printer only; any other child is run with ``--no-expect``, untouched."""
    if launched and not is_printer(subject):
        paths = [paths[0], LAUNCHER_NO_EXPECT, *paths[1:]]
    return [*paths, *subject.run]


def subject_of(spec: BinarySpec, child: BinarySpec | None) -> BinarySpec:
    """The binary a cell's strategy is about: a launcher's child, or the program itself (a prebuilt
    parent too: its child is a prebuilt program under the same fix, or a Nix-built one)."""
    return spec if child is None or spec.prebuilt_parent else child


@dataclass(frozen=True)
class Placed:
    """Where a program is in the cell: the path it is started by, and its file (a link followed)."""

    run: str
    file: str
    tree: Mount | None = None  # a real program's artifact, bound read-only at its prefix
    root_file: Path | None = None  # a package root's own file (nothing to bind)


def place(spec: BinarySpec, built: BuiltBinary, name: str, package_root: BuildRoot | None = None) -> Placed:
    """``name``: a reproducer's file name in ~/bin. A real program keeps its own, at its place in its tree."""
    if package_root is not None:  # installed by apt in the container's root
        return Placed(f"/{built.named}", f"/{built.member}", root_file=package_root.path / built.member)
    if built.tree is None:
        path = f"{BIN_DIR}/{name}"
        return Placed(path, path)
    prefix = f"{OPT_DIR}/{spec.name}"
    return Placed(f"{prefix}/{built.named}", f"{prefix}/{built.member}", Mount(built.tree, prefix))


@dataclass(frozen=True)
class Programs:
    """What a cell runs: its binaries as installed (by their file's path in the cell), the command
    (without the record a launch style adds), whether the started program reads that record, the
    trees to bind before the binaries, and what else the cell needs."""

    binaries: list[InstalledBinary]
    argv: tuple[str, ...]
    checks: bool
    trees: tuple[Mount, ...] = ()
    store_paths: tuple[StorePath, ...] = ()
    home_files: dict[str, bytes] = field(default_factory=dict)


@dataclass(frozen=True)
class Sources:
    """What programs are made from: the run's binaries, the Nix builds of Nix-built children, the
    package roots of Debian packages in containers, and the cache patched binaries are shared in."""

    binaries: Mapping[tuple[str, str], BuiltBinary]
    cache: Cache
    nix_built: Mapping[str, tuple[GlibcSet, LibrarySet]] = field(default_factory=dict)
    package_roots: Mapping[str, BuildRoot] = field(default_factory=dict)


def _install(spec: BinarySpec, name: str, fix: tuple[str | None, list[str]], src: Sources,
             plan: Plan) -> tuple[InstalledBinary, Placed]:
    built = src.binaries[spec.key]
    placed = place(spec, built, name, src.package_roots.get(spec.name) if plan.fhs else None)
    if placed.root_file is not None:  # the root's own file, unpatched (container)
        binary = InstalledBinary(placed.file, placed.root_file, file_sha256(placed.root_file), built.sha256, None, (),
                                 built.reproducer)
        return binary, placed
    return installed.install(built, placed.file, *fix, src.cache), placed


def _nix_built(child: BinarySpec, src: Sources) -> tuple[tuple[str | None, list[str]], tuple[StorePath, ...]]:
    """A Nix-built child's interpreter and RUNPATH (its own glibc build, gcc-lib, its libraries), and
    the store paths they are in."""
    nix = src.nix_built.get(child.name)
    if nix is None or child.nix_built is None:
        raise LdmatrixError(f"{child.name}: its Nix build was not provisioned")
    own_glibc, libraries = nix
    runpath = [own_glibc.glibc.lib_dir, own_glibc.gcc_lib.lib_dir, *(p.lib_dir for p in libraries.own)]
    return (own_glibc.loader, runpath), (*own_glibc.store_paths, *libraries.closure)


def install_programs(cell: Cell, spec: BinarySpec, child: BinarySpec | None, src: Sources, plan: Plan,
                     glibc: GlibcSet) -> Programs | NotRun:
    """The cell's programs, placed and installed: see the module's docstring."""
    started = file_name(spec.name, cell.naming.length)  # a child keeps its own name
    fixed = (plan.interpreter, plan.runpath)
    if child is None:
        binary, placed = _install(spec, started, fixed, src, plan)
        return Programs([binary], tuple(program_argv([placed.run], spec, False)), is_printer(spec),
                        _trees(placed))
    if not spec.prebuilt_parent:  # a launcher standing for a Nix-built program, patched into the store
        nixify = not plan.fhs
        nix_fix = (glibc.loader, [glibc.glibc.lib_dir, glibc.gcc_lib.lib_dir]) if nixify else (None, [])
        launcher, at = _install(spec, started, nix_fix, src, plan)
        subject, placed = _install(child, child.name, fixed, src, plan)
        return Programs([launcher, subject], tuple(program_argv([at.run, placed.run], child, True)), False,
                        _trees(at, placed))
    store_paths: tuple[StorePath, ...] = ()
    child_fix = fixed
    if child.nix_built is not None:
        if plan.fhs:
            return NotRun.skip(f"{child.name} is Nix-built: the container strategy's root has no store for it")
        child_fix, store_paths = _nix_built(child, src)
    parent, at = _install(spec, started, fixed, src, plan)
    kid, placed = _install(child, child.name, child_fix, src, plan)
    home_files: dict[str, bytes] = {}
    script: tuple[str, ...] = ()
    if spec.script:  # a real parent (node) starts its child by running our script
        home_files[f".ldmatrix/{spec.script}"] = (DATA / spec.script).read_bytes()
        script = (f"{HOME}/.ldmatrix/{spec.script}",)
    if not spec.passes_child:  # it starts its child by itself, from where it expects it
        return Programs([parent, kid], (at.run, *spec.run), is_printer(spec), _trees(at, placed), store_paths)
    told = () if is_printer(child) else (LAUNCHER_NO_EXPECT,)  # the same words as the Rust launchers'
    argv = (at.run, *spec.run, *script, *told, placed.run, *child.run)
    return Programs([parent, kid], argv, True, _trees(at, placed), store_paths, home_files)


def _trees(*placed: Placed) -> tuple[Mount, ...]:
    return tuple(p.tree for p in placed if p.tree is not None)


def binary_mounts(programs: Programs) -> list[Mount]:
    """The trees, then each binary over its place (a tree's own unpatched file needs no mount; a
    package root's file is the root's)."""
    trees = {m.target: m.host for m in programs.trees}
    mounts = list(programs.trees)
    for b in programs.binaries:
        own = next((host / b.path[len(target) + 1:] for target, host in trees.items()
                    if b.path.startswith(f"{target}/")), None)
        if b.path.startswith(f"{HOME}/") and own != b.host_path:
            mounts.append(Mount(b.host_path, b.path))
    return mounts
