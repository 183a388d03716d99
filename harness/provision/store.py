"""Unpack locked .debs into Nix-like store paths: <digest>-<name>-<version>/ with a flat lib/."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from harness.cache import Cache
from harness.cache import entry as cache_entry
from harness.errors import ProvisionError
from harness.model import GlibcSet, StorePath
from harness.progress import Progress

from . import nixbase32
from .fetch import download_deb
from .lockfile import LOCK_PATH, Lock, LockedDeb, load_lock
from .suites import CONFIG, SuitesConfig

LIB_DIRS = ("lib/x86_64-linux-gnu", "usr/lib/x86_64-linux-gnu")
BIN_DIRS = ("bin", "usr/bin")
LOADER = "ld-linux-x86-64.so.2"


def store_version(debian_version: str) -> str:
    """A Debian version as Nix allows it in a store path name: no epoch, '-' for anything else."""
    version = debian_version.split(":", 1)[1] if ":" in debian_version else debian_version
    return re.sub(r"[^A-Za-z0-9+\-._?=]", "-", version)


def store_digest(name: str, *debs: LockedDeb, extra: tuple[str, ...] = ()) -> str:
    return nixbase32.digest(name, *(part for deb in debs for part in (deb.version, deb.sha256)), *extra)


def unpack(deb_file: Path, dest: Path) -> None:
    try:
        proc = subprocess.run(["dpkg-deb", "-x", str(deb_file), str(dest)], capture_output=True, text=True)
    except FileNotFoundError:
        raise ProvisionError("dpkg-deb not found; install it: apt-get install -y dpkg") from None
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["failed"])[-1]
        raise ProvisionError(f"dpkg-deb -x {deb_file.name}: {last}")


def _flatten_dir(tree: Path, sources: tuple[str, ...], out: Path, what: str) -> None:
    """Move every entry of the ``sources`` dirs of ``tree`` into ``out``; keep symlinks valid.

    A symlink that points at another flattened entry (``ld-linux-x86-64.so.2 -> ld-2.31.so``, or an
    absolute ``/lib/x86_64-linux-gnu/…``) is rewritten to the sibling's name in ``out``.
    """
    out.mkdir(parents=True, exist_ok=True)
    src_dirs = [tree / s for s in sources if (tree / s).is_dir() and not (tree / s).is_symlink()]
    moved: dict[str, str] = {}  # path in the package (no leading /) -> name in out
    for src in src_dirs:
        for entry in sorted(src.iterdir()):
            if (out / entry.name).exists() or (out / entry.name).is_symlink():
                raise ProvisionError(f"{what}: {entry.name} is in more than one of {', '.join(sources)}")
            moved[str(entry.relative_to(tree))] = entry.name
            os.rename(entry, out / entry.name)
    for src in src_dirs:
        rel_dir = str(src.relative_to(tree))
        for name in [n for p, n in moved.items() if os.path.dirname(p) == rel_dir]:
            link = out / name
            if not link.is_symlink():
                continue
            target = os.readlink(link)
            resolved = os.path.normpath(target.lstrip("/") if target.startswith("/")
                                        else os.path.join(rel_dir, target))
            # merged-/usr: /lib/x86_64-linux-gnu and /usr/lib/x86_64-linux-gnu are the same dir
            candidates = {resolved, resolved.removeprefix("usr/"), "usr/" + resolved}
            hit = next((moved[c] for c in candidates if c in moved), None)
            if hit is not None:
                if target != hit:
                    link.unlink()
                    link.symlink_to(hit)
            elif not link.exists():
                raise ProvisionError(f"{what}: symlink lib/{name} -> {target} points outside the package")


def layout_lib(tree: Path, out: Path, what: str) -> None:
    """lib/ of a store path from an unpacked library package."""
    _flatten_dir(tree, LIB_DIRS, out / "lib", what)
    if not any((out / "lib").iterdir()):
        raise ProvisionError(f"{what}: no files in {' or '.join(LIB_DIRS)}")


def layout_glibc(tree: Path, out: Path, what: str) -> None:
    layout_lib(tree, out, what)
    loader = out / "lib" / LOADER
    if not loader.is_symlink() and not loader.exists():
        # not seen in bullseye…sid; the loader also sits in (usr/)lib64 in every libc6
        for cand in ("lib64", "usr/lib64"):
            src = tree / cand / LOADER
            if src.is_symlink() or src.exists():
                real = src.resolve()
                if real.is_relative_to(tree):
                    shutil.copy2(real, loader)
                break
    if not loader.exists():
        raise ProvisionError(f"{what}: lib/{LOADER} missing after unpacking")


def _one_program(tree: Path, out: Path, what: str, name: str, as_name: str) -> None:
    """The package's ``bin/NAME`` (or ``usr/bin``, ``sbin``…) alone, as ``out/bin/AS_NAME``."""
    src = next((tree / d / name for d in BIN_DIRS if (tree / d / name).is_file()), None)
    if src is None:
        raise ProvisionError(f"{what}: no bin/{name} in the package")
    (out / "bin").mkdir(parents=True)
    os.rename(src, out / "bin" / as_name)


def layout_busybox(tree: Path, out: Path, what: str) -> None:
    _one_program(tree, out, what, "busybox", "busybox")
    (out / "bin" / "sh").symlink_to("busybox")


