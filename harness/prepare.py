"""Turn a Cell plus what was provisioned into a PreparedCell (or a NotRun): the runner-independent part.

The binary under test is the cell's binary, or for a launcher its child. A launcher stands for a
Nix-built program (the seed's Rust program built by Nix's cargo): it is patched into the store
like one, except in the ``container`` strategy, where everything runs unpatched in the FHS root.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from harness.cache import Cache, installed
from harness.errors import LdmatrixError
from harness.loader import elf
from harness.loader.predict import Prediction, RootView, simulate, view_of
from harness.matrix import BinarySpec
from harness.model import (
    BuildRoot,
    BuiltBinary,
    Cell,
    GlibcSet,
    Launch,
    LibrarySet,
    Link,
    Mount,
    NotRun,
    Outcome,
    PreparedCell,
    RootKind,
    RootSpec,
    StorePath,
)
from harness.nixld.provide import how_to_supply
from harness.provision.libraries import CONFIG as LIBRARIES
from harness.provision.libraries import DEFAULT
from harness.root.environments import HOME, login_environment
from harness.root.launch import Target, Tools, launch
from harness.root.programs import Sources, binary_mounts, install_programs, subject_of
from harness.root.release import NixosRelease
from harness.root.system import SystemPaths, layout
from harness.strategies import APPLY, Plan, StrategyContext
from harness.strategies.nix_ld import LOADER_LINK


@dataclass(frozen=True, kw_only=True)
class Provisioned:
    """Everything provisioned for a run, looked up by the cells (``session.provision_all``; built by keyword)."""

    glibc: Mapping[str, GlibcSet]  # Cell.glibc_key ("2.36", "nixos-24.11") -> store paths
    roots: Mapping[str, BuildRoot]  # suite -> build root
    binaries: Mapping[tuple[str, str], BuiltBinary]  # (reproducer, suite) -> binary
    nix_ld: Mapping[str, StorePath]  # version label -> nix-ld store path
    nix_ld_missing: Mapping[str, str] = field(default_factory=dict)  # version label -> why there is none
    nix_ld_origins: Mapping[str, str] = field(default_factory=dict)  # version label -> how it was had
    tools: Mapping[str, Tools] = field(default_factory=dict)  # glibc key -> busybox for the launch styles
    systems: Mapping[str, SystemPaths] = field(default_factory=dict)  # glibc key -> the NixOS system's paths
    # (glibc key, nixpkgs attributes) -> the library set as Nix builds it (harness/provision/packages.py)
    libraries: Mapping[tuple[str, tuple[str, ...]], LibrarySet] = field(default_factory=dict)
    cache: Cache = field(default_factory=Cache.default)  # where patched binaries and overlays are shared
    glibc_missing: Mapping[str, str] = field(default_factory=dict)  # glibc key -> why it is not here (a pin)
    library_sets: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # libs name -> nixpkgs attributes
    stub_ld: StorePath | None = None  # NixOS 24.05+'s /lib64/ld-linux-x86-64.so.2 (harness/provision/stub_ld.py)
    # binary name -> the root the container strategy runs that Debian package in (apt installed it there)
    package_roots: Mapping[str, BuildRoot] = field(default_factory=dict)
    own_libraries: Mapping[str, StorePath] = field(default_factory=dict)  # ``libraries:`` -> its store path
    missing: Mapping[str, str] = field(default_factory=dict)  # a binary or library that could not be built -> why
    # binary name -> the glibc build and libraries Nix built it against (a prebuilt parent's Nix-built child)
    nix_built: Mapping[str, tuple[GlibcSet, LibrarySet]] = field(default_factory=dict)


def nixos_root(glibc: GlibcSet) -> RootSpec:
    """The NixOS-like root: /nix/store and /bin/sh, and no /lib, /lib64, /usr/lib."""
    digest = hashlib.sha256("".join(p.basename for p in glibc.store_paths).encode()).hexdigest()[:16]
    return RootSpec(
        kind=RootKind.NIXOS,
        digest=digest,
        store_paths=glibc.store_paths,
        links=(Link("/bin/sh", f"{glibc.shell.store_path}/bin/busybox"),),
    )


def fhs_root(root: BuildRoot) -> RootSpec:
    return RootSpec(kind=RootKind.FHS, digest=root.digest, fhs_root=root.path)


def library_attributes(libs: str, library_sets: Mapping[str, tuple[str, ...]], release: NixosRelease,
                       own: Collection[str] = ()) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(a cell's library set as listed, for a RUNPATH or LD_LIBRARY_PATH; programs.nix-ld.libraries as
    the cell's release ends up with it: the base list and the listed ones on 24.05+, harness/root/release.py).
    ``own``: library directories of ours, which are on NIX_LD_LIBRARY_PATH instead (``own_library_path``)."""
    listed = tuple(library_sets.get(libs, LIBRARIES.default if libs == DEFAULT else ()))
    packages = tuple(a for a in listed if a not in own)
    return listed, release.nix_ld_attributes(libs if packages == listed else "+".join(packages) or "none", packages,
                                             LIBRARIES.default)


