"""The store glibc, built from upstream's source the way nixpkgs builds it, so that its loader
searches what nixpkgs' loader searches.

nixpkgs' expressions (pkgs/development/libraries/glibc/common.nix and default.nix, read at
faukah/nixpkgs@3b20077c, glibc 2.40-66; the same flags in NixOS/nixpkgs@ef575045) build it with

- ``configureFlags``: ``-C --enable-add-ons --sysconfdir=/etc --enable-stack-protector=strong
  --enable-bind-now --with-headers=<linuxHeaders>/include --disable-profile --enable-fortify-source
  --enable-static-pie --enable-cet=permissive --enable-kernel=3.10.0`` (x86_64);
- ``makeFlags``: ``user-defined-trusted-dirs=${libgcc}/lib`` (default.nix, since 2023): the loader's
  own search list is its ``lib/`` and then libgcc's, so ``libgcc_s.so.1`` is found with no
  RUNPATH, no ``LD_LIBRARY_PATH`` and no library list;
- ``dont-use-system-ld-so-cache.patch``: the cache the loader reads is ``<prefix>/etc/ld.so.cache``,
  which ``postInstall`` removes (so it reads none), and ``dont-use-system-ld-so-preload.patch``:
  ``/etc/ld-nix.so.preload`` instead of ``/etc/ld.so.preload``;
- ``installFlags = [ "sysconfdir=$(out)/etc" ]``; outputs ``out`` (``lib/``, ``libexec/``, ``share/``,
  ``etc/``, ``lib64 -> lib``), ``bin`` (``bin/``, ``sbin/``: ``ldd`` among them), ``dev``
  (``include/``) and ``static`` (the ``.a`` archives but ``*_nonshared.a``);
- ``libcrypt.so.1`` from libxcrypt, not glibc (2.38 and later build none; for older versions
  ``--disable-crypt``, so the loader does not find glibc's own ahead of libxcrypt's).

Here: the same configure flags with ``--prefix=/nix/store/<digest>-glibc-<version>``, the same
trusted directory (the column's ``gcc-lib`` store path), the cache path and the preload file
changed on the two lines those patches change (by our own substitution, not their files), the
same outputs (``out`` is the store path cells bind; ``bin`` becomes ``glibc-<version>-bin`` with
``ldd``'s ``#!`` on the store's bash, harness/provision/packages.py). What differs, and is named
in README: the compiler and binutils (Debian's, of the build suite in harness/data/suites.json),
the kernel headers (Debian's linux-libc-dev), ``--disable-werror`` (a newer compiler's warnings;
no code changes), and nixpkgs' other patches (its release branch's backports, nix-locale-archive,
getconf's PATH, fix-x64-abi, nix-nss-open-files, reenable_DT_HASH) and its C.UTF-8 locale files.
Debian's orig tarball is upstream's without ``manual/``, which the build only needs to install the
manual: a Makefile that includes ``Makeconfig`` and ``Rules`` and builds nothing stands in for it
(and, for 2.31, an empty ``errno.texi`` older than the ``errlist.c`` made from it).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path

from harness import data_text
from harness.cache import Cache
from harness.cache import entry as cache_entry
from harness.errors import ProvisionError
from harness.model import BuildRoot, StorePath
from harness.progress import Progress
from harness.root.bwrap import Bind, bwrap_command, fhs_root_args, sandbox_argv

from . import nixbase32
from .buildroot import build_root, dpkg_version, tool_package
from .buildrun import failure, run_logged
from .fetch import download_source
from .lockfile import Lock, LockedSource
from .suites import CONFIG, SuitesConfig

RECIPE = "1"  # bump to rebuild every cached glibc
AREA = "glibc/builds"
BUILD_TIMEOUT = 3600.0
CONFIGURE_FLAGS = (
    "--sysconfdir=/etc", "--enable-stack-protector=strong", "--enable-bind-now", "--disable-profile",
    "--enable-fortify-source", "--enable-static-pie", "--enable-cet=permissive", "--enable-kernel=3.10.0",
    "--disable-werror",
)
# glibc before 2.38 builds its own libcrypt.so.1 unless told not to; on NixOS libcrypt.so.1 is
# libxcrypt's (the glibc set's ``libxcrypt`` store path), and 2.38 and later build none at all.
NO_LIBCRYPT = ("--disable-crypt",)
TOOLCHAIN = ("gcc", "binutils", "make", "linux-libc-dev")  # whose versions the build's key covers
HEADERS = ("linux", "asm-generic", "x86_64-linux-gnu/asm", "drm", "mtd", "rdma", "sound", "video", "xen", "misc")
MANUAL_STUB = ("# ldmatrix: Debian's orig tarball has no manual/; nothing of it is built\n"
               "subdir := manual\ninclude ../Makeconfig\ninclude ../Rules\n")
# The lines nixpkgs' two patches change, and what they become (PREFIX: the store path).
CACHE_LINE = ("sysdeps/generic/dl-cache.h", '# define LD_SO_CACHE SYSCONFDIR "/ld.so.cache"',
              '# define LD_SO_CACHE "{prefix}/etc/ld.so.cache"')
PRELOAD_LINE = ("elf/rtld.c", '"/etc/ld.so.preload"', '"/etc/ld-nix.so.preload"')
_SUBDIR = re.compile(r"^make\[\d+\]: Entering directory '/src/([^']+)'")
MAKE_ERRORS = r"\berror\b|\*\*\*"  # a failed build's lines worth quoting: the compiler's and make's

SCRIPT = data_text("glibc_build.sh")  # harness/data/glibc_build.sh: part of the build's digest, byte for byte


@dataclass(frozen=True)
class GlibcBuild:
    """A built store glibc: ``out`` is the store path cells bind, ``programs`` its ``bin`` output's
    files on the host (``bin/ldd`` …), ``log`` the build's log."""

    out: StorePath
    programs: Path
    log: Path
    toolchain: str


