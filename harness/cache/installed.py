"""What cells run and see, made once and shared: patched binaries and root overlays, by content.

A cell's binary is a reproducer as built, with the interpreter and RUNPATH its strategy sets.
The same (built sha256, interpreter, RUNPATH) gives the same file for every cell of every run,
so it is made once, under ``<cache>/patched/<key>/``, and bound read-only into each cell that
runs it; a cell's folder names it by path and sha256 instead of holding a copy. A binary left
as built is bound from the build cache itself. The links a strategy adds to the root
(``/lib64/ld-linux-x86-64.so.2`` -> nix-ld, ...) are a directory tree under
``<cache>/overlays/<key>/`` the same way.

Entries are made as every cache entry is (harness/cache/entry.py: ``temp_dir``, ``publish``,
``set_aside``): in a ``.tmp-`` directory beside them and renamed into place, so one that exists is
whole; a damaged one is renamed away before it is made again. Each records what it was made from
in its own ``entry.json`` (the other areas keep manifests apart, under ``manifests/``). Every use
checks it, as the store paths are checked: a binary's sha256 against its manifest (hashed once per
process, and again whenever its inode, size, mtime or ctime moved: a byte flipped with its size and
mtime kept is seen), nothing in the entry but the binary and its manifest, and the manifest being
the one of what is wanted; an overlay's every path, link target and file digest, and nothing else
in it. A damaged entry is made again, with one line on stderr saying what was wrong; ``ldmatrix
cache verify`` checks both areas. ``unchanged`` tells a session whether a binary changed while its cell ran.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from harness.cache import Cache
from harness.cache import entry as cache_entry
from harness.cache.entry import SHARED_AREAS, file_sha256
from harness.cache.remove import remove_tree
from harness.errors import LdmatrixError
from harness.loader.patchelf import patch
from harness.model import BuiltBinary, InstalledBinary, Link, Mount

MANIFEST = "entry.json"
AREAS = SHARED_AREAS
_checked: dict[Path, tuple[tuple[int, ...], str]] = {}  # file -> (its identity, its sha256) as hashed here
_checked_lock = threading.Lock()
_overlays: dict[tuple, tuple[tuple[Mount, ...], Path, tuple]] = {}  # (cache, links, files) -> (mounts, entry, stamp)

Problem = Callable[[Path, dict], "str | None"]  # what is wrong with an entry (None: nothing)


def _identity(st: os.stat_result) -> tuple[int, ...]:
    """What changes whenever a file's content can have: ctime cannot be set back by a user."""
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def verified_sha256(path: Path, *, fresh: bool = False) -> str:
    """``path``'s sha256, hashed again unless this process hashed it and it has not moved since."""
    st = path.stat()
    identity = _identity(st)
    with _checked_lock:
        known = _checked.get(path)
    if known is not None and known[0] == identity and not fresh:
        return known[1]
    digest = file_sha256(path)
    if _identity(path.stat()) == identity:  # not changed while it was read
        with _checked_lock:
            _checked[path] = (identity, digest)
    return digest


def _key(fields: dict) -> str:
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:32]


def _notice(message: str) -> None:
    print(f"ldmatrix: {message}", file=sys.stderr, flush=True)


def _entry(root: Path, key: str, make, problem: Problem, what: str) -> tuple[Path, dict]:
    """The entry ``root/key``: made by ``make(tmp) -> manifest`` unless it is there and ``problem`` finds
    nothing wrong with it (checked on every use)."""
    final = root / key
    existed = final.exists()  # before reading: an entry appears by rename with its manifest already in it
    manifest = read_manifest(final)
    if existed:
        wrong = "its entry.json cannot be read" if manifest is None else problem(final, manifest)
        if manifest is not None and wrong is None:
            return final, manifest
        _notice(f"{what} {final} is damaged ({wrong}); making it again")
        cache_entry.set_aside(final)
    tmp = cache_entry.temp_dir(root, key)  # as every entry is made: beside it, named after this run
    try:
        manifest = make(tmp)
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
        tmp.chmod(0o755)
        if not cache_entry.publish(tmp, final):
            manifest = read_manifest(final)  # a concurrent maker won the race: use its entry
            wrong = "its entry.json cannot be read" if manifest is None else problem(final, manifest)
            if manifest is None or wrong is not None:
                raise LdmatrixError(f"{what} {final} is damaged ({wrong}) and could not be made again")
    finally:
        remove_tree(tmp)
    return final, manifest