def own_library_path(plan: Plan, listed: tuple[str, ...], own: Mapping[str, StorePath]) -> None:
    """Library directories of ours on NIX_LD_LIBRARY_PATH, in place of programs.nix-ld's directory, as
    a shell that sets it does (and nix-ld's own tests: ``NIX_LD_LIBRARY_PATH=$libtest``)."""
    dirs = [own[name] for name in listed if name in own]
    if not dirs or not plan.nix_ld_env:
        return
    plan.add_store_paths(dirs)
    value = ":".join(p.lib_dir for p in dirs)
    plan.nix_ld_env[:] = [(k, value if k == "NIX_LD_LIBRARY_PATH" else v) for k, v in plan.nix_ld_env]


def prepare(cell: Cell, spec: BinarySpec, child: BinarySpec | None, art: Provisioned, workdir: Path,
            timeout: float, home: Path | None = None, *, release: NixosRelease) -> PreparedCell | NotRun:
    """The cell, ready to run: ``workdir`` gets its files, ``home`` (default ``workdir/home``) is its HOME.
    ``release``: the NixOS release whose root it runs in (harness/root/release.py; ``session.release_of``).

    The binaries are not copied: they are installed once, patched, in the cache and bound
    read-only at ``~/bin/<name>``, a real program's tree at ``~/opt/<binary>`` (harness/root/programs.py).
    """
    if cell.glibc_key not in art.glibc:
        return NotRun.skip(art.glibc_missing.get(cell.glibc_key) or f"no store paths for {cell.glibc_label}")
    glibc = art.glibc[cell.glibc_key]
    subject = subject_of(spec, child)  # the binary the strategy is about
    if glibc.nixpkgs and cell.launch is Launch.PYTHON:
        return NotRun.skip(f"the python launch style on {cell.glibc_label}: the sandbox lays out no python3 for a pin "
                    "(the nixos-vm runner uses the VM's)")
    if glibc.nixpkgs and cell.libs not in ("none", "default"):
        return NotRun.skip(f"library set {cell.libs} on {cell.glibc_label}: a pin offers its own programs.nix-ld "
                    "default (libs: default) or none")
    needs = (spec.name, *((child.name,) if child is not None else ()), *art.library_sets.get(cell.libs, ()))
    missing = next((art.missing[n] for n in needs if n in art.missing), None)
    if missing is not None:
        return NotRun.skip(missing)
    listed, nix_ld_attrs = library_attributes(cell.libs, art.library_sets, release, art.own_libraries)
    if glibc.nixpkgs:  # a pin's own programs.nix-ld default list, realised: each a lib output of its own
        own = tuple(glibc.nix_ld_libraries or ()) if cell.libs == "default" else ()
        listed_set = nix_ld_set = LibrarySet(listed, own, own)
    else:
        listed_set = art.libraries.get((cell.glibc_key, listed), LibrarySet())
        nix_ld_set = art.libraries.get((cell.glibc_key, nix_ld_attrs), LibrarySet())
    ctx = StrategyContext(
        glibc=glibc,
        # the container's root: the suite's, or one apt installed a Debian package in
        build_root=art.package_roots.get(subject.name) or (art.roots.get(subject.built_in) if subject.built_in
                                                           else None),
        nix_ld=(glibc.own_nix_ld_for(cell.nix_ld) or art.nix_ld.get(cell.nix_ld)) if cell.nix_ld else None,
        nix_ld_label=cell.nix_ld,
        nix_ld_missing=_nix_ld_missing(cell.nix_ld, art) if cell.nix_ld else "",
        libraries=listed_set,
        nix_ld_libraries=nix_ld_set,
    )
    plan = Plan()
    for strategy in cell.strategy:
        stopped = APPLY[strategy](plan, ctx)
        if stopped is not None:
            return stopped
    own_library_path(plan, listed, art.own_libraries)
    if not plan.fhs and release.stub_ld and not any(link.path == LOADER_LINK for link in plan.links):
        if art.stub_ld is None:
            raise LdmatrixError(f"{release.pretty_name} has stub-ld at {LOADER_LINK}, and none was provisioned")
        plan.add_store_paths([art.stub_ld])  # environment.ldso's mkDefault: stub-ld unless nix-ld is enabled
        plan.links.append(Link(LOADER_LINK, art.stub_ld.store_path))

    sources = Sources(art.binaries, art.cache, art.nix_built, art.package_roots)
    programs = install_programs(cell, spec, child, sources, plan, glibc)
    if isinstance(programs, NotRun):
        return programs
    binaries = programs.binaries
    plan.add_store_paths(programs.store_paths)

    env = login_environment(cell.env, fhs=plan.fhs, nix_ld=tuple(plan.nix_ld_env), extra=tuple(plan.env))
    added = {key for key, _ in plan.env}
    target = Target(argv=programs.argv, login_env=env, nix_ld_env=tuple(plan.nix_ld_env),
                    strategy_env=tuple((k, v) for k, v in env if k in added), cwd=HOME,
                    checks=programs.checks, form=cell.naming.form)
    launched = launch(cell.launch, target, art.tools.get(cell.glibc_key) or Tools(busybox=glibc.shell))
    launched = replace(launched, home_files={**launched.home_files, **programs.home_files})

    workdir.mkdir(parents=True, exist_ok=True)
    home = home or workdir / "home"
    # the binaries are bound into ~/bin, a real program's tree into ~/opt, read-only: the runner makes
    # those mount points in the tmpfs HOME (made here, the cell user would be given them: not ours to give)
    (home / "bin").mkdir(parents=True, exist_ok=True)
    for relative, data in launched.home_files.items():  # the launcher's scripts and its record
        (home / relative).parent.mkdir(parents=True, exist_ok=True)
        (home / relative).write_bytes(data)
    system = None
    if not plan.fhs and cell.glibc_key in art.systems:  # /etc, /run/current-system/sw/bin, /usr/bin/env
        system = layout(art.systems[cell.glibc_key], tuple(kv for kv in env if kv not in target.strategy_env),
                        release)
    store_paths = {p.basename: p for p in (*(system.store_paths if system else ()), *plan.store_paths,
                                           *launched.store_paths)}
    mounts = [Mount(home, HOME, writable=True, tmpfs=True)]  # a bounded tmpfs with home's files
    mounts += binary_mounts(programs)
    mounts += [Mount(p.host_path, p.store_path) for p in store_paths.values()]
    mounts += installed.overlay_mounts([*(system.links if system else ()), *plan.links, *launched.links],
                                       art.cache, system.files if system else {})
    mounts += plan.mounts
    if plan.fhs and ctx.build_root is None:  # matrix.load refuses this; a caller that did not load one
        raise LdmatrixError(f"{subject.name}: the container strategy needs the suite to run in (built_in)")
    root = fhs_root(ctx.build_root) if ctx.build_root is not None and plan.fhs else nixos_root(glibc)
    prediction = predict(root, mounts, binaries, env)
    return PreparedCell(cell=cell, root=root, mounts=tuple(mounts), argv=launched.argv, env=launched.env,
                        cwd=launched.cwd, timeout=timeout, workdir=workdir, binaries=tuple(binaries),
                        predicted=prediction.outcome, prediction=prediction.reason, nix_ld=ctx.nix_ld,
                        nixpkgs=glibc.nixpkgs,
                        nix_ld_libraries=None if cell.libs == "default" else art.library_sets.get(cell.libs, ()))