def layout_bash(tree: Path, out: Path, what: str) -> None:
    _one_program(tree, out, what, "bash-static", "bash")


Layout = Callable[[Path, Path, str], None]
LAYOUTS: dict[str, Layout] = {"glibc": layout_glibc, "busybox": layout_busybox, "bash": layout_bash}


LAYOUT_VERSION = "1"  # bump when a layout function changes what a store path holds


def check_control(deb_file: Path, deb: LockedDeb) -> None:
    """The .deb is the package and version its lock entry names (not another suite's with its checksum)."""
    try:
        proc = subprocess.run(["dpkg-deb", "-f", str(deb_file), "Package", "Version", "Architecture"],
                              capture_output=True, text=True)
    except FileNotFoundError:
        raise ProvisionError("dpkg-deb not found; install it: apt-get install -y dpkg") from None
    fields = dict(line.split(": ", 1) for line in proc.stdout.splitlines() if ": " in line)
    got = (fields.get("Package"), fields.get("Version"))
    if proc.returncode != 0 or got != (deb.package, deb.version) \
            or fields.get("Architecture") not in (deb.architecture, "all"):
        raise ProvisionError(
            f"{deb_file.name}: is {got[0]} {got[1]} ({fields.get('Architecture')}), but the lock's entry "
            f"suites.{deb.suite}.packages.{deb.package} says {deb.package} {deb.version}; "
            f"refusing it (fix the lock or run `ldmatrix lock`)")


def made_from(name: str, *debs: LockedDeb, extra: tuple[str, ...] = ()) -> dict:
    """What a store path is made from: recorded in its manifest and checked on every use."""
    if len(debs) == 1 and not extra:
        deb = debs[0]
        return {"kind": "store-path", "name": name, "layout": LAYOUT_VERSION, "suite": deb.suite,
                "package": deb.package, "version": deb.version, "filename": deb.filename, "sha256": deb.sha256}
    return {"kind": "store-path", "name": name, "layout": LAYOUT_VERSION, "extra": list(extra),
            "debs": [{"suite": d.suite, "package": d.package, "version": d.version, "filename": d.filename,
                      "sha256": d.sha256} for d in debs]}


def make_store_path(name: str, deb: LockedDeb, cache: Cache, progress: Progress) -> StorePath:
    """The store path for ``deb``: reused when it matches its manifest, otherwise (re)built and renamed."""
    return make_package_path(name, store_version(deb.version), (deb,), cache, progress, LAYOUTS.get(name, layout_lib))


def make_package_path(name: str, version: str, debs: tuple[LockedDeb, ...], cache: Cache, progress: Progress,
                      layout: Layout, extra: tuple[str, ...] = ()) -> StorePath:
    """The store path made from ``debs`` unpacked into one tree and laid out by ``layout``: reused when
    it matches its manifest, otherwise (re)built and renamed into place.

    ``extra``: what else the content depends on (a glibc it is patched to), part of the digest.
    """
    sp = StorePath(name, version, store_digest(name, *debs, extra=extra), cache.store / "")
    entry = cache_entry.Entry(cache, "store", sp.basename)

    def fill(out: Path, scratch: Path) -> None:
        files = []
        for deb in debs:
            deb_file = download_deb(deb, cache, progress)
            check_control(deb_file, deb)
            files.append(deb_file)
        progress.step(f"unpacking {', '.join(d.describe() for d in debs)} -> {sp.basename}")
        for deb_file in files:
            unpack(deb_file, scratch)
        layout(scratch, out, f"{', '.join(d.describe() for d in debs)} ({', '.join(f.name for f in files)})")
        out.chmod(0o755)

    final = cache_entry.ensure(entry, made_from(name, *debs, extra=extra), fill, progress,
                               f"store path {sp.basename}")
    return StorePath(sp.name, sp.version, sp.digest, final)


def provision_glibc(glibc_version: str, cache: Cache, progress: Progress, *,
                    lock: Lock | None = None, lock_path: Path = LOCK_PATH,
                    config: SuitesConfig = CONFIG) -> GlibcSet:
    """Store paths of one store glibc build: glibc itself, built from upstream's source the way nixpkgs
    builds it (harness/provision/glibc_build.py), and beside it its packages suite's libxcrypt and
    gcc-lib (the libgcc whose lib/ the loader searches after its own) and a static busybox."""
    from . import glibc_build

    suite = config.suite_for(glibc_version)
    lock = lock or load_lock(lock_path, config)
    by_name = {store: lock.deb(suite, pkg) for pkg, store in config.packages.items() if store != "glibc"}
    paths = {name: make_store_path(name, deb, cache, progress) for name, deb in sorted(by_name.items())}
    built = glibc_build.provide(glibc_version, lock, paths["gcc-lib"], cache, progress)
    shell = make_store_path(config.shell_name, lock.deb(config.shell_suite, config.shell_package), cache, progress)
    return GlibcSet(
        glibc_version=glibc_version, suite=suite,
        glibc=built.out, libxcrypt=paths["libxcrypt"], gcc_lib=paths["gcc-lib"], shell=shell,
        programs=built.programs, build=built.toolchain,
    )
