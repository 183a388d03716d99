"""One checked cache entry: a directory made atomically, with a manifest of what it was made from
and of every file it holds.

An entry is a directory in an area of the cache (``store/<basename>``, ``buildroots/<suite>-<digest>``,
``builds/<name>-<suite>-<digest>``). Its manifest lives apart from it, under
``manifests/v1/<area>/<name>.json``, so the entry's content (bind-mounted into cells, imported into
images) is exactly what was built, and caches made before manifests existed keep working.

    ensure(entry, made_from, fill, progress)   the entry, checked cheaply; made, rebuilt or adopted if needed
    temp_dir, publish, set_aside               the making itself: beside the entries, renamed into place whole,
                                               a damaged one renamed away (also harness/cache/installed.py's)
    check(entry, made_from)                    cheap: the file list, sizes, modes, mtimes, link targets
    verify(entry)                              full: also the sha256 of every file (``ldmatrix cache verify``)
    sweep(directory, progress)                 remove half-built ``.tmp-*`` entries whose run is gone

A manifest is always a scan of the entry as it is in place (a rename keeps mtimes), so whoever wrote
it last describes the same directory. Making, replacing and adopting take a lock per entry; the
cheap check takes none, and on a mismatch re-checks under the lock before it acts.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import stat
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from harness.cache import Cache
from harness.cache.remove import remove_tree
from harness.errors import LdmatrixError, ProvisionError
from harness.progress import Progress

FORMAT = 1
MANIFESTS = "manifests/v1"
CHUNK = 1 << 20
STALE_AGE = 6 * 3600.0  # a temp entry whose owner cannot be told is removed after this many seconds
_PID = re.compile(r"-pid(\d+)-|-(\d+)$")

Fill = Callable[[Path, Path], None]  # fill(out, scratch): put the entry's content into ``out``


class Damaged(ProvisionError):
    """A cache entry does not match its manifest (or has none where one is required)."""


@dataclass(frozen=True)
class FileRecord:
    """One path in an entry: ``kind`` is f(ile), d(irectory), l(ink) or o(ther: a device, a fifo)."""

    path: str  # relative to the entry, "." for the entry itself
    kind: str
    mode: int
    size: int
    mtime_ns: int
    sha256: str = ""  # files only
    target: str = ""  # links only

    def row(self) -> list:
        return [self.path, self.kind, self.mode, self.size, self.mtime_ns, self.sha256, self.target]

    def content(self) -> tuple:
        """What must be equal for two builds to be the same (mtimes aside)."""
        return (self.path, self.kind, self.mode, self.size, self.sha256, self.target)


@dataclass(frozen=True)
class Manifest:
    made_from: dict
    files: tuple[FileRecord, ...]
    created: float

    @property
    def count(self) -> int:
        return len(self.files)

    @property
    def bytes(self) -> int:
        return sum(f.size for f in self.files if f.kind == "f")

    def to_json(self) -> dict:
        return {"format": FORMAT, "made_from": self.made_from, "created": self.created, "count": self.count,
                "bytes": self.bytes, "files": [f.row() for f in self.files]}


@dataclass(frozen=True)
class Entry:
    """A cache entry: ``cache.root/<area>/<name>``, its manifest and its lock."""

    cache: Cache
    area: str  # "store", "buildroots", "builds"
    name: str

    @property
    def path(self) -> Path:
        return self.cache.dir(self.area) / self.name

    @property
    def manifest_path(self) -> Path:
        return self.cache.dir(f"{MANIFESTS}/{self.area}") / f"{self.name}.json"

    @property
    def lock_path(self) -> Path:
        return self.cache.dir(f"{MANIFESTS}/{self.area}") / f"{self.name}.lock"

    def __str__(self) -> str:
        return str(self.path)


# -- scanning --------------------------------------------------------------------------------------

def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def _record(path: str, rel: str, st: os.stat_result, hash_files: bool) -> FileRecord:
    mode = stat.S_IMODE(st.st_mode)
    if stat.S_ISLNK(st.st_mode):
        return FileRecord(rel, "l", mode, 0, st.st_mtime_ns, target=os.readlink(path))
    if stat.S_ISDIR(st.st_mode):
        return FileRecord(rel, "d", mode, 0, 0)
    if stat.S_ISREG(st.st_mode):
        return FileRecord(rel, "f", mode, st.st_size, st.st_mtime_ns, file_sha256(Path(path)) if hash_files else "")
    return FileRecord(rel, "o", stat.S_IFMT(st.st_mode) | mode, 0, 0)


def _walk(top: str) -> Iterator[tuple[str, str, os.stat_result]]:
    """(path, relative path, lstat) of everything under ``top`` (itself first as "."), in directory order."""
    yield top, ".", os.lstat(top)
    stack = [(top, "")]
    while stack:
        directory, prefix = stack.pop()
        with os.scandir(directory) as it:
            entries = list(it)
        subdirs = []
        for e in entries:
            rel = prefix + e.name
            st = e.stat(follow_symlinks=False)
            yield e.path, rel, st
            if stat.S_ISDIR(st.st_mode):
                subdirs.append((e.path, rel + "/"))
        stack.extend(subdirs)


def scan(top: Path, hash_files: bool = True, ordered: bool = False) -> tuple[FileRecord, ...]:
    records = (_record(path, rel, st, hash_files) for path, rel, st in _walk(str(top)))
    return tuple(sorted(records, key=lambda r: r.path)) if ordered else tuple(records)


# -- manifests -------------------------------------------------------------------------------------

def read_manifest(entry: Entry) -> Manifest | None:
    """The entry's manifest, None when it has none; Damaged when it cannot be read."""
    try:
        raw = json.loads(entry.manifest_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as err:
        raise Damaged(f"{entry}: its manifest {entry.manifest_path} cannot be read ({err})") from None
    try:
        if raw["format"] != FORMAT:
            raise ValueError(f"format {raw['format']!r}")
        files = tuple(FileRecord(str(p), str(k), int(m), int(s), int(t), str(h), str(g))
                      for p, k, m, s, t, h, g in raw["files"])
        return Manifest(dict(raw["made_from"]), files, float(raw.get("created", 0)))
    except (KeyError, TypeError, ValueError) as err:
        raise Damaged(f"{entry}: its manifest {entry.manifest_path} is malformed ({err})") from None


def write_manifest(entry: Entry, manifest: Manifest) -> None:
    """Replace the manifest atomically."""
    target = entry.manifest_path
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(manifest.to_json(), f, separators=(",", ":"))
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# -- checks ----------------------------------------------------------------------------------------

def _describe(rec: FileRecord) -> str:
    if rec.kind == "f":
        return f"a file of {rec.size} bytes, mode {rec.mode:o}"
    if rec.kind == "l":
        return f"a link to {rec.target}"
    return {"d": "a directory", "o": "a special file"}[rec.kind] + f", mode {rec.mode:o}"


def compare(want: tuple[FileRecord, ...], have: tuple[FileRecord, ...], *, mtimes: bool,
            hashes: bool, volatile: tuple[str, ...] = ()) -> str | None:
    """The first difference between two scans, as a phrase; None when they agree.

    ``volatile`` paths (a build's log) only have to exist in both.
    """
    have_by = {r.path: r for r in have}
    want_paths = set()
    for w in want:
        want_paths.add(w.path)
        h = have_by.get(w.path)
        if h is None:
            return f"{w.path} is missing"
        if w.path in volatile:
            continue
        if (w.kind, w.mode, w.target) != (h.kind, h.mode, h.target) or (w.kind == "f" and w.size != h.size):
            return f"{w.path} is {_describe(h)}, the manifest says {_describe(w)}"
        if mtimes and w.kind in "fl" and w.mtime_ns != h.mtime_ns:
            return f"{w.path} was modified after the entry was made"
        if hashes and w.kind == "f" and w.sha256 != h.sha256:
            return f"{w.path}: sha256 {h.sha256[:16]}…, the manifest says {w.sha256[:16]}…"
    extra = sorted(set(have_by) - want_paths)
    if extra:
        return f"{extra[0]} is not in the manifest" + (f" (and {len(extra) - 1} more)" if len(extra) > 1 else "")
    return None


def _problem(entry: Entry, made_from: Mapping | None, full: bool) -> str | None:
    manifest = read_manifest(entry)
    if manifest is None:
        return "it has no manifest"
    if made_from is not None and manifest.made_from != dict(made_from):
        keys = sorted(k for k in set(manifest.made_from) | set(made_from)
                      if manifest.made_from.get(k) != made_from.get(k))
        return (f"it was made from {keys[0]}={manifest.made_from.get(keys[0])!r}, "
                f"expected {made_from.get(keys[0])!r}")
    if not entry.path.is_dir():
        return "it is missing"
    try:
        have = scan(entry.path, hash_files=full)
    except OSError as err:
        return f"it cannot be read ({err})"
    return compare(manifest.files, have, mtimes=not full, hashes=full)


def check(entry: Entry, made_from: Mapping | None = None) -> str | None:
    """Cheap: the file list, types, modes, sizes, mtimes and link targets against the manifest."""
    try:
        return _problem(entry, made_from, full=False)
    except Damaged as err:
        return str(err).split(": ", 1)[1]


def verify(entry: Entry) -> str | None:
    """Full: as ``check``, and the sha256 of every file (mtimes are not required to match)."""
    try:
        return _problem(entry, None, full=True)
    except Damaged as err:
        return str(err).split(": ", 1)[1]


# -- making ----------------------------------------------------------------------------------------

@contextmanager
def locked(entry: Entry) -> Iterator[None]:
    with open(entry.lock_path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def temp_dir(directory: Path, name: str) -> Path:
    """A private work directory beside the entries, named after its owner's pid (see ``sweep``)."""
    return Path(tempfile.mkdtemp(dir=directory, prefix=f".tmp-{name}-pid{os.getpid()}-"))


def publish(made: Path, final: Path) -> bool:
    """Rename a whole entry into its place, atomically; False when another maker's entry is there already."""
    try:
        os.rename(made, final)
    except OSError:
        return False
    return True


def set_aside(final: Path) -> None:
    """Take a damaged entry from its name at once (a rename: no user sees half of it), then remove it.
    Another thread or run that moved it first wins quietly; ``sweep`` removes what a killed run left."""
    doomed = final.parent / f".damaged-{final.name}-pid{os.getpid()}-{threading.get_ident()}"
    try:
        os.rename(final, doomed)
    except OSError:
        return
    remove_tree(doomed)


def mounts_under(path: Path) -> list[str]:
    prefix = str(path.resolve()) + "/"
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return []
    return [f.split()[4] for f in lines if (f.split()[4] + "/").startswith(prefix)]


def discard(path: Path) -> str:
    """Remove ``path`` unless something is still mounted in it; '' or why it was left alone."""
    if not path.exists() and not path.is_symlink():
        return ""
    mounts = mounts_under(path)
    if mounts:
        return f"left {path} alone: {mounts[0]} is still mounted"
    remove_tree(path)
    return ""


def _build(entry: Entry, fill: Fill, work: Path) -> Path:
    out, scratch = work / "out", work / "scratch"
    out.mkdir()
    scratch.mkdir()
    fill(out, scratch)
    return out


def _place(entry: Entry, out: Path, made_from: Mapping, work: Path) -> None:
    """Move ``out`` into place (a damaged entry moved aside first) and record its manifest."""
    final = entry.path
    if final.exists() or final.is_symlink():
        os.rename(final, work / "replaced")
    os.rename(out, final)  # under the entry's lock: nobody else makes it
    write_manifest(entry, Manifest(dict(made_from), scan(final, ordered=True), time.time()))


def create(entry: Entry, made_from: Mapping, fill: Fill) -> None:
    """Build the entry with ``fill`` in a private temp dir and move it into place with its manifest.

    Replaces whatever is at the entry's path; call under ``locked(entry)``.
    """
    work = temp_dir(entry.path.parent, entry.name)
    try:
        out = _build(entry, fill, work)
        _place(entry, out, made_from, work)
    except LdmatrixError as err:
        hint = discard(work)
        raise type(err)(f"{err}; {hint}" if hint else str(err)) from None
    except BaseException:
        discard(work)
        raise
    discard(work)


Adopt = Callable[[Entry], "str | None"]  # a check of an entry made before manifests; None: fine


def ensure(entry: Entry, made_from: Mapping, fill: Fill, progress: Progress, what: str, *,
           adopt: Adopt | None = None, rebuild: bool = True, volatile: tuple[str, ...] = ()) -> Path:
    """The entry, checked cheaply; made if missing, rebuilt if damaged (or refused: ``rebuild=False``).

    An entry without a manifest (made by an older ldmatrix) is adopted once: ``adopt`` checks it,
    or by default a fresh build is compared with it (``volatile`` paths aside); it is kept (and a
    manifest written) when it agrees, replaced otherwise.
    """
    if entry.path.is_dir() and check(entry, made_from) is None:
        return entry.path
    with locked(entry):
        exists = entry.path.is_dir()
        problem = check(entry, made_from) if exists else None
        if exists and problem is None:  # another run fixed or made it meanwhile
            return entry.path
        if not exists:
            progress.step(f"making {what}")
            create(entry, made_from, fill)
        elif problem == "it has no manifest":
            _adopt(entry, made_from, fill, progress, what, adopt, volatile)
        elif not rebuild:
            raise Damaged(f"{what} at {entry.path} is damaged: {problem}; remove it "
                          f"(rm -rf {entry.path}) and run again to rebuild it")
        else:
            progress.step(f"{what} at {entry.path} is damaged ({problem}); rebuilding it")
            create(entry, made_from, fill)
    return entry.path


def _adopt(entry: Entry, made_from: Mapping, fill: Fill, progress: Progress, what: str,
           adopt: Adopt | None, volatile: tuple[str, ...]) -> None:
    if adopt is not None:
        progress.step(f"{what}: made before manifests; checking it once")
        problem = adopt(entry)
        if problem is not None:
            raise Damaged(f"{what} at {entry.path} is damaged: {problem}; remove it "
                          f"(rm -rf {entry.path}) and run again to rebuild it")
        write_manifest(entry, Manifest(dict(made_from), scan(entry.path, ordered=True), time.time()))
        return
    progress.step(f"{what}: made before manifests; comparing it with a fresh build once")
    work = temp_dir(entry.path.parent, entry.name)
    try:
        out = _build(entry, fill, work)
        fresh, old = scan(out), scan(entry.path, ordered=True)
        difference = compare(fresh, old, mtimes=False, hashes=True, volatile=(".", *volatile))
        if difference is None:
            write_manifest(entry, Manifest(dict(made_from), old, time.time()))
        else:
            progress.step(f"{what} at {entry.path} differs from a fresh build ({difference}); replacing it")
            _place(entry, out, made_from, work)
    finally:
        discard(work)


# -- stale temp entries ----------------------------------------------------------------------------

def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stale(path: Path, now: float | None = None) -> bool:
    """A ``.tmp-*`` entry left by a run that is gone (its pid is dead), or too old to be anyone's."""
    now = time.time() if now is None else now
    try:
        age = now - path.lstat().st_mtime
    except FileNotFoundError:
        return False
    match = _PID.search(path.name)
    if match:
        pid = int(match.group(1) or match.group(2))
        if pid != os.getpid() and not _alive(pid):
            return True
    return age > STALE_AGE


def sweep(directory: Path, progress: Progress) -> list[Path]:
    """Remove the half-built entries (``.tmp-*``, ``*.part``) of runs that are gone; returns them."""
    removed = []
    try:
        candidates = [p for p in directory.iterdir()
                      if p.name.startswith((".tmp-", ".damaged-"))
                      or (p.name.startswith(".") and p.name.endswith(".part"))]
    except FileNotFoundError:
        return []
    for path in sorted(candidates):
        if not stale(path):
            continue
        hint = discard(path)
        if hint:
            progress.step(f"half-built {path.name}: {hint}")
            continue
        removed.append(path)
    if removed:
        progress.step(f"removed {len(removed)} half-built entr{'y' if len(removed) == 1 else 'ies'} "
                      f"of killed runs in {directory}")
    return removed


AREAS = ("store", "buildroots", "builds", "nix-ld/src", "nix-ld/builds", "nix-ld/crates", "artifacts")
SHARED_AREAS = ("patched", "overlays")  # harness/cache/installed.py's entries, with their manifest inside


def sweep_cache(cache: Cache, progress: Progress) -> list[Path]:
    out: list[Path] = []
    for area in (*AREAS, "downloads", *SHARED_AREAS):
        out += sweep(cache.dir(area), progress)
    return out


def entries(cache: Cache, area: str) -> list[Entry]:
    """The entries of an area (directories not starting with '.')."""
    directory = cache.dir(area)
    return [Entry(cache, area, p.name) for p in sorted(directory.iterdir())
            if p.is_dir() and not p.is_symlink() and not p.name.startswith(".")]

