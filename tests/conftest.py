"""Shared fixtures: the bullseye build root and the stand-in interpreter built in it (slow tests only)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from harness.cache import Cache
from harness.loader.elf import read_interpreter
from harness.errors import LdmatrixError
from harness.model import BuildRoot
from harness.progress import NullProgress

# The plugin that turns matrix cells into tests (tests/test_matrix.py); elsewhere: -p harness.pytest_plugin
pytest_plugins = ["harness.pytest_plugin", "pytester"]  # pytester: the plugin run in a pytest of its own

FIXTURES = Path(__file__).resolve().parent / "fixtures"
STANDIN_FLAGS = ("-static", "-nostdlib", "-ffreestanding", "-fno-builtin", "-fno-tree-loop-distribute-patterns",
                 "-fno-stack-protector", "-fno-pie", "-no-pie", "-O2", "-Wall", "-Wextra", "-Werror",
                 "-Wl,-Ttext-segment=0x10000000")


def busybox_cell(glibc, workdir: Path):
    """``make(script, timeout)``: a PreparedCell running busybox ``sh -c script`` in the NixOS-like root
    of ``glibc`` (a GlibcSet; busybox is $BB), its HOME from ``workdir``."""
    import dataclasses

    from harness.prepare import nixos_root
    from testinfra_backend import bare_root

    base = bare_root(nixos_root(glibc), workdir)
    busybox = f"{glibc.shell.store_path}/bin/busybox"

    def make(script: str, timeout: float = 30.0):
        return dataclasses.replace(base, argv=(busybox, "sh", "-c", f"BB={busybox}; {script}"), timeout=timeout,
                                   env=(*base.env, ("BB", busybox)))
    return make


@pytest.fixture(scope="session")
def bullseye_root() -> BuildRoot:
    from harness import provision
    from harness.cache import Cache
    from harness.progress import NullProgress

    try:
        return provision.build_root("bullseye", Cache.default(), NullProgress())
    except LdmatrixError as err:
        pytest.skip(f"no bullseye build root: {err}")


def build_freestanding(root: BuildRoot, src: Path, source: str, out: Path, name: str) -> Path:
    """``src/source`` compiled with STANDIN_FLAGS in the build root: a static ELF without PT_INTERP."""
    from harness.reproducers import bwrap_argv

    command = ("gcc", *STANDIN_FLAGS, "-o", f"/out/{name}", f"/src/{source}")
    proc = subprocess.run(bwrap_argv(root.path, src, out, command), capture_output=True, text=True)
    binary = out / name
    assert proc.returncode == 0 and binary.is_file(), f"building {source} failed:\n{proc.stdout}{proc.stderr}"
    assert read_interpreter(binary) is None, f"{name} must be a static ELF without PT_INTERP"
    return binary


@pytest.fixture(scope="session")
def stub_ld() -> Path:
    """NixOS 24.05+'s stub-ld as ldmatrix builds it for its roots (harness/provision/stub_ld.py)."""
    from harness.provision import stub_ld as stub

    try:
        return stub.store_path(Cache.default(), NullProgress()).host_path
    except LdmatrixError as err:
        pytest.skip(f"stub-ld could not be built: {err}")


