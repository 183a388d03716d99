"""A cell's whole /nix/store as one directory, so that the sandbox binds it once.

bubblewrap's time grows faster than the number of its mounts (each bind reads the mount table it
has grown so far): a NixOS-like root of 50-odd store paths, each a bind of its own, was most of
what a cell cost. So the store paths a cell sees are laid out once per distinct set as a tree of
hard links, ``<cache>/farms/<key>/<basename>/...``, and bound read-only at /nix/store: the same
paths, the same files (the same inodes), nothing more, in one mount.

The key names each path's basename, host path and the inode of its top directory: an entry the
cache made again (damaged, rebuilt) is another inode, so another farm. A farm is made in a
``.tmp-`` directory and renamed into place, so one that exists is whole; one made by another run is
compared with its store paths before this process first uses it (the same names, every file the
same inode: a file planted, removed or replaced in it would be seen by the cells, while the
entries' own checks pass), and a farm that differs is made again. Where hard links cannot
be made (a store path on another file system, such as a Nix store's for ``--nixpkgs``), there is
no farm and the runner binds each path as before.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import sys
import tempfile
import threading
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

from harness.cache import Cache

AREA = "farms"

_lock = threading.Lock()
_known: dict[tuple[Path, str], Path | None] = {}  # (cache root, key) -> the farm, or None: cannot be made here
_by_entries: dict[tuple, Path | None] = {}  # (cache root, the pairs as given) -> the farm
_key_locks: dict[str, threading.Lock] = {}
_swept: set[Path] = set()


def _key(entries: list[tuple[str, Path]]) -> str:
    h = hashlib.sha256()
    for name, host in entries:
        st = os.stat(host)
        h.update(f"{name}\0{host}\0{st.st_dev}\0{st.st_ino}\n".encode())
    return h.hexdigest()[:32]


def _link_tree(src: Path, dst: Path) -> None:
    """``dst`` as ``src``: its directories made again (same modes), everything else hard-linked."""
    if not src.is_dir() or src.is_symlink():
        os.link(src, dst, follow_symlinks=False)
        return
    modes: list[tuple[str, int]] = []
    for parent, dirs, files in os.walk(src):
        rel = os.path.relpath(parent, src)
        target = dst if rel == "." else dst / rel
        os.mkdir(target)
        modes.append((str(target), stat.S_IMODE(os.lstat(parent).st_mode)))
        for name in files:
            os.link(os.path.join(parent, name), target / name, follow_symlinks=False)
        for name in list(dirs):  # a link to a directory is a link, not a directory to walk
            if os.path.islink(os.path.join(parent, name)):
                os.link(os.path.join(parent, name), target / name, follow_symlinks=False)
                dirs.remove(name)
    for path, mode in reversed(modes):  # deepest first: a read-only directory is filled already
        os.chmod(path, mode)


def _same_tree(made: str, src: str) -> bool:
    """Whether the directory ``made`` holds what ``src`` holds: the same names, each directory alike,
    everything else the same inode (a hard link). One directory read per directory: the inode a
    directory read gives is what an lstat would, and an lstat decides where the two disagree."""
    with os.scandir(src) as it:
        want = {e.name: e for e in it}
    with os.scandir(made) as it:
        have = {e.name: e for e in it}
    if want.keys() != have.keys():
        return False
    for name, w in want.items():
        h = have[name]
        if w.is_dir(follow_symlinks=False):
            if not h.is_dir(follow_symlinks=False) or not _same_tree(h.path, w.path):
                return False
        elif h.is_dir(follow_symlinks=False) or (h.inode() != w.inode() and os.lstat(h.path).st_ino
                                                  != os.lstat(w.path).st_ino):
            return False
    return True


def _whole(final: Path, entries: list[tuple[str, Path]]) -> bool:
    """Whether the farm ``final`` is what ``entries`` make."""
    try:
        if sorted(os.listdir(final)) != sorted(name for name, _ in entries):
            return False
        for name, host in entries:
            if host.is_dir() and not host.is_symlink():
                if not _same_tree(str(final / name), str(host)):
                    return False
            elif os.lstat(final / name).st_ino != os.lstat(host).st_ino:
                return False
    except OSError:
        return False
    return True


def _make(root: Path, key: str, entries: list[tuple[str, Path]]) -> Path | None:
    final = root / key
    if final.is_dir():
        if _whole(final, entries):
            return final
        from harness.cache import entry as cache_entry

        print(f"ldmatrix: store farm {final} differs from its store paths; making it again", file=sys.stderr,
              flush=True)
        cache_entry.set_aside(final)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{key}-pid{os.getpid()}-", dir=root))
    try:
        for name, host in entries:
            _link_tree(host, tmp / name)
        tmp.chmod(0o755)
        try:
            os.rename(tmp, final)
        except OSError:
            if not final.is_dir():  # not a concurrent maker's farm: a real failure
                raise
        return final
    except OSError:  # EXDEV, EPERM (protected hard links), a full disk: bind each path instead
        return None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def farm(paths: Iterable[tuple[str, Path]], cache: Cache) -> Path | None:
    """The directory to bind at /nix/store for these (store path, host path) pairs; None: bind each."""
    raw = tuple((target, str(host)) for target, host in paths)
    memo = (cache.root, raw)
    with _lock:
        if memo in _by_entries:  # the same set again in this process: its key (a stat per path) is known
            return _by_entries[memo]
    # a bind follows a host path that is a link (a Nix store's own paths can be): so does the farm
    entries = sorted({(PurePosixPath(target).name, Path(os.path.realpath(host))) for target, host in raw})
    if len({name for name, _ in entries}) != len(entries):  # one name, two hosts: no single tree says it
        return None
    try:
        key = _key(entries)
    except OSError:
        return None
    with _lock:
        if (cache.root, key) in _known:
            _by_entries[memo] = _known[(cache.root, key)]
            return _known[(cache.root, key)]
        key_lock = _key_locks.setdefault(key, threading.Lock())
    with key_lock:
        with _lock:
            if (cache.root, key) in _known:
                return _known[(cache.root, key)]
        root = cache.dir(AREA)
        if root not in _swept:
            from harness.cache import entry as cache_entry
            from harness.progress import NullProgress

            cache_entry.sweep(root, NullProgress())  # half-made farms of killed runs
            _swept.add(root)
        made = _make(root, key, entries)
        with _lock:
            _known[(cache.root, key)] = _by_entries[memo] = made
        return made
