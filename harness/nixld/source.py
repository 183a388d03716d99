"""nix-ld's source, from wherever it comes, as one verified tree: generation, version, NAR hash.

Upstream's release archive, an unpacked tree, or a git repository or bundle at a revision all
become a ``SourceTree`` exported into the cache under its NAR hash, so that the same tag verifies
alike from any of them. The generation decides the build: 1.x is C built with meson (one file,
``src/nix-ld.c``), 2.x a Rust crate.
"""

from __future__ import annotations

import enum
import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path

from harness.cache import Cache
from harness.cache import entry as cache_entry
from harness.errors import LdmatrixError
from harness.progress import NullProgress
from harness.provision import nixbase32

from .labels import check_label
from .nar import tree_hash

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar.xz", ".tar.bz2", ".tar")
_TOP_DIR = re.compile(r"^nix-ld-(\d+(?:\.\d+)+)$")
_COMMIT = re.compile(r"^[0-9a-f]{40}$")


class Generation(enum.IntEnum):
    C = 1  # nix-ld 1.x: meson, src/nix-ld.c, vendor/nolibc
    RUST = 2  # nix-ld 2.x: a Rust crate


class SourceError(LdmatrixError):
    """The source is not there, not nix-ld, or does not verify; one line says which."""


@dataclass(frozen=True)
class SourceTree:
    """A nix-ld source tree in the cache, verified, with what was read from it."""

    path: Path  # the tree (read-only by convention)
    nar_hash: str  # sha256-<base64>
    generation: Generation
    version: str  # the cell label: a release version, or git describe's "2.0.5-31-g4c22def"
    origin: str  # where it came from, for messages: "nix-ld-2.0.6.tar.gz", "nix-ld.bundle#4c22def"
    commit: str | None = None  # the git commit, when known


@dataclass(frozen=True)
class _Export:
    tree: Path
    origin: str
    version_hint: str | None  # from the archive's top directory or file name, or the git tag
    commit: str | None


# --- what a tree is ------------------------------------------------------------------------------

def generation_of(tree: Path, origin: str) -> Generation:
    cargo = tree / "Cargo.toml"
    if cargo.is_file() and _cargo_package(cargo, origin).get("name") == "nix-ld":
        return Generation.RUST
    meson = tree / "meson.build"
    if meson.is_file() and (tree / "src" / "nix-ld.c").is_file() and \
            re.search(r"project\(\s*'nix-ld'", meson.read_text(errors="replace")):
        return Generation.C
    raise SourceError(f"{origin}: not nix-ld source (no Cargo.toml of the nix-ld crate, "
                      "no meson.build with src/nix-ld.c)")


def _cargo_package(cargo: Path, origin: str) -> dict:
    try:
        return dict(tomllib.loads(cargo.read_text(errors="replace")).get("package", {}))
    except tomllib.TOMLDecodeError as err:
        raise SourceError(f"{origin}: Cargo.toml is not valid TOML: {err}") from None


def version_of(tree: Path, generation: Generation, export: _Export, label: str | None) -> str:
    """The label of the cells: what the source says it is, checked against a label the user gave."""
    read = export.version_hint
    if read is None and generation is Generation.RUST:
        read = str(_cargo_package(tree / "Cargo.toml", export.origin).get("version", "")) or None
    if read is None and label is None:
        raise SourceError(f"{export.origin}: cannot tell which nix-ld version this is (1.x sources do not "
                          "say; the archive's directory does, nix-ld-1.2.2/): name it, --nix-ld 1.2.2=src:PATH")
    if read is not None and label is not None and read != label:
        raise SourceError(f"{export.origin}: the source is nix-ld {read}, not {label}")
    return check_label(read or label or "", export.origin)


# --- exporting ---------------------------------------------------------------------------------

def _is_archive(path: Path) -> bool:
    return path.is_file() and path.name.endswith(ARCHIVE_SUFFIXES)


