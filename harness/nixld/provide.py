"""Which real nix-ld each label of a run gets, and from where. Never imitated.

In order: a ``--nix-ld`` item for that label (a build, or a source built here); else the
matrix's pinned source (``nix_ld_sources``), looked for in the cache, in the directories of
release archives (``--nix-ld-archives``, ``$LDMATRIX_NIX_LD_ARCHIVES``), then at its URL. A label
none of these can serve is *missing*: its cells are skipped with a reason naming every way to
supply one. A source that is there but wrong (damaged, not nix-ld, fails to build) is an error,
never a skip.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from harness.cache import Cache
from harness.errors import LdmatrixError, ProvisionError
from harness.model import StorePath
from harness.progress import Progress
from harness.provision.fetch import NotFound, with_retries

from . import binary, source
from .build import build
from .pins import PinnedSource, archive_names
from .request import Request, parse
from .source import SourceError, SourceTree
from .toolchain import Toolchain, toolchain

SPECS_ENV = "LDMATRIX_NIX_LD"
ARCHIVES_ENV = "LDMATRIX_NIX_LD_ARCHIVES"


def how_to_supply(label: str, archives: bool = True) -> str:
    """Every way to supply nix-ld ``label``; ``archives=False`` when the given directories were searched."""
    ways = (f"supply a build (--nix-ld {label}=/path/to/nix-ld, e.g. the output of `nix build nixpkgs#nix-ld`)"
            f"{',' if archives else ' or'} a source (--nix-ld src:nix-ld-{label}.tar.gz or "
            f"--nix-ld src:nix-ld.bundle#{label})")
    if archives:
        ways += f", or a directory of release archives holding nix-ld-{label}.tar.gz (--nix-ld-archives DIR)"
    return ways


@dataclass(frozen=True)
class Supplied:
    """A ``--nix-ld`` item, resolved: sources are read now, so that their labels are known."""

    label: str
    request: Request
    tree: SourceTree | None = None


@dataclass(frozen=True)
class Supply:
    """What the command line gave: nix-ld items by label, and directories of release archives."""

    items: Mapping[str, Supplied] = field(default_factory=dict)
    archives: tuple[Path, ...] = ()

    @property
    def labels(self) -> list[str]:
        return list(self.items)


@dataclass(frozen=True)
class NixLdSet:
    """Per label: the nix-ld store path a run uses, where it came from, or why there is none."""

    store_paths: Mapping[str, StorePath] = field(default_factory=dict)
    origins: Mapping[str, str] = field(default_factory=dict)
    missing: Mapping[str, str] = field(default_factory=dict)


def specs_from_env() -> list[str]:
    return os.environ.get(SPECS_ENV, "").split()


def archives_from_env() -> list[Path]:
    return [Path(p) for p in os.environ.get(ARCHIVES_ENV, "").split(os.pathsep) if p]


def supply(items: Iterable[str], archives: Iterable[Path], cache: Cache, progress: Progress) -> Supply:
    """Parse and resolve ``--nix-ld`` items (plus ``$LDMATRIX_NIX_LD``) and the archive directories."""
    out: dict[str, Supplied] = {}
    for text in [*items, *specs_from_env()]:
        req = parse(text)
        tree = None
        if req.source:
            tree = source.load(req.path, cache, rev=req.rev, label=req.label)
            progress.step(f"nix-ld source {tree.origin}: version {tree.version}, generation "
                          f"{int(tree.generation)}, {tree.nar_hash}")
            label = tree.version
        else:
            label = req.label or ""
            binary.executable(req.path)  # checked now: a wrong path fails before anything runs
        if label in out:
            raise LdmatrixError(f"--nix-ld {label} given twice ({out[label].request.text}, {req.text})")
        out[label] = Supplied(label, req, tree)
    for directory in archives:
        if not directory.is_dir():
            raise LdmatrixError(f"--nix-ld-archives {directory}: not a directory")
    from_env = []
    for directory in archives_from_env():
        if directory.is_dir():
            from_env.append(directory)
        else:  # tox.ini names a default that only some machines have
            progress.step(f"${ARCHIVES_ENV}: {directory} is not a directory; ignored")
    return Supply(out, (*archives, *from_env))


def _download(pin: PinnedSource, cache: Cache, progress: Progress) -> Path:
    downloads = cache.dir("nix-ld") / "downloads"
    dest = downloads / f"{hashlib.sha256(pin.url.encode()).hexdigest()[:32]}.tar.gz"
    if dest.is_file():
        return dest
    progress.step(f"nix-ld {pin.version}: downloading {pin.url}")
    base, _, name = pin.url.rpartition("/")

    def save(resp: BinaryIO) -> None:
        fd, tmp = tempfile.mkstemp(dir=downloads, prefix=".tmp-", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as out:
                for chunk in iter(lambda: resp.read(1 << 16), b""):
                    out.write(chunk)
            os.replace(tmp, dest)
        finally:
            Path(tmp).unlink(missing_ok=True)

    with_retries(name, base, save)
    return dest


def _archived_tree(version: str, archives: tuple[Path, ...], cache: Cache, progress: Progress,
                   expected_hash: str | None = None) -> SourceTree | None:
    """Version ``version`` from a directory of release archives (an archive named for it, or a git
    bundle's tag), checked against ``expected_hash`` when the matrix pins one; None if none has it."""
    for directory in archives:
        for name in archive_names(version):
            candidate = directory / name
            if candidate.is_file():
                progress.step(f"nix-ld {version}: source {candidate}")
                return source.load(candidate, cache, label=version, expected_hash=expected_hash)
        for bundle in sorted(directory.glob("*.bundle")):
            repo = source.git_repository(bundle, cache)
            tag = source.git(repo, "rev-parse", "--verify", "--quiet", f"refs/tags/{version}", check=False)
            if tag.returncode == 0:
                progress.step(f"nix-ld {version}: source {bundle}#{version}")
                return source.load(bundle, cache, rev=version, label=version, expected_hash=expected_hash)
    return None


def _pinned_tree(pin: PinnedSource, archives: tuple[Path, ...], cache: Cache, progress: Progress) -> SourceTree | str:
    """The verified tree of a pinned version, or why it cannot be had (a wrong source raises)."""
    found = source.cached_tree(cache, pin.nar_hash) or _archived_tree(pin.version, archives, cache, progress,
                                                                       pin.nar_hash)
    if found is not None:
        return found
    try:
        archive = _download(pin, cache, progress)
    except (NotFound, ProvisionError) as err:
        where = f" nor in {', '.join(map(str, archives))}" if archives else ""
        return f"{pin.url} could not be fetched ({err or 'not found'}){where}"
    try:
        return source.load(archive, cache, label=pin.version, expected_hash=pin.nar_hash)
    except SourceError:
        archive.unlink(missing_ok=True)  # a damaged download is not kept
        raise


def source_tree(label: str, given: Supply, pins: Mapping[str, PinnedSource], cache: Cache,
                progress: Progress) -> SourceTree | str:
    """nix-ld ``label``'s verified source (supplied with --nix-ld src:..., or the matrix's pin), or why
    there is none (its own tests are built from it: harness/nixld/suite.py)."""
    supplied = given.items.get(label)
    if supplied is not None and supplied.tree is not None:
        return supplied.tree
    pin = pins.get(label)
    if pin is None:
        return f"no source of nix-ld {label}: the matrix pins none and none was supplied; " + how_to_supply(label)
    return _pinned_tree(pin, given.archives, cache, progress)


def _from_source(tree: SourceTree, label: str, tc: Toolchain, cache: Cache,
                 progress: Progress) -> tuple[StorePath, str]:
    built = build(tree, cache, progress, tc)
    origin = f"built from {tree.origin} ({tree.nar_hash}) with {built.toolchain}"
    return binary.install(label, built.executable, cache), origin


def provide(labels: Iterable[str], given: Supply, pins: Mapping[str, PinnedSource], cache: Cache,
            progress: Progress) -> NixLdSet:
    """The nix-ld of every label the run's cells name."""
    store_paths: dict[str, StorePath] = {}
    origins: dict[str, str] = {}
    missing: dict[str, str] = {}
    tc: Toolchain | None = None

    def tools() -> Toolchain:
        nonlocal tc
        tc = tc or toolchain(cache, progress)
        return tc

    for label in sorted(set(labels)):
        supplied = given.items.get(label)
        if supplied is not None and supplied.tree is None:
            store_paths[label] = binary.install(label, supplied.request.path, cache)
            origins[label] = f"supplied build {supplied.request.path}"
            continue
        if supplied is not None and supplied.tree is not None:
            store_paths[label], origins[label] = _from_source(supplied.tree, label, tools(), cache, progress)
            continue
        pin = pins.get(label)
        if pin is None:  # the matrix pins no source: a directory of release archives may still hold it
            tree = _archived_tree(label, given.archives, cache, progress)
            if tree is None:
                where = f" and no archive for it in {', '.join(map(str, given.archives))}" if given.archives else ""
                missing[label] = (f"no nix-ld {label}: none supplied, the matrix pins no source for it{where}; "
                                  + how_to_supply(label, archives=not given.archives))
                continue
            store_paths[label], origins[label] = _from_source(tree, label, tools(), cache, progress)
            continue
        got = _pinned_tree(pin, given.archives, cache, progress)
        if isinstance(got, str):
            missing[label] = f"no nix-ld {label}: its pinned source {got}; " + how_to_supply(label, not given.archives)
            continue
        store_paths[label], origins[label] = _from_source(got, label, tools(), cache, progress)
    return NixLdSet(store_paths, origins, missing)