def _nix_ld_missing(label: str, art: Provisioned) -> str:
    """Why a cell of nix-ld ``label`` would find none, and how to supply one."""
    return art.nix_ld_missing.get(label) or f"no nix-ld {label}: " + how_to_supply(label)


def root_view(root: RootSpec, mounts: list[Mount]) -> RootView:
    """The cell's root as paths, for harness/loader/predict.py: the root's own trees and links, then the mounts."""
    if root.kind is RootKind.FHS:
        assert root.fhs_root is not None
        base = [("/", root.fhs_root)]
    else:
        base = [(p.store_path, p.host_path) for p in root.store_paths]
    return view_of([*base, *((m.target, m.host) for m in mounts)], ((link.path, link.target) for link in root.links))


def predict(root: RootSpec, mounts: list[Mount], binaries: list, env: tuple[tuple[str, str], ...]) -> Prediction:
    """What the loader will do: the launcher (a Nix-built program) first, then the program it starts,
    in the environment the program is given."""
    view = root_view(root, mounts)
    prediction = Prediction(Outcome.OK, "")
    for installed_binary in binaries:  # the launcher first, when there is one
        prediction = simulate(elf.read(installed_binary.host_path), installed_binary.path, view, dict(env))
        if prediction.outcome is not Outcome.OK:
            return prediction
    return prediction