def read_manifest(entry: Path) -> dict | None:
    try:
        manifest = json.loads((entry / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) else None


def _extra(entry: Path, expected: set[str]) -> str | None:
    """A path in ``entry`` that is not one of ``expected`` (relative; directories on the way count)."""
    for parent, dirs, files in os.walk(entry):
        for name in (*dirs, *files):
            rel = os.path.relpath(os.path.join(parent, name), entry)
            if rel not in expected:
                return f"{rel} is not in the entry's manifest"
    return None


def _parents(rel: str) -> set[str]:
    parts = rel.split("/")
    return {"/".join(parts[:i]) for i in range(1, len(parts))}


# ------------------------------------------------------------------------------- binaries
def _patch(binary: BuiltBinary, name: str, interpreter: str | None, runpath: tuple[str, ...]):
    def make(tmp: Path) -> dict:
        dest = tmp / name
        shutil.copyfile(binary.path, dest)
        patch(dest, interpreter, list(runpath))
        dest.chmod(0o555)
        st = dest.stat()
        return {"file": name, "built": str(binary.path), "built_sha256": binary.sha256, "interpreter": interpreter,
                "runpath": list(runpath), "sha256": file_sha256(dest), "size": st.st_size,
                "mtime_ns": st.st_mtime_ns}
    return make


def binary_problem(entry: Path, manifest: dict, *, fresh: bool = False) -> str | None:
    """What is wrong with a patched binary's entry: its manifest not of its key, a path too many, a
    file that is not the one made (type, size, sha256)."""
    try:
        name = str(manifest["file"])
        made_from = {"built_sha256": manifest["built_sha256"], "interpreter": manifest["interpreter"],
                     "runpath": list(manifest["runpath"])}
        if _key(made_from) != entry.name:
            return "its entry.json describes another binary than its name says"
        extra = _extra(entry, {name, MANIFEST})
        if extra:
            return extra
        st = (entry / name).lstat()
        if not stat.S_ISREG(st.st_mode) or st.st_size != manifest["size"]:
            return f"{name} is not the file of {manifest['size']} bytes that was made"
        digest = verified_sha256(entry / name, fresh=fresh)
        if digest != manifest["sha256"]:
            return f"{name}: sha256 {digest[:16]}…, made as {str(manifest['sha256'])[:16]}…"
    except (OSError, KeyError, TypeError, ValueError) as err:
        return f"it cannot be checked ({type(err).__name__}: {err})"
    return None


def install(binary: BuiltBinary, path: str, interpreter: str | None, runpath: Iterable[str],
            cache: Cache) -> InstalledBinary:
    """``binary`` with this interpreter and RUNPATH, shared read-only; ``path`` is where the cell sees it.

    The file is checked now (see above): its sha256 in the result is that of the file the cell
    will run. A binary left as built is the build cache's own file, and must still be what was built."""
    runpath = tuple(runpath)
    if not interpreter and not runpath:  # as built: the build cache's own file
        digest = verified_sha256(binary.path)
        if digest != binary.sha256:
            raise LdmatrixError(f"{binary.path} is damaged: sha256 {digest[:16]}…, built as {binary.sha256[:16]}… "
                                "(`ldmatrix cache verify` names what else is; remove it to build it again)")
        return InstalledBinary(path, binary.path, digest, binary.sha256, None, (), binary.reproducer)
    key = _key({"built_sha256": binary.sha256, "interpreter": interpreter, "runpath": list(runpath)})
    entry, manifest = _entry(cache.dir("patched"), key, _patch(binary, binary.reproducer, interpreter, runpath),
                             binary_problem, "patched binary")
    return InstalledBinary(path, entry / manifest["file"], manifest["sha256"], binary.sha256, interpreter, runpath,
                           binary.reproducer)


def unchanged(binaries: Iterable[InstalledBinary]) -> str | None:
    """Whether each binary is still the file it was when its cell was prepared; else which changed."""
    for b in binaries:
        try:
            digest = verified_sha256(b.host_path)
        except OSError as err:
            return f"{b.host_path} ({b.path}) is gone: {err.strerror}"
        if digest != b.sha256:
            return (f"{b.host_path} ({b.path}) changed while the cell ran: sha256 {digest[:16]}…, "
                    f"{b.sha256[:16]}… before")
    return None


# ------------------------------------------------------------------------------- overlays
def overlay_problem(entry: Path, manifest: dict, *, fresh: bool = False) -> str | None:
    """What is wrong with an overlay: a link or file missing or not as made, or a path too many."""
    try:
        links = [(str(path), str(target)) for path, target in manifest["links"]]
        files = [(str(path), str(digest)) for path, digest in manifest.get("files", [])]
        expected = {MANIFEST, "root"}
        for path, _ in (*links, *files):
            rel = "root/" + path.lstrip("/")
            expected |= {rel, *_parents(rel)}
        extra = _extra(entry, expected)
        if extra:
            return extra
        for path, target in links:
            if os.readlink(entry / "root" / path.lstrip("/")) != target:
                return f"{path} is no longer a link to {target}"
        for path, digest in files:
            host = entry / "root" / path.lstrip("/")
            if not stat.S_ISREG(host.lstat().st_mode) or verified_sha256(host, fresh=fresh) != digest:
                return f"{path} is not the file that was made"
    except (OSError, KeyError, TypeError, ValueError) as err:
        return f"it cannot be checked ({type(err).__name__}: {err})"
    return None


def overlay_mounts(links: Iterable[Link], cache: Cache, files: Mapping[str, str] | None = None) -> list[Mount]:
    """The links and files (``/etc/profile``) as a shared tree, one read-only mount per top-level
    directory (``/lib64``, ``/run``, ``/etc``)."""
    pairs = sorted({link.path: link.target for link in links}.items())  # a later link to a path wins
    texts = sorted((files or {}).items())
    if not pairs and not texts:
        return []
    memo = (cache.root, tuple(pairs), tuple(texts))
    with _checked_lock:
        known = _overlays.get(memo)
    # most cells of a run share their overlay: once checked, it is used again while nothing in it has
    # changed since (every path's inode, size, mtime and ctime: a planted file changes its directory's)
    if known is not None and _unchanged(known[2]):
        return list(known[0])

    def make(tmp: Path) -> dict:
        for path, target in pairs:
            host = tmp / "root" / path.lstrip("/")
            host.parent.mkdir(parents=True, exist_ok=True)
            host.symlink_to(target)
        for path, text in texts:
            host = tmp / "root" / path.lstrip("/")
            host.parent.mkdir(parents=True, exist_ok=True)
            host.write_text(text)
        return wanted

    wanted = {"links": [list(p) for p in pairs],
              "files": [[path, hashlib.sha256(text.encode()).hexdigest()] for path, text in texts]}

    def problem(entry: Path, manifest: dict) -> str | None:
        if {k: manifest.get(k) for k in wanted} != wanted:
            return "its entry.json describes other links or files than its name says"
        return overlay_problem(entry, manifest)

    entry, _ = _entry(cache.dir("overlays"), _key({"links": pairs, "files": texts}), make, problem, "overlay")
    tops = sorted({path.lstrip("/").split("/", 1)[0] for path, _ in (*pairs, *texts)})
    mounts = [Mount(entry / "root" / top, f"/{top}") for top in tops]
    with _checked_lock:
        _overlays[memo] = (tuple(mounts), entry, _stamp(entry))
    return mounts


def _stamp(top: Path) -> tuple:
    """Every path under ``top`` with what changes when it is added to (a directory's mtime), removed,
    replaced or written: its inode, size, mtime and ctime."""
    out = []
    for parent, dirs, files in os.walk(top):
        for name in (".", *dirs, *files):
            path = os.path.join(parent, name)
            st = os.lstat(path)
            out.append((path, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns))
    return tuple(out)


def _unchanged(stamp: tuple) -> bool:
    """Each path of ``stamp`` as it was (one lstat each, no directory read again)."""
    try:
        for path, ino, size, mtime, ctime in stamp:
            st = os.lstat(path)
            if (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns) != (ino, size, mtime, ctime):
                return False
    except OSError:
        return False
    return True