def _extract(archive: Path, dest: Path) -> tuple[Path, str | None, str | None]:
    """Unpack safely; returns (tree, its top directory's name, the commit git archive recorded)."""
    try:
        with tarfile.open(archive) as tar:
            commit = tar.pax_headers.get("comment")
            tar.extractall(dest, filter="data")
    except (tarfile.TarError, EOFError, OSError, ValueError) as err:
        first = (str(err).strip().splitlines() or [""])[0].rstrip(":")
        raise SourceError(f"{archive}: not a readable archive ({type(err).__name__}: {first})") from None
    entries = [e for e in dest.iterdir() if e.name != "pax_global_header"]
    if len(entries) == 1 and entries[0].is_dir():
        return entries[0], entries[0].name, commit if commit and _COMMIT.match(commit) else None
    return dest, None, commit if commit and _COMMIT.match(commit) else None


def _hint_from_name(*names: str | None) -> str | None:
    for name in names:
        if not name:
            continue
        for suffix in ARCHIVE_SUFFIXES:
            name = name.removesuffix(suffix)
        match = _TOP_DIR.match(name) or re.match(r"^v?(\d+(?:\.\d+)+)$", name)
        if match:
            return match.group(1)
    return None


def _export_archive(archive: Path, work: Path) -> _Export:
    tree, top, commit = _extract(archive, work)
    return _Export(tree, archive.name, _hint_from_name(top, archive.name), commit)


def _export_tree(src: Path, work: Path) -> _Export:
    dest = work / "tree"
    shutil.copytree(src, dest, symlinks=True, ignore=shutil.ignore_patterns(".git", "target", "build"))
    return _Export(dest, str(src), _hint_from_name(src.name), None)


def git(repo: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    try:
        proc = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                              stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        raise SourceError("git not found: apt-get install -y git") from None
    if check and proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["failed"])[-1]
        raise SourceError(f"{repo}: git {' '.join(args[:2])}: {last}")
    return proc


def is_git_source(path: Path) -> bool:
    return path.name.endswith(".bundle") or (path / ".git").exists() or (path / "HEAD").is_file()


def git_repository(path: Path, cache: Cache) -> Path:
    """A repository to read: the path itself, or a bare clone of a bundle in the cache (made once)."""
    if not path.name.endswith(".bundle"):
        return path
    from harness.cache.entry import file_sha256

    key = file_sha256(path)[:32]
    repo = cache.dir("nix-ld") / "git" / f"{key}.git"
    if not (repo / "HEAD").is_file():
        repo.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{key}-", dir=repo.parent))
        try:
            proc = subprocess.run(["git", "clone", "--quiet", "--bare", str(path.resolve()), str(tmp / "r")],
                                  capture_output=True, text=True, stdin=subprocess.DEVNULL)
            if proc.returncode != 0:
                last = (proc.stderr.strip().splitlines() or ["failed"])[-1]
                raise SourceError(f"{path}: not a readable git bundle ({last})")
            try:
                os.rename(tmp / "r", repo)
            except OSError:
                if not (repo / "HEAD").is_file():
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return repo


def resolve_revision(repo: Path, rev: str, origin: str) -> str:
    proc = git(repo, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}", check=False)
    if proc.returncode != 0:
        tags = git(repo, "tag", "--sort=version:refname", check=False).stdout.split()
        raise SourceError(f"{origin}: unknown revision {rev!r} (tags: {', '.join(tags[-8:]) or 'none'})")
    return proc.stdout.strip()


def describe(repo: Path, commit: str) -> str:
    """The tag naming ``commit``, else git describe's ``2.0.5-31-g4c22def``, else ``0-g<short>``."""
    for args in (("describe", "--tags", "--exact-match", commit), ("describe", "--tags", "--abbrev=7", commit)):
        proc = git(repo, *args, check=False)
        if proc.returncode == 0 and proc.stdout.strip():
            return proc.stdout.strip().removeprefix("v")
    return f"0-g{commit[:7]}"


