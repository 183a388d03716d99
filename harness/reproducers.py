"""The reproducers (c-repro/, rust-repro/) and how to build them inside a Debian build root.

A build runs the compiler under bubblewrap: the build root's top-level directories read-only,
a fresh tmpfs at /tmp, the reproducer's project directory read-only at /src, a host directory
at /out, no network, a clean environment. Results are cached under
``cache.builds/<name>-<suite>-<digest>/`` (the binary and ``build.log``); the digest covers the
sources, the compiler command and the build root, so a change to any of them rebuilds.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from harness.cache import REPO_ROOT, Cache
from harness.cache import entry as cache_entry
from harness.errors import LdmatrixError
from harness.loader.elf import read_interpreter
from harness.model import BuildRoot, BuiltBinary, Language
from harness.progress import Progress
from harness.root.bwrap import Bind, bwrap_command, fhs_root_args, sandbox_argv

RECIPE_VERSION = "1"  # bump to invalidate every cached build
PROJECT_DIRS = {Language.C: "c-repro", Language.RUST: "rust-repro"}
C_FLAGS = ("-O2", "-Wall", "-Wextra")
RUST_FLAGS = ("--edition", "2018", "-C", "opt-level=2")
BUILD_PATH = "/usr/bin:/bin"
BUILD_TIMEOUT = 600.0
LOG_NAME = "build.log"
EMBEDDED_SO = "/tmp/ldmatrix-execstack.so"  # the path dlopen_execstack.c's .incbin names


@dataclass(frozen=True)
class ReproducerSpec:
    """One reproducer: what to compile and what it needs to run."""

    name: str  # "needs-libcrypt"
    language: Language
    sources: tuple[str, ...]  # relative to the project dir; the first is the one compiled
    link_flags: tuple[str, ...] = ()
    needs_child: bool = False  # a parent that runs a child given on its command line
    # a prebuilt parent (spawn-child): the program under test, judging what its child received; the
    # others that start a child (the Rust launchers) stand for Nix-built programs
    checks_startup: bool = False  # checks argv, environment, AT_EXECFN against its parent's --expect record
    prebuilt_parent: bool = False
    min_glibc: str | None = None  # the build root must have at least this glibc
    description: str = ""
    # A second source built first as a shared object with these flags to EMBEDDED_SO, which the
    # main source embeds (.incbin): one file to install, carrying the library it dlopen()s.
    embedded_so_flags: tuple[str, ...] = ()

    @property
    def project_dir(self) -> Path:
        return REPO_ROOT / PROJECT_DIRS[self.language]

    @property
    def source_paths(self) -> tuple[Path, ...]:
        return tuple(self.project_dir / source for source in self.sources)

    def compile_command(self) -> tuple[str, ...]:
        """The compiler argv as run inside the sandbox (sources at /src, output at /out)."""
        main = f"/src/{self.sources[0]}"
        out = f"/out/{self.name}"
        if self.language is Language.C and self.embedded_so_flags:
            library = ("gcc", *C_FLAGS, "-shared", "-fPIC", *self.embedded_so_flags, "-o", EMBEDDED_SO,
                       f"/src/{self.sources[1]}")
            program = ("gcc", *C_FLAGS, "-o", out, main, *self.link_flags)
            return ("sh", "-ec", f"{shlex.join(library)}\n{shlex.join(program)}")
        if self.language is Language.C:
            return ("gcc", *C_FLAGS, "-o", out, main, *self.link_flags)
        return ("rustc", *RUST_FLAGS, "-o", out, main, *self.link_flags)


def _c(name: str, source: str, description: str, **kw: object) -> ReproducerSpec:
    return ReproducerSpec(name, Language.C, (source,), description=description, **kw)  # type: ignore[arg-type]


# The Rust launchers run ``CHILD [ARGS...] --expect FILE`` (the start-up printer's record); with this
# option first, ``LAUNCHER --no-expect CHILD [ARGS...]`` runs a real program's own argv, and no FILE.
LAUNCHER_NO_EXPECT = "--no-expect"


def _rust(name: str, source: str, description: str) -> ReproducerSpec:
    return ReproducerSpec(
        name, Language.RUST, (f"src/bin/{source}", "src/launcher.rs"), needs_child=True, description=description
    )


REPRODUCERS: dict[str, ReproducerSpec] = {
    spec.name: spec
    for spec in (
        _c("hello", "hello.c", "links only libc"),
        _c("needs-libcrypt", "needs_libcrypt.c", "needs libcrypt.so.1 (like python-build-standalone 3.11)",
           link_flags=("-lcrypt",)),
        _c("needs-glibc-2.38", "needs_glibc_2_38.c", "uses strlcpy, so needs GLIBC_2.38", min_glibc="2.38"),
        ReproducerSpec("envprint", Language.C, ("envprint.c", "record.h"), checks_startup=True,
                       description="prints PATH entries; checks its whole start-up state against --expect"),
        # the start-up printer of a newer channel: it needs sid's libstdc++ (GLIBCXX_3.4.35)
        ReproducerSpec("envprint-newer", Language.C, ("envprint.c", "record.h", "newer_libstdcxx.c"),
                       link_flags=("/src/newer_libstdcxx.c", "/usr/lib/x86_64-linux-gnu/libstdc++.so.6"),
                       checks_startup=True, min_glibc="2.43",  # sid's root: its libstdc++ has the symbol
                       description="envprint needing a libstdc++ as new as sid's, as a newer channel's program"),
        # a prebuilt program starting another (VS Code's server's node): what the child received
        ReproducerSpec("spawn-child", Language.C, ("spawn_child.c", "record.h"), needs_child=True,
                       prebuilt_parent=True, checks_startup=True,
                       description="a prebuilt parent: starts CHILD and judges what it received"),
        ReproducerSpec("dlopen-execstack", Language.C, ("dlopen_execstack.c", "execstack_lib.c"),
                       link_flags=("-ldl",), embedded_so_flags=("-Wl,-z,execstack",),
                       description="dlopen()s a library that asks for an executable stack (refused from 2.41)"),
        _rust("spawn-env", "spawn_env.rs", "Rust parent calling Command::env (sorted envp)"),
        _rust("spawn-inherit", "spawn_inherit.rs", "Rust parent inheriting its environment"),
    )
}


def spec(name: str) -> ReproducerSpec:
    try:
        return REPRODUCERS[name]
    except KeyError:
        raise LdmatrixError(f"unknown reproducer {name!r} (allowed: {', '.join(REPRODUCERS)})") from None


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split(".") if part.isdigit())


def build_digest(spec: ReproducerSpec, root: BuildRoot) -> str:
    """32 hex chars over the recipe, the sources' content, the compiler command and the build root."""
    h = hashlib.sha256()

    def add(label: str, data: bytes) -> None:
        h.update(f"{label}\0{len(data)}\0".encode())
        h.update(data)

    add("recipe", RECIPE_VERSION.encode())
    add("name", spec.name.encode())
    add("command", "\0".join(spec.compile_command()).encode())
    add("path", BUILD_PATH.encode())
    add("root", f"{root.suite}\0{root.digest}".encode())
    for source, path in zip(spec.sources, spec.source_paths):
        try:
            add(f"source:{source}", path.read_bytes())
        except OSError as err:
            raise LdmatrixError(f"{path}: cannot read reproducer source: {err.strerror or err}") from err
    return h.hexdigest()[:32]


