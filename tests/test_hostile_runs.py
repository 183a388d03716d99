"""Programs that attack their cell or the run, and runs that are interrupted (issue 15): each is a
real run, in bubblewrap (and docker where an engine is running), of a program doing it.

The hostile program is the host's own bash (``file: /bin/bash``, a dynamically linked Debian
program) run with ``-c SCRIPT`` in the ``container`` strategy's trixie root, so a test needs no
build of its own; a sandbox-level test runs busybox in the NixOS-like root directly.
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest

from harness.limits import CELL, cgroups_work
from harness.model import GlibcSet, PreparedCell
from harness.runners.sandbox import SandboxRunner

REPO = Path(__file__).resolve().parent.parent
BASH = Path("/bin/bash").resolve()

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(shutil.which("bwrap") is None, reason="needs bubblewrap: apt-get install -y bubblewrap")]


@pytest.fixture(scope="module")
def glibc() -> GlibcSet:
    from harness import provision
    from harness.cache import Cache
    from harness.progress import NullProgress

    return provision.provision_glibc("2.36", Cache.default(), NullProgress())


@pytest.fixture
def cell(glibc: GlibcSet, tmp_path: Path):
    """``cell(script, timeout)``: busybox ``sh -c script`` in the NixOS-like root (busybox as $BB)."""
    from harness.prepare import nixos_root
    from harness.testinfra_backend import bare_root

    base = bare_root(nixos_root(glibc), tmp_path / "cell")
    busybox = f"{glibc.shell.store_path}/bin/busybox"

    def make(script: str, timeout: float = 60.0) -> PreparedCell:
        return dataclasses.replace(base, argv=(busybox, "sh", "-c", f"BB={busybox}; {script}"), timeout=timeout,
                                   env=(*base.env, ("BB", busybox)))
    return make


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


# ------------------------------------------------------------------------------------------------ HOME

def test_home_is_the_cells_own_bounded_tmpfs(cell, tmp_path: Path) -> None:
    """Before: HOME was a directory of --out on the host, unbounded: a cell wrote 3 GiB there, and got
    a false "reached its memory limit" line (cgroup v1's failcnt counts the page cache)."""
    script = ("$BB stat -c '%u:%g %a' $HOME; mkdir -p $HOME/.cache/x && echo made; "
              "i=0; while [ $i -lt 6 ]; do $BB dd if=/dev/zero of=$HOME/f$i bs=1M count=250 2>&1; "
              "i=$((i+1)); done; $BB du -sm $HOME | $BB cut -f1")
    result = SandboxRunner().run(cell(script, timeout=120))
    lines = result.stdout.splitlines()
    assert lines[:2] == ["1000:100 700", "made"], result
    assert "No space left on device" in result.stdout, result.stdout
    assert int(lines[-1]) <= CELL.home >> 20
    assert _size(tmp_path / "cell" / "home") < 1 << 20, "the cell wrote into the host"
    assert "memory limit" not in result.stderr, result.stderr


@pytest.mark.skipif(not cgroups_work(), reason="the memory verdict needs a cgroup this user can make")
def test_the_memory_line_comes_from_an_oom_kill(cell) -> None:
    big = CELL.memory + (256 << 20)
    result = SandboxRunner().run(cell(f"$BB dd if=/dev/zero of=/dev/null bs={big} count=1 && echo GOT-IT"))
    assert "GOT-IT" not in result.stdout
    assert f"reached its memory limit ({CELL.memory >> 20} MiB)" in result.stderr, result


def test_the_harness_files_in_home_are_there_and_home_is_writable(cell) -> None:
    home = cell("true").mounts[0].host
    (home / ".ldmatrix").mkdir()
    (home / ".ldmatrix" / "record.sh").write_text("echo sourced\n")
    result = SandboxRunner().run(cell(". $HOME/.ldmatrix/record.sh; echo x > $HOME/.ldmatrix/launch.expect && "
                                      "$BB cat $HOME/.ldmatrix/launch.expect; echo y > $HOME/.ldmatrix/record.sh"))
    assert result.stdout.splitlines()[:2] == ["sourced", "x"], result
    assert "Read-only file system" in result.stderr  # the harness's own files are read-only
    assert (home / ".ldmatrix" / "record.sh").read_text() == "echo sourced\n"
    assert not (home / ".ldmatrix" / "launch.expect").exists()
