"""The store glibc as nixpkgs builds it (harness/provision/glibc_build.py): the loader searches its own
lib/ and libgcc's lib/ and reads no /etc/ld.so.cache, as nixpkgs' loader does."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from harness.loader import elf
from harness.root.bwrap import Bind, sandbox_argv
from harness.cache import Cache
from harness.errors import LdmatrixError, ProvisionError
from harness.model import GlibcSet
from harness.loader.patchelf import patchelf_command
from harness.progress import NullProgress
from harness.provision import glibc_build
from harness.provision.suites import SUITES

PROBE_NEEDS = "libldmatrix-probe.so.1"  # a library no directory has: the loader searches every one


def test_a_source_without_the_line_a_nixpkgs_patch_changes_is_refused(tmp_path: Path) -> None:
    (tmp_path / "elf").mkdir()
    (tmp_path / "elf" / "rtld.c").write_text('static const char preload_file[] = "/etc/ld.so.preload.x";\n' * 2)
    with pytest.raises(ProvisionError, match="not one"):
        glibc_build._substitute(tmp_path, glibc_build.PRELOAD_LINE, "/nix/store/x-glibc-9.9")


def test_the_cache_path_moves_into_the_prefix(tmp_path: Path) -> None:
    header = tmp_path / "sysdeps" / "generic" / "dl-cache.h"
    header.parent.mkdir(parents=True)
    header.write_text('#ifndef LD_SO_CACHE\n# define LD_SO_CACHE SYSCONFDIR "/ld.so.cache"\n#endif\n')
    glibc_build._substitute(tmp_path, glibc_build.CACHE_LINE, "/nix/store/x-glibc-9.9")
    assert '# define LD_SO_CACHE "/nix/store/x-glibc-9.9/etc/ld.so.cache"' in header.read_text()


def test_the_outputs_are_nixpkgs(tmp_path: Path) -> None:
    installed = tmp_path / "installed"
    for relative in ("lib/libc.so.6", "lib/libc.a", "lib/libc_nonshared.a", "bin/ldd", "sbin/ldconfig",
                     "include/stdio.h", "etc/ld.so.cache", "etc/rpc", "var/db/Makefile", "libexec/getconf/x"):
        (installed / relative).parent.mkdir(parents=True, exist_ok=True)
        (installed / relative).write_text("x")
    out, programs = tmp_path / "out", tmp_path / "bin"
    out.mkdir()
    glibc_build._split_outputs(installed, out, programs)
    assert sorted(p.name for p in (out / "lib").iterdir()) == ["libc.so.6", "libc_nonshared.a"]
    assert os.readlink(out / "lib64") == "lib"
    assert (programs / "bin" / "ldd").is_file() and (programs / "sbin" / "ldconfig").is_file()
    assert not (out / "include").exists() and not (out / "var").exists()
    assert (out / "etc" / "rpc").is_file() and not (out / "etc" / "ld.so.cache").exists()


def _glibc(version: str) -> GlibcSet:
    from harness import provision

    try:
        return provision.provision_glibc(version, Cache.default(), NullProgress())
    except LdmatrixError as err:
        pytest.skip(f"no store glibc {version}: {err}")


def _run_loader(glibc: GlibcSet, *args: str, env: tuple[tuple[str, str], ...] = (), extra: tuple[Bind, ...] = ()):
    """The store loader, run in a root that holds only the glibc set's store paths (no /etc, no /lib)."""
    binds = tuple(Bind(p.host_path, p.store_path) for p in glibc.store_paths) + extra
    argv = sandbox_argv([], binds, (glibc.loader, *args), cwd="/", env=(("PATH", "/"), *env))
    return subprocess.run(argv, capture_output=True, text=True, timeout=60)


def _search_path(debug: str) -> tuple[str, ...]:
    """The directories of LD_DEBUG=libs' ``(system search path)`` line, hardware-capability subdirectories
    (tls/, haswell/, glibc-hwcaps/…) folded into the directory they are under."""
    line = next(l for l in debug.splitlines() if "(system search path)" in l)
    entries = line.split("search path=", 1)[1].split("(system search path)")[0].strip().split(":")
    bases: list[str] = []
    for entry in entries:
        if not any(entry.startswith(base + "/") for base in bases) and entry not in bases:
            bases = [b for b in bases if not b.startswith(entry + "/")]
            bases.append(entry)
    return tuple(bases)


