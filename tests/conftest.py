"""Shared fixtures: the bullseye build root and the stand-in interpreter built in it (slow tests only)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from harness.elf import read_interpreter
from harness.errors import LdmatrixError
from harness.model import BuildRoot

# The plugin that turns matrix cells into tests (tests/test_matrix.py); elsewhere: -p harness.pytest_plugin
pytest_plugins = ["harness.pytest_plugin"]

FIXTURES = Path(__file__).resolve().parent / "fixtures"
STANDIN_FLAGS = ("-static", "-nostdlib", "-ffreestanding", "-fno-builtin", "-fno-tree-loop-distribute-patterns",
                 "-fno-stack-protector", "-fno-pie", "-no-pie", "-O2", "-Wall", "-Wextra", "-Werror",
                 "-Wl,-Ttext-segment=0x10000000")


@pytest.fixture(scope="session")
def bullseye_root() -> BuildRoot:
    from harness import provision
    from harness.cache import Cache
    from harness.progress import NullProgress

    try:
        return provision.build_root("bullseye", Cache.default(), NullProgress())
    except LdmatrixError as err:
        pytest.skip(f"no bullseye build root: {err}")


@pytest.fixture(scope="session")
def standin_interp(bullseye_root: BuildRoot, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tests/fixtures/standin_interp.c compiled (static, no PT_INTERP) in the bullseye build root."""
    from harness.reproducers import bwrap_argv

    out = tmp_path_factory.mktemp("standin")
    command = ("gcc", *STANDIN_FLAGS, "-o", "/out/standin-interp", "/src/standin_interp.c")
    proc = subprocess.run(bwrap_argv(bullseye_root.path, FIXTURES, out, command), capture_output=True, text=True)
    binary = out / "standin-interp"
    assert proc.returncode == 0 and binary.is_file(), f"building the stand-in failed:\n{proc.stdout}{proc.stderr}"
    assert read_interpreter(binary) is None, "the stand-in must be a static ELF without PT_INTERP"
    return binary


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
