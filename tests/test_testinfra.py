"""testinfra hosts for the roots, under both runners: the state of the roots the matrix relies on."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import testinfra.backend

from harness.docker import engine as docker_engine
from harness.cache import Cache
from harness.model import Cell, GlibcSet, PreparedCell, StorePath, Strategy
from harness.progress import NullProgress
from testinfra_backend import SCHEME, bare_root, docker_host, register_backend, sandbox_host

LOADER = "/lib64/ld-linux-x86-64.so.2"
DOCKER_REASON = docker_engine.unavailable()
pytestmark = pytest.mark.slow


@contextmanager
def sandbox(prepared: PreparedCell) -> Iterator[object]:
    yield sandbox_host(prepared)


HOSTS = [
    pytest.param(sandbox, id="sandbox"),
    pytest.param(docker_host, id="docker", marks=[
        pytest.mark.docker, pytest.mark.skipif(DOCKER_REASON is not None, reason=f"no Docker engine: {DOCKER_REASON}")]),
]


@pytest.fixture(scope="module")
def glibc() -> GlibcSet:
    from harness import provision

    return provision.provision_glibc("2.36", Cache.default(), NullProgress())


def nix_ld_cell(glibc: GlibcSet, tmp_path: Path) -> PreparedCell:
    """A nix-ld cell prepared with a wiring fixture standing where nix-ld goes (not a nix-ld; never run)."""
    from harness import matrix as matrix_mod
    from harness.cache import REPO_ROOT
    from harness.prepare import Provisioned, prepare
    from harness.session import RunOptions, provision_all, release_of

    fixture = tmp_path / "store" / f"{'f' * 32}-nix-ld-wiring-fixture"
    (fixture / "libexec").mkdir(parents=True)
    (fixture / "libexec" / "nix-ld").write_text("wiring fixture, not nix-ld\n")
    matrix = matrix_mod.load(REPO_ROOT / "matrices" / "seed.yaml")
    cell = Cell(binary="c-hello", strategy=(Strategy.NIX_LD,), glibc=glibc.glibc_version, nix_ld="wiring-fixture")
    art = provision_all(matrix, (cell,), RunOptions(), NullProgress())
    store_path = StorePath("nix-ld", "wiring-fixture", "f" * 32, fixture)
    art = Provisioned(glibc=art.glibc, roots=art.roots, binaries=art.binaries, nix_ld={"wiring-fixture": store_path})
    prepared = prepare(cell, matrix.binaries["c-hello"], None, art, tmp_path / "cell", 10.0,
                       release=release_of(matrix, cell, art.glibc))
    assert isinstance(prepared, PreparedCell)
    return prepared


def test_the_backend_is_registered_by_url_scheme() -> None:
    register_backend()
    assert testinfra.backend.get_backend_class(SCHEME).__name__ == "SandboxBackend"


@pytest.mark.parametrize("host_of", HOSTS)
def test_nixos_root_has_no_fhs_library_dirs_and_the_store_glibc(host_of, glibc: GlibcSet, tmp_path: Path) -> None:
    from harness.prepare import nixos_root

    with host_of(bare_root(nixos_root(glibc), tmp_path)) as host:
        assert host.file("/bin/sh").is_symlink
        assert host.file(glibc.loader).is_file, f"the store glibc's loader is not at {glibc.loader}"
        for absent in (LOADER, "/lib64", "/lib", "/usr/lib", "/usr"):
            assert not host.file(absent).exists, f"{absent} exists in the NixOS-like root"
        assert host.run("echo hi").stdout == "hi\n"


@pytest.mark.parametrize("host_of", HOSTS)
def test_only_the_nix_ld_strategy_installs_the_loader_link(host_of, glibc: GlibcSet, tmp_path: Path) -> None:
    prepared = nix_ld_cell(glibc, tmp_path)
    with host_of(prepared) as host:
        link = host.file(LOADER)
        assert link.is_symlink and link.exists, "nix-ld's /lib64 link missing or dangling"
        assert host.file("/run/current-system/sw/share/nix-ld/lib/ld.so").is_symlink
        assert host.file(glibc.loader).is_file
        assert not host.file("/usr/lib").exists


@pytest.mark.parametrize("host_of", HOSTS)
def test_fhs_root_has_its_loader(host_of, tmp_path: Path) -> None:
    from harness import provision
    from harness.prepare import fhs_root

    root = provision.build_root("bullseye", Cache.default(), NullProgress())
    with host_of(bare_root(fhs_root(root), tmp_path)) as host:
        assert host.file(LOADER).exists and host.file("/usr/bin/gcc").exists


def patchelf_cell(glibc: GlibcSet, tmp_path: Path) -> PreparedCell:
    from harness import matrix as matrix_mod
    from harness.cache import REPO_ROOT
    from harness.prepare import prepare
    from harness.session import RunOptions, provision_all, release_of

    matrix = matrix_mod.load(REPO_ROOT / "matrices" / "seed.yaml")
    cell = Cell(binary="c-hello", strategy=(Strategy.PATCHELF,), glibc=glibc.glibc_version)
    art = provision_all(matrix, (cell,), RunOptions(), NullProgress())
    prepared = prepare(cell, matrix.binaries["c-hello"], None, art, tmp_path / "cell", 10.0,
                       release=release_of(matrix, cell, art.glibc))  # the seed's NixOS, 23.11
    assert isinstance(prepared, PreparedCell)
    return prepared


@pytest.mark.parametrize("host_of", HOSTS)
def test_the_nixos_root_looks_like_nixos_to_a_real_program(host_of, glibc: GlibcSet, tmp_path: Path) -> None:
    """/etc, /run/current-system/sw/bin and /usr/bin/env as NixOS has them, and nothing at /lib*."""
    with host_of(patchelf_cell(glibc, tmp_path)) as host:
        assert host.file("/etc/os-release").contains("^ID=nixos$")
        assert host.run("/run/current-system/sw/bin/id -un").stdout == "user\n"
        assert host.run("/run/current-system/sw/bin/id -gn").stdout == "users\n"
        assert host.file("/usr/bin/env").is_symlink
        ldd = host.run("/run/current-system/sw/bin/ldd --version")
        assert ldd.rc == 0 and ldd.stdout.splitlines()[0].endswith(" 2.36"), ldd.stdout + ldd.stderr
        assert host.file("/etc/ssl/certs/ca-certificates.crt").contains("BEGIN CERTIFICATE")
        assert host.run("/run/current-system/sw/bin/date +%Z").stdout == "UTC\n"
        # /bin/sh is the store's bash, loaded by the store glibc's ld.so (uv reads its PT_INTERP)
        sh = host.file("/bin/sh").linked_to
        assert sh.startswith("/nix/store/") and sh.endswith("/bin/bash"), sh
        assert host.run("/bin/sh -c 'echo ${BASH_VERSION%%.*}'").stdout.strip().isdigit()
        assert host.run("grep -c ^ID= /etc/os-release").stdout == "1\n"  # grep, sed, find as on NixOS
        for absent in (LOADER, "/lib64", "/lib", "/usr/lib"):
            assert not host.file(absent).exists, f"{absent} exists in the NixOS-like root"