def _toolchain(root: BuildRoot) -> tuple[tuple[str, str], ...]:
    packages = [tool_package(root.path, name) for name in TOOLCHAIN]
    return tuple((package, dpkg_version(root.path, package)) for package in packages)


def _describe(root: BuildRoot, toolchain: tuple[tuple[str, str], ...]) -> str:
    tools = ", ".join(f"{p} {v}" for p, v in toolchain)
    return f"{tools} (Debian {root.suite} build root {root.digest[:12]})"


def configure_flags(version: str) -> tuple[str, ...]:
    older = tuple(int(x) for x in version.split(".")) < (2, 38)
    return (*CONFIGURE_FLAGS, *(NO_LIBCRYPT if older else ()))


def _script(prefix: str, trusted: str, version: str) -> str:
    return SCRIPT.format(headers=" ".join(HEADERS), prefix=prefix, flags=" ".join(configure_flags(version)),
                         jobs=max(1, os.cpu_count() or 1) + 1, trusted=trusted)


def _digest(source: LockedSource, root: BuildRoot, toolchain: tuple[tuple[str, str], ...], gcc_lib: StorePath) -> str:
    return nixbase32.digest("glibc-build", RECIPE, source.sha256, " ".join(configure_flags(source.version)), SCRIPT,
                            CACHE_LINE[2], PRELOAD_LINE[2], root.digest, repr(toolchain), gcc_lib.basename)


def _substitute(tree: Path, spec: tuple[str, str, str], prefix: str) -> None:
    """Change the one line a nixpkgs patch changes; a source where it is not exactly once is refused."""
    relative, old, new = spec
    path = tree / relative
    text = path.read_text()
    if text.count(old) != 1:
        raise ProvisionError(f"glibc source: {relative} has {text.count(old)} of {old!r}, not one; "
                             f"this recipe (harness/provision/glibc_build.py) does not fit it")
    path.write_text(text.replace(old, new.format(prefix=prefix)))


def _unpack(archive: Path, dest: Path, version: str) -> Path:
    with tarfile.open(archive) as tar:
        tar.extractall(dest, filter="data")
    tree = dest / f"glibc-{version}"
    if not (tree / "configure").is_file():
        raise ProvisionError(f"{archive.name}: no glibc-{version}/configure inside")
    manual = tree / "manual"
    if not manual.exists():
        manual.mkdir()
        (manual / "Makefile").write_text(MANUAL_STUB)
        # glibc up to 2.31 makes sysdeps/gnu/errlist.c from manual/errno.texi: the generated file is in
        # the tarball, and an empty errno.texi older than it keeps make from remaking it
        (manual / "errno.texi").touch()
        os.utime(manual / "errno.texi", (0, 0))
    return tree


def _split_outputs(installed: Path, out: Path, programs: Path) -> None:
    """nixpkgs' outputs: ``out`` keeps lib/ (without the static archives), libexec/, share/, etc/
    (without ld.so.cache) and lib64 -> lib; ``bin`` gets bin/ and sbin/; include/ and var/ go."""
    programs.mkdir()
    for name in ("bin", "sbin"):
        if (installed / name).is_dir():
            os.rename(installed / name, programs / name)
    for name in ("include", "var"):
        shutil.rmtree(installed / name, ignore_errors=True)
    (installed / "etc" / "ld.so.cache").unlink(missing_ok=True)
    for archive in (installed / "lib").glob("*.a"):
        if not archive.name.endswith("_nonshared.a"):
            archive.unlink()
    for entry in sorted(installed.iterdir()):
        os.rename(entry, out / entry.name)
    (out / "lib64").symlink_to("lib")