BUILD_ENV = (("PATH", BUILD_PATH), ("HOME", "/tmp"), ("TMPDIR", "/tmp"), ("LC_ALL", "C"))


def bwrap_argv(root: Path, src: Path, out: Path, command: tuple[str, ...], *,
               binds: tuple[tuple[Path, str, bool], ...] = (), env: tuple[tuple[str, str], ...] = (),
               network: bool = False, chdir: str = "/tmp") -> list[str]:
    """bubblewrap argv that runs ``command`` in ``root`` (read-only) with /src and /out bound.

    The same sandbox as a cell's (harness.root.bwrap): uid 1000, no capabilities, no network unless
    ``network`` (only to fetch sources). / stays bwrap's own tmpfs, so /src and /out can be created
    without writing into the root. ``binds``: more (host path, target, writable); ``env``: more
    variables, after the build's own.
    """
    bwrap = bwrap_command()
    all_binds = (Bind(src, "/src"), Bind(out, "/out", writable=True),
                 *(Bind(host, target, writable) for host, target, writable in binds))
    return sandbox_argv(fhs_root_args(root), all_binds, command, cwd=chdir, env=(*BUILD_ENV, *env), bwrap=bwrap,
                        network=network)


def _built(spec: ReproducerSpec, root: BuildRoot, directory: Path) -> BuiltBinary:
    binary = directory / spec.name
    interpreter = read_interpreter(binary)
    if interpreter is None:
        raise LdmatrixError(f"{binary}: has no PT_INTERP; expected a dynamically linked executable")
    return BuiltBinary(
        reproducer=spec.name,
        suite=root.suite,
        path=binary,
        sha256=cache_entry.file_sha256(binary),
        build_log=directory / LOG_NAME,
        interpreter=interpreter,
    )


