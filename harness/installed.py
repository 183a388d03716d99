"""What cells run and see, made once and shared: patched binaries and root overlays, by content.

A cell's binary is a reproducer as built, with the interpreter and RUNPATH its strategy sets.
The same (built sha256, interpreter, RUNPATH) gives the same file for every cell of every run,
so it is made once, under ``<cache>/patched/<key>/``, and bound read-only into each cell that
runs it; a cell's folder names it by path and sha256 instead of holding a copy. A binary left
as built is bound from the build cache itself. The links a strategy adds to the root
(``/lib64/ld-linux-x86-64.so.2`` -> nix-ld, ...) are a directory tree under
``<cache>/overlays/<key>/`` the same way.

Entries are made in a ``.tmp-`` directory and renamed into place, so one that exists is whole;
each records what it was made from (``entry.json``) and is checked cheaply on first use in a
process (size and mtime of a binary, the target of every link); a damaged one is made again.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path

from harness.cache import Cache
from harness.cache_entry import file_sha256
from harness.model import BuiltBinary, InstalledBinary, Link, Mount
from harness.patchelf import patch

MANIFEST = "entry.json"
_checked: dict[Path, dict] = {}  # entry dir -> its manifest, once checked in this process
_checked_lock = threading.Lock()
_overlays: dict[tuple, tuple[Mount, ...]] = {}  # (cache, links, files) -> its mounts, this process


def _key(fields: dict) -> str:
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:32]


def _entry(root: Path, key: str, make, check) -> tuple[Path, dict]:
    """The entry ``root/key``: made by ``make(tmp) -> manifest`` unless present and passing ``check``."""
    final = root / key
    with _checked_lock:
        if final in _checked:
            return final, _checked[final]
    existed = final.exists()  # before reading: an entry appears by rename with its manifest already in it
    manifest = _read_manifest(final)
    if existed and (manifest is None or not check(final, manifest)):  # damaged: never used
        doomed = root / f".damaged-{key}-{os.getpid()}-{threading.get_ident()}"
        try:
            os.rename(final, doomed)
        except OSError:
            pass  # another thread moved it first
        shutil.rmtree(doomed, ignore_errors=True)
        manifest = None
    if manifest is None:
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{key}-", dir=root))
        try:
            manifest = make(tmp)
            (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
            tmp.chmod(0o755)
            try:
                os.rename(tmp, final)
            except OSError:
                manifest = _read_manifest(final)  # a concurrent maker won the race: use its entry
                if manifest is None or not check(final, manifest):
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    with _checked_lock:
        _checked[final] = manifest
    return final, manifest


def _read_manifest(entry: Path) -> dict | None:
    try:
        manifest = json.loads((entry / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) else None


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


def _binary_intact(entry: Path, manifest: dict) -> bool:
    try:
        st = (entry / str(manifest["file"])).stat()
        return st.st_size == manifest["size"] and st.st_mtime_ns == manifest["mtime_ns"]
    except (OSError, KeyError, TypeError):
        return False


def install(binary: BuiltBinary, path: str, interpreter: str | None, runpath: Iterable[str],
            cache: Cache) -> InstalledBinary:
    """``binary`` with this interpreter and RUNPATH, shared read-only; ``path`` is where the cell sees it."""
    runpath = tuple(runpath)
    if not interpreter and not runpath:  # as built: the build cache's own file
        return InstalledBinary(path, binary.path, binary.sha256, binary.sha256, None, (), binary.reproducer)
    key = _key({"built_sha256": binary.sha256, "interpreter": interpreter, "runpath": list(runpath)})
    entry, manifest = _entry(cache.dir("patched"), key, _patch(binary, binary.reproducer, interpreter, runpath),
                             _binary_intact)
    return InstalledBinary(path, entry / manifest["file"], manifest["sha256"], binary.sha256, interpreter, runpath,
                           binary.reproducer)


# ------------------------------------------------------------------------------- overlays
def _overlay_intact(entry: Path, manifest: dict) -> bool:
    try:
        return (all(os.readlink(entry / "root" / path.lstrip("/")) == target for path, target in manifest["links"])
                and all(file_sha256(entry / "root" / path.lstrip("/")) == digest
                        for path, digest in manifest.get("files", [])))
    except (OSError, KeyError, TypeError, ValueError):
        return False


def overlay_mounts(links: Iterable[Link], cache: Cache, files: Mapping[str, str] | None = None) -> list[Mount]:
    """The links and files (``/etc/profile``) as a shared tree, one read-only mount per top-level
    directory (``/lib64``, ``/run``, ``/etc``)."""
    pairs = sorted({link.path: link.target for link in links}.items())  # a later link to a path wins
    texts = sorted((files or {}).items())
    if not pairs and not texts:
        return []
    memo = (cache.root, tuple(pairs), tuple(texts))
    with _checked_lock:
        if memo in _overlays:  # most cells of a run share their overlay: its key is worked out once
            return list(_overlays[memo])

    def make(tmp: Path) -> dict:
        for path, target in pairs:
            host = tmp / "root" / path.lstrip("/")
            host.parent.mkdir(parents=True, exist_ok=True)
            host.symlink_to(target)
        for path, text in texts:
            host = tmp / "root" / path.lstrip("/")
            host.parent.mkdir(parents=True, exist_ok=True)
            host.write_text(text)
        return {"links": [list(p) for p in pairs],
                "files": [[path, hashlib.sha256(text.encode()).hexdigest()] for path, text in texts]}

    entry, _ = _entry(cache.dir("overlays"), _key({"links": pairs, "files": texts}), make, _overlay_intact)
    tops = sorted({path.lstrip("/").split("/", 1)[0] for path, _ in (*pairs, *texts)})
    mounts = [Mount(entry / "root" / top, f"/{top}") for top in tops]
    with _checked_lock:
        _overlays[memo] = tuple(mounts)
    return mounts
