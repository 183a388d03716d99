"""nix-ld's own tests (``tests/tests.rs`` in its 2.x source: ``hello``, ``dt-needed``, ``dlopen``,
``ld-path-restore``) as cells: their C fixtures compiled from the pinned source's ``tests/*.c`` the
way upstream's harness compiles them (``compile_test_lib``, ``compile_test_bin``):

    cc -fPIC -shared -o $DIR/libtest.so tests/libtest.c
    cc -o $DIR/NAME -DOUT_DIR="$DIR" -Wl,--dynamic-linker,$NIX_LD_BINARY -L $DIR [-ltest] tests/NAME.c

in a Debian build root, offline. What differs, and why: ``-Wl,--no-as-needed`` (Debian's gcc
links --as-needed, nixpkgs' does not, and upstream names -ltest before the source) and ``-ldl`` for
dlopen.c (built in bullseye, whose glibc 2.31 has dlopen in libdl, so the fixtures run on every
store glibc); the programs' directory is ``~/bin`` in the
cell (``OUT_DIR``: ld-path-restore starts ``OUT_DIR "/dt-needed"``), libtest.so is a store path of
its own (a library directory of ours, the cells' ``libs``, on ``NIX_LD_LIBRARY_PATH`` as upstream
puts its directory there), and the dynamic linker is ``/lib64/ld-linux-x86-64.so.2``, which is nix-ld
in a nix-ld cell, as on NixOS (upstream names the nix-ld binary itself; the kernel loads the same file).
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from pathlib import Path

from harness.cache import Cache
from harness.cache import entry as cache_entry
from harness.errors import LdmatrixError
from harness.loader.elf import read_interpreter
from harness.model import BuildRoot, BuiltBinary, StorePath
from harness.progress import Progress
from harness.provision import nixbase32
from harness.provision.buildrun import failure, run_logged
from harness.reproducers import BUILD_TIMEOUT, LOG_NAME, bwrap_argv

from .source import SourceTree

# each fixture and the libraries it is linked with (tests.rs: compile_test_bin(name, &[...]))
TESTS: dict[str, tuple[str, ...]] = {"hello": (), "dt-needed": ("test",), "dlopen": (), "ld-path-restore": ("test",)}
LIBRARY = "libtest"
OUT_DIR = "/home/user/bin"  # the cell's ~/bin, where the programs are
INTERPRETER = "/lib64/ld-linux-x86-64.so.2"
RECIPE = "1"
# Debian's gcc links --as-needed, nixpkgs' does not: upstream names -ltest before the source, which
# only a linker that keeps every library it is given turns into DT_NEEDED libtest.so.
NO_AS_NEEDED = ("-Wl,--no-as-needed",)
# Before glibc 2.34 dlopen() is in libdl (upstream builds on a newer glibc; with 2.34+ libdl is empty).
LIBDL = {"dlopen": ("-ldl",)}


@dataclass(frozen=True)
class Fixtures:
    """The compiled fixtures of one source in one build root, and libtest.so as a store path."""

    programs: dict[str, BuiltBinary]  # test name -> program
    library: StorePath  # lib/libtest.so


def script() -> str:
    """The build, as upstream's harness runs it (the source at /src, the output at /out)."""
    lines = ["set -e", "mkdir -p /out/lib", f"cc -fPIC -shared -o /out/lib/{LIBRARY}.so /src/tests/{LIBRARY}.c"]
    for name, libs in TESTS.items():
        argv = ["cc", "-o", f"/out/{name}", f'-DOUT_DIR="{OUT_DIR}"', f"-Wl,--dynamic-linker,{INTERPRETER}",
                *NO_AS_NEEDED, "-L", "/out/lib", *(f"-l{lib}" for lib in libs), f"/src/tests/{name}.c",
                *LIBDL.get(name, ())]
        lines.append(shlex.join(argv))
    return "\n".join(lines) + "\n"


def _compile(tree: SourceTree, root: BuildRoot, out: Path, entry: Path, progress: Progress) -> None:
    missing = [name for name in (*TESTS, LIBRARY) if not (tree.path / "tests" / f"{name}.c").is_file()]
    if missing:
        raise LdmatrixError(f"nix-ld {tree.version} ({tree.origin}) has no tests/{missing[0]}.c: its own tests are "
                            "2.x's (name a 2.x source)")
    argv = bwrap_argv(root.path, tree.path, out, ("sh", "-ec", script()))
    log = out / LOG_NAME
    log.write_text(f"# nix-ld {tree.version} tests, {tree.origin} ({tree.nar_hash}), build root {root.suite}\n"
                   + script())
    what = f"nix-ld {tree.version}'s test fixtures"
    rc = run_logged(argv, log, progress, what, BUILD_TIMEOUT, lambda line: None)
    if rc != 0:
        raise LdmatrixError(f"building {what} in {root.suite} failed {failure(log, entry, rc, BUILD_TIMEOUT)}")


def fixtures(tree: SourceTree, root: BuildRoot, cache: Cache, progress: Progress) -> Fixtures:
    """The fixtures of ``tree`` built in ``root`` (cached by the source, the recipe and the root)."""
    made_from = {"kind": "nix-ld-tests", "recipe": RECIPE, "source": tree.nar_hash, "suite": root.suite,
                 "root": root.digest, "script": script()}
    digest = nixbase32.digest(json.dumps(made_from, sort_keys=True))
    entry = cache_entry.Entry(cache, "builds", f"nix-ld-tests-{tree.version}-{root.suite}-{digest}")

    def fill(out: Path, scratch: Path) -> None:
        progress.step(f"building nix-ld {tree.version}'s test fixtures in {root.suite}")
        _compile(tree, root, out, entry.path, progress)

    cache_entry.ensure(entry, made_from, fill, progress, f"nix-ld {tree.version}'s test fixtures",
                       volatile=(LOG_NAME,))
    programs = {}
    for name in TESTS:
        path = entry.path / name
        programs[name] = BuiltBinary(reproducer=name, suite=root.suite, path=path,
                                     sha256=cache_entry.file_sha256(path), build_log=entry.path / LOG_NAME,
                                     interpreter=read_interpreter(path) or "")
    library = StorePath(LIBRARY, tree.version, digest, entry.path)
    return Fixtures(programs, library)