def _export_git(path: Path, rev: str, work: Path, cache: Cache) -> _Export:
    repo = git_repository(path, cache)
    origin = f"{path.name}#{rev}"
    commit = resolve_revision(repo, rev, origin)
    archive = work / "git.tar"
    with archive.open("wb") as out:
        proc = subprocess.run(["git", "-C", str(repo), "archive", "--format=tar", commit], stdout=out,
                              stderr=subprocess.PIPE, text=False)
    if proc.returncode != 0:
        raise SourceError(f"{origin}: git archive failed: {proc.stderr.decode(errors='replace').strip()}")
    dest = work / "tree"
    dest.mkdir()
    tree, _, _ = _extract(archive, dest)
    archive.unlink()
    return _Export(tree, origin, describe(repo, commit), commit)


# --- the cache -----------------------------------------------------------------------------------

AREA = "nix-ld/src"


def _entry(cache: Cache, nar_hash: str) -> cache_entry.Entry:
    return cache_entry.Entry(cache, AREA, nixbase32.digest("nix-ld-source", nar_hash))


def _made_from(nar_hash: str) -> dict:
    return {"kind": "nix-ld-source", "nar_hash": nar_hash}


def cached_tree(cache: Cache, nar_hash: str) -> SourceTree | None:
    """A tree exported earlier under ``nar_hash`` that still matches its manifest (a damaged one is
    never used: the source is exported again and the entry rebuilt)."""
    entry = _entry(cache, nar_hash)
    if not entry.path.is_dir() or cache_entry.check(entry, _made_from(nar_hash)) is not None:
        return None
    try:
        info = json.loads((entry.path / "source.json").read_text())
        return SourceTree(entry.path / "tree", info["nar_hash"], Generation(info["generation"]), info["version"],
                          info["origin"], info.get("commit"))
    except (OSError, ValueError, KeyError):
        return None


def _store(cache: Cache, export: _Export, nar_hash: str, generation: Generation, version: str) -> SourceTree:
    entry = _entry(cache, nar_hash)

    def fill(out: Path, scratch: Path) -> None:
        shutil.move(str(export.tree), out / "tree")
        (out / "source.json").write_text(json.dumps(
            {"nar_hash": nar_hash, "generation": int(generation), "version": version, "origin": export.origin,
             "commit": export.commit}, indent=2) + "\n")

    cache_entry.ensure(entry, _made_from(nar_hash), fill, NullProgress(), f"nix-ld {version} source")
    return cached_tree(cache, nar_hash) or SourceTree(entry.path / "tree", nar_hash, generation, version,
                                                      export.origin, export.commit)


def load(path: Path, cache: Cache, *, rev: str | None = None, label: str | None = None,
         expected_hash: str | None = None) -> SourceTree:
    """Export, identify and verify one source; the tree lands in the cache keyed by its NAR hash."""
    path = path.expanduser()
    if not path.exists():
        raise SourceError(f"{path}: no such file or directory")
    scratch = cache.dir(AREA)
    with tempfile.TemporaryDirectory(prefix=f".tmp-export-pid{os.getpid()}-", dir=scratch) as tmp:
        work = Path(tmp)
        if rev is not None:
            if not is_git_source(path):
                raise SourceError(f"{path}: a revision (#{rev}) needs a git repository or bundle")
            export = _export_git(path, rev, work, cache)
        elif path.name.endswith(".bundle"):
            raise SourceError(f"{path}: a git bundle needs a revision: src:{path}#TAG-OR-COMMIT")
        elif _is_archive(path):
            export = _export_archive(path, work)
        elif path.is_dir():
            export = _export_tree(path, work)
        else:
            raise SourceError(f"{path}: not a source archive ({', '.join(ARCHIVE_SUFFIXES)}), "
                              "a source tree or a git repository")
        nar_hash = tree_hash(export.tree)
        if expected_hash is not None and nar_hash != expected_hash:
            raise SourceError(f"{export.origin}: NAR hash {nar_hash} does not match the pinned {expected_hash}; "
                              "a damaged or different archive")
        generation = generation_of(export.tree, export.origin)
        version = version_of(export.tree, generation, export, label)
        return _store(cache, export, nar_hash, generation, version)