def build(version: str, source: LockedSource, gcc_lib: StorePath, cache: Cache, progress: Progress,
          config: SuitesConfig = CONFIG) -> GlibcBuild:
    """glibc ``version`` for a store whose libgcc is ``gcc_lib``: the cached build, or a new one made
    offline in its build suite's root (four and a half to seven minutes on two cores, newer versions longer)."""
    spec = config.glibc_build(version)
    root = build_root(spec.build, cache, progress, include=config.glibc_build_include)
    toolchain = _toolchain(root)
    store_path = StorePath("glibc", version, _digest(source, root, toolchain, gcc_lib), Path())
    entry = cache_entry.Entry(cache, AREA, store_path.basename)
    what = f"glibc {version}"
    described = _describe(root, toolchain)
    made_from = {"kind": "glibc-build", "recipe": RECIPE, "source": source.filename, "sha256": source.sha256,
                 "configure": list(configure_flags(version)), "trusted": gcc_lib.lib_dir, "build_root": root.digest,
                 "toolchain": [list(kv) for kv in toolchain]}

    def fill(out: Path, scratch: Path) -> None:
        started = time.monotonic()
        archive = download_source(source, cache, progress)
        progress.step(f"{what}: unpacking {archive.name}")
        tree = _unpack(archive, scratch / "src", version)
        for line in (CACHE_LINE, PRELOAD_LINE):
            _substitute(tree, line, store_path.store_path)
        (scratch / "build").mkdir()
        (scratch / "install").mkdir()
        log = entry.path.parent / f"{entry.name}.log"  # where it stays while the entry is made
        log.write_text(f"# {what} from {source.filename} ({source.sha256})\n# toolchain: {described}\n"
                       f"# prefix: {store_path.store_path}; trusted: {gcc_lib.lib_dir}\n")
        script = _script(store_path.store_path, gcc_lib.lib_dir, version)
        argv = sandbox_argv(fhs_root_args(root.path),
                            (Bind(tree, "/src"), Bind(scratch / "build", "/build", writable=True),
                             Bind(scratch / "install", "/out", writable=True)),
                            ("sh", "-ec", script), cwd="/build", bwrap=bwrap_command(),
                            env=(("PATH", "/usr/bin:/bin"), ("HOME", "/tmp"), ("LC_ALL", "C")))
        progress.step(f"{what}: building with {described} (four and a half to seven minutes on two cores; log: {log})")
        rc = run_logged(argv, log, progress, what, BUILD_TIMEOUT, _notable, every=5.0)
        installed = scratch / "install" / store_path.store_path.lstrip("/")
        if rc != 0 or not (installed / "lib" / "ld-linux-x86-64.so.2").exists():
            raise ProvisionError(f"building {what} failed "
                                 f"{failure(log, entry.path, rc, BUILD_TIMEOUT, errors=MAKE_ERRORS)}")
        shutil.copy2(log, out / "build.log")
        (out / "out").mkdir()
        _split_outputs(installed, out / "out", out / "bin")
        (out / "out").chmod(0o755)
        (out / "build.json").write_text(json.dumps({
            "version": version, "source": source.filename, "sha256": source.sha256, "prefix": store_path.store_path,
            "trusted": gcc_lib.lib_dir, "toolchain": described, "configure": list(configure_flags(version)),
            "seconds": round(time.monotonic() - started, 1)}, indent=2) + "\n")
        progress.step(f"{what}: built in {time.monotonic() - started:.0f} s")

    final = cache_entry.ensure(entry, made_from, fill, progress, f"{what} build")
    return GlibcBuild(StorePath("glibc", version, store_path.digest, final / "out"), final / "bin",
                      final / "build.log", described)


def _notable(line: str) -> str | None:
    if line.startswith("# "):
        return line[2:].strip()
    match = _SUBDIR.match(line)
    return f"building {match.group(1)}" if match else None


def provide(version: str, lock: Lock, gcc_lib: StorePath, cache: Cache, progress: Progress) -> GlibcBuild:
    """glibc ``version`` built against ``gcc_lib``, from the source the lock pins."""
    return build(version, lock.source("glibc", version), gcc_lib, cache, progress)