def build_dir(name: str, root: BuildRoot, cache: Cache) -> Path:
    """Where the build of ``name`` in ``root`` is (or will be) cached."""
    s = spec(name)
    return cache.builds / f"{s.name}-{root.suite}-{build_digest(s, root)}"


Compiler = Callable[[ReproducerSpec, BuildRoot, Path, TextIO], "int | None"]


def compile_in_sandbox(s: ReproducerSpec, root: BuildRoot, out_dir: Path, log: TextIO) -> int | None:
    """Run the compile command in ``root`` under bubblewrap; its output goes to ``log``. None: timeout."""
    command = s.compile_command()
    argv = bwrap_argv(root.path, s.project_dir, out_dir, command)
    log.write(f"# sandbox: {' '.join(argv)}\n")
    log.write(f"$ {' '.join(command)}\n")
    log.flush()
    try:
        return subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                              timeout=BUILD_TIMEOUT).returncode
    except subprocess.TimeoutExpired:
        return None


def build(name: str, root: BuildRoot, cache: Cache, progress: Progress, *,
          compiler: Compiler = compile_in_sandbox, variant: str = "") -> BuiltBinary:
    """Compile reproducer ``name`` for ``root`` (or reuse the cached build).

    ``compiler`` runs the compile command (bubblewrap by default; the docker runner passes its
    own); ``variant`` keeps its builds apart in the cache (``<name>-<suite>-<digest><variant>``).
    """
    s = spec(name)
    if s.min_glibc and _version_tuple(root.glibc_version) < _version_tuple(s.min_glibc):
        raise LdmatrixError(
            f"{s.name} needs a build root with glibc >= {s.min_glibc}; "
            f"{root.suite} has {root.glibc_version} (use trixie or newer)"
        )
    final = build_dir(name, root, cache)
    final = final.with_name(final.name + variant)
    entry = cache_entry.Entry(cache, "builds", final.name)
    made_from = {"kind": "build", "recipe": RECIPE_VERSION, "reproducer": s.name, "suite": root.suite,
                 "root": root.digest, "digest": build_digest(s, root), "variant": variant}

    def fill(out: Path, scratch: Path) -> None:
        progress.step(f"building {s.name} in {root.suite} (glibc {root.glibc_version})")
        started = time.monotonic()
        log = out / LOG_NAME
        with log.open("w", encoding="utf-8") as fh:
            fh.write(f"# reproducer {s.name}, suite {root.suite}, build root {root.path} ({root.digest})\n")
            rc = compiler(s, root, out, fh)
            fh.write(f"# exit status: {'timeout' if rc is None else rc}\n")
        if rc != 0 or not (out / s.name).is_file():
            failed_log = cache.builds / f"{final.name}.failed.log"
            os.replace(log, failed_log)
            why = f"timed out after {BUILD_TIMEOUT:.0f}s" if rc is None else f"exit status {rc}"
            raise LdmatrixError(f"building {s.name} in {root.suite} failed ({why}); log: {failed_log}")
        progress.step(f"built {s.name} for {root.suite} in {time.monotonic() - started:.1f}s")

    if (final / s.name).is_file() and cache_entry.check(entry, made_from) is None:
        progress.step(f"reusing {s.name} for {root.suite} ({final.name})")
    cache_entry.ensure(entry, made_from, fill, progress, f"build of {s.name} for {root.suite}",
                       volatile=(LOG_NAME,))
    return _built(s, root, final)


def build_all(root: BuildRoot, cache: Cache, progress: Progress,
              names: list[str] | None = None) -> dict[str, BuiltBinary]:
    """Build every reproducer the root can build (``names`` or all whose min_glibc the root meets)."""
    if names is None:
        names = [
            n for n, s in REPRODUCERS.items()
            if not s.min_glibc or _version_tuple(root.glibc_version) >= _version_tuple(s.min_glibc)
        ]
    return {n: build(n, root, cache, progress) for n in names}