@pytest.fixture(scope="session")
def standin_interp(bullseye_root: BuildRoot, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tests/fixtures/standin_interp.c compiled (static, no PT_INTERP) in the bullseye build root."""
    return build_freestanding(bullseye_root, FIXTURES, "standin_interp.c", tmp_path_factory.mktemp("standin"),
                              "standin-interp")


@pytest.fixture(scope="session")
def nix_ld_archives() -> Path:
    """A directory of upstream's nix-ld release archives and its git bundle ($LDMATRIX_NIX_LD_ARCHIVES,
    which .ci/run sets; else ../shared/nix-ld beside the checkout)."""
    from harness.cache import REPO_ROOT
    from harness.nixld import archives_from_env

    for candidate in [*archives_from_env(), REPO_ROOT.parent / "shared" / "nix-ld"]:
        if (candidate / "nix-ld-1.2.2.tar.gz").is_file():
            return candidate
    pytest.skip("no nix-ld release archives: set LDMATRIX_NIX_LD_ARCHIVES to a directory holding "
                "nix-ld-1.2.2.tar.gz ... nix-ld-2.0.6.tar.gz and nix-ld.bundle (.ci/run does)")


# --- a local Nix store and a stand-in nixpkgs (tests/nixpkgs_standin.py), for --nixpkgs and the VM script

STANDIN_REV = "1" * 40
PINS_SOURCE = {"archive": "https://example.invalid/nixpkgs/{rev}.tar.gz",
               "head": "https://example.invalid/nixpkgs/commits/{channel}"}


@pytest.fixture(scope="session")
def local_nix_store(tmp_path_factory: pytest.TempPathFactory):
    for tool in ("nix-instantiate", "nix-store", "nix-build"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not found: apt-get install -y nix-bin (a local store needs no daemon)")
    store = tmp_path_factory.mktemp("nix") / "store"
    patch = pytest.MonkeyPatch()
    patch.setenv("LDMATRIX_NIX_STORE", str(store))
    patch.setenv("NIX_CONFIG", "substituters =\nsandbox = false")  # nothing to reach; builds need no sandbox here
    patch.delenv("NIX_REMOTE", raising=False)
    yield store
    patch.undo()


@pytest.fixture(scope="session")
def standin(tmp_path_factory: pytest.TempPathFactory, nix_ld_archives: Path):
    import nixpkgs_standin

    from harness import nixld, provision
    from harness.matrix import load
    from harness.provision.tools import provision_bash

    cache = Cache.default()
    glibc = provision.provision_glibc("2.36", cache, NullProgress())
    bash = provision_bash(cache, NullProgress())
    seed = load(Path(__file__).resolve().parent.parent / "matrices" / "seed.yaml")
    supply = nixld.Supply(archives=(nix_ld_archives,))
    built = nixld.provide(["2.0.6"], supply, seed.nix_ld_sources, cache, NullProgress())
    assert "2.0.6" in built.store_paths, built.missing
    return nixpkgs_standin.make(tmp_path_factory.mktemp("standin"), glibc, bash, built.store_paths["2.0.6"])


@pytest.fixture(scope="session")
def standin_pins_file(standin, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The pins file as `ldmatrix pins update` writes it, the network replaced by the stand-in's archive."""
    import nixpkgs_standin
    from harness.commands import pins as pins_cli
    from harness.cli import main

    path = tmp_path_factory.mktemp("pins") / "pins.json"
    path.write_text(json.dumps({"source": PINS_SOURCE, "pins": {
        nixpkgs_standin.NAME: {"channel": "standin", "rev": None, "url": None, "sha256": None, "glibc": None,
                               "supported": True}}}))

    def fetch(url: str, dest: Path) -> None:
        if url == PINS_SOURCE["head"].format(channel="standin"):
            dest.write_text(json.dumps({"sha": STANDIN_REV}))
        elif url == PINS_SOURCE["archive"].format(rev=STANDIN_REV):
            shutil.copyfile(standin.archive, dest)
        else:
            raise AssertionError(f"unexpected fetch {url}")

    patch = pytest.MonkeyPatch()
    patch.setattr(pins_cli, "FETCH", fetch)
    try:
        assert main(["pins", "--pins", str(path), "update", nixpkgs_standin.NAME, "-q"]) == 0
    finally:
        patch.undo()
    # fetchTarball takes file:// as it takes https:// (the URL pins update wrote names the network)
    raw = json.loads(path.read_text())
    raw["pins"][nixpkgs_standin.NAME]["url"] = standin.archive.as_uri()
    path.write_text(json.dumps(raw))
    return path