@pytest.mark.slow
@pytest.mark.parametrize("version", sorted(SUITES))
def test_the_loader_searches_what_nixpkgs_loader_searches(version: str, tmp_path: Path) -> None:
    """nixpkgs: its own lib/, then libgcc's lib/ (user-defined-trusted-dirs), and no ld.so.cache of /etc."""
    glibc = _glibc(version)
    nixpkgs = (glibc.glibc.lib_dir, glibc.gcc_lib.lib_dir)
    # what the build compiled in, as harness/loader/predict.py reads it
    assert elf.loader_search_path(glibc.glibc.host_path / "lib" / "ld-linux-x86-64.so.2", glibc.glibc.lib_dir) \
        == nixpkgs
    # what the loader says while it searches (every version): a program needing a library nowhere
    probe = tmp_path / "probe"
    programs = glibc.programs
    assert programs is not None
    shutil.copy(programs / "bin" / "getconf", probe)
    subprocess.run([patchelf_command(), "--add-needed", PROBE_NEEDS, str(probe)], check=True)
    done = _run_loader(glibc, "--list", "/probe", env=(("LD_DEBUG", "libs"),), extra=(Bind(probe, "/probe"),))
    debug = done.stdout + done.stderr
    assert _search_path(debug) == nixpkgs
    assert f"{PROBE_NEEDS}: cannot open shared object file" in debug
    # the one cache it would read is its own (nixpkgs' dont-use-system-ld-so-cache), which is not there
    assert f"search cache={glibc.glibc.store_path}/etc/ld.so.cache" in debug or "search cache=" not in debug
    assert "search cache=/etc/ld.so.cache" not in debug
    # what it says of itself (glibc 2.33 and later print the search path in --help)
    if tuple(int(x) for x in version.split(".")) >= (2, 33):
        helped = _run_loader(glibc, "--help")
        listed = tuple(l.strip().removesuffix(" (system search path)") for l in helped.stdout.splitlines()
                       if l.endswith("(system search path)"))
        assert listed == nixpkgs
        assert f"(libraries located via {glibc.glibc.store_path}/etc/ld.so.cache)" in helped.stdout
        assert not (glibc.glibc.host_path / "etc" / "ld.so.cache").exists()


@pytest.mark.slow
def test_libgcc_s_is_found_with_no_runpath_and_no_list(tmp_path: Path) -> None:
    """The trusted directory is real: a program needing libgcc_s.so.1 resolves it through the loader alone."""
    glibc = _glibc("2.41")
    probe = tmp_path / "probe"
    assert glibc.programs is not None
    shutil.copy(glibc.programs / "bin" / "getconf", probe)
    subprocess.run([patchelf_command(), "--add-needed", "libgcc_s.so.1", str(probe)], check=True)
    done = _run_loader(glibc, "--list", "/probe", extra=(Bind(probe, "/probe"),))
    assert f"libgcc_s.so.1 => {glibc.gcc_lib.lib_dir}/libgcc_s.so.1" in done.stdout, done.stdout + done.stderr


def test_a_failed_build_sets_its_log_aside_and_quotes_makes_error(tmp_path: Path) -> None:
    from harness.provision.buildrun import failure

    entry = tmp_path / "abc-glibc-2.41"
    log = tmp_path / "abc-glibc-2.41.log"
    log.write_text("# glibc 2.41\n$ make\ngcc -c a.c\nmake[2]: *** [Makerules:1] Error 1\nmake: leaving\n")
    said = failure(log, entry, 2, 3600.0, errors=glibc_build.MAKE_ERRORS)
    failed = tmp_path / "abc-glibc-2.41.failed.log"
    assert said == f"(exit 2); log: {failed}; last lines: make[2]: *** [Makerules:1] Error 1"
    assert failed.is_file() and not log.exists()
    log.write_text("gcc -c a.c\nstill compiling\n")  # killed at its time limit: no error line, its last lines
    assert failure(log, entry, None, 3600.0) == \
        f"(timed out after 3600 s); log: {failed}; last lines: gcc -c a.c | still compiling"
