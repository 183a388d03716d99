"""Programs that attack their cell or the run, and runs that are interrupted (issue 15): each is a
real run, in bubblewrap (and docker where an engine is running), of a program doing it.

The hostile program is the host's own bash (``file: /bin/bash``, a dynamically linked Debian
program) run with ``-c SCRIPT`` in the ``container`` strategy's trixie root, so a test needs no
build of its own; a sandbox-level test runs busybox in the NixOS-like root directly.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.root.limits import CELL, cgroups_work
from harness.model import GlibcSet
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
    from conftest import busybox_cell

    return busybox_cell(glibc, tmp_path / "cell")


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


# ------------------------------------------------------------------------------------------------ HOME

@pytest.mark.parametrize("runner", ["sandbox", pytest.param("docker", marks=pytest.mark.docker)])
def test_home_is_the_cells_own_bounded_tmpfs(cell, tmp_path: Path, runner: str) -> None:
    """Before: HOME was a directory of --out on the host, unbounded: a cell wrote 3 GiB there, and got
    a false "reached its memory limit" line (cgroup v1's failcnt counts the page cache)."""
    from harness.docker import engine as docker_engine
    from harness.runners.docker import DockerRunner

    if runner == "docker" and docker_engine.unavailable():
        pytest.skip(f"no Docker engine: {docker_engine.unavailable()}")
    script = ("$BB stat -c '%u:%g %a' $HOME; mkdir -p $HOME/.cache/x && echo made; "
              "i=0; while [ $i -lt 6 ]; do $BB dd if=/dev/zero of=$HOME/f$i bs=1M count=250 2>&1; "
              "i=$((i+1)); done; $BB du -sm $HOME | $BB cut -f1")
    result = (SandboxRunner() if runner == "sandbox" else DockerRunner()).run(cell(script, timeout=120))
    lines = result.stdout.splitlines()
    assert lines[:2] == ["1000:100 755", "made"], result
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


# ------------------------------------------------------------------------------------------------ runs

def _matrix(tmp_path: Path, script: str, *, names: tuple[str, ...] = ("a",), timeout: int = 60) -> Path:
    """A matrix whose binaries are the host's bash running ``script`` in trixie's root (container)."""
    binaries = "".join(f"  {name}: {{file: '{BASH}', built_in: trixie, run: ['-c', {json.dumps(script)}]}}\n"
                       for name in names)
    path = tmp_path / "h.yaml"
    path.write_text(f"name: h\ntimeout: {timeout}\nbinaries:\n{binaries}"
                    "axes: {strategy: [container], glibc: ['2.41']}\nexpect: [{outcome: ok}]\n")
    return path


def _run(matrix: Path, out: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "harness", "run", str(matrix), "-q", "--out", str(out), *extra],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _lines(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "h" / "results.jsonl").read_text().splitlines()[1:]]


def test_a_cell_that_builds_a_5000_deep_tree_in_home_is_recorded_and_the_next_run_works(tmp_path: Path) -> None:
    """Before: rmtree's RecursionError ended the run, its line was lost, the next run in that --out
    removed the old results and crashed too, and .old-.scratch-<pid> stayed forever."""
    try:
        _deep_home_twice(tmp_path)
    finally:  # a deep tree left in pytest's directories would break pytest's own clean-up later
        subprocess.run(["rm", "-rf", "--one-file-system", str(tmp_path / "out")], check=False)


def _deep_home_twice(tmp_path: Path) -> None:
    deep = "$(printf 'a/%.0s' $(seq 5000))"  # GNU mkdir -p goes down one level at a time: no PATH_MAX
    matrix = _matrix(tmp_path, f"cd ~ && mkdir -p {deep} && cd /tmp && mkdir -p {deep} && "
                               "test $(find ~ -type d | wc -l) -gt 5000 && echo deep")
    out = tmp_path / "out"
    for _ in range(2):
        proc = _run(matrix, out)
        stdout, stderr = proc.communicate(timeout=600)
        assert proc.returncode == 0, stdout[-2000:] + stderr[-2000:]
        (line,) = _lines(out)
        assert line["outcome"] == "ok" and line["evidence"] == "exit 0", line
        assert sorted(p.name for p in (out / "h").iterdir()) == [".lock", "cells", "results.jsonl"]


def _wait_for_running(out: Path, count: int, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        cells = out / "h" / "cells"
        if cells.is_dir() and len([p for p in cells.iterdir() if (p / "command.sh").exists()]) >= count:
            time.sleep(1.0)  # command.sh is written just before the sandbox starts
            return
        time.sleep(0.1)
    pytest.fail(f"the cells never started: {proc.communicate()[1][-2000:] if proc.poll() is not None else ''}")


SLEEPER = "exec sleep 57.123"  # the cell's process, found by its argument afterwards


def _stopped_at_once(tmp_path: Path, *extra: str, presses: int = 1) -> tuple[str, list[dict], Path, int]:
    out = tmp_path / "out"
    proc = _run(_matrix(tmp_path, SLEEPER, names=("a", "b"), timeout=60), out, "-j", "2", *extra)
    _wait_for_running(out, 2, proc)
    begun = time.monotonic()
    for _ in range(presses):
        proc.send_signal(signal.SIGINT)  # nothing when it has ended already
        time.sleep(0.2)
    stdout, stderr = proc.communicate(timeout=60)
    assert time.monotonic() - begun < 15, "Ctrl-C waited for the cells' timeout"
    assert proc.returncode == 130, stdout[-2000:] + stderr[-2000:]
    assert subprocess.run(["pgrep", "-f", "sleep 57.123"], capture_output=True).returncode == 1, "a cell lives on"
    cells = out / "h" / "cells"
    assert not [p for p in cells.iterdir() if p.name.startswith(".tmp-")], "a half-written cell folder is left"
    return stdout, _lines(out), cells, proc.pid


def test_ctrl_c_stops_the_running_cells_at_once_and_records_them(tmp_path: Path) -> None:
    """Before: SIGINT waited for the running cells' full timeout (57 s of a 60 s one), and their lines
    were missing though their folders were published."""
    stdout, lines, cells, _ = _stopped_at_once(tmp_path)
    assert len(lines) == 2 and all(r["outcome"] == "error" and r["rc"] is None for r in lines), lines
    assert all(r["evidence"].startswith("interrupted (Ctrl-C) after") for r in lines)
    assert list(cells.iterdir()) == []  # an interrupted cell has no folder: nothing of it is a result
    assert "a  container" in stdout and "h: interrupted: 2 of 2 cells recorded (2 stopped while running" in stdout


def test_a_second_ctrl_c_stops_at_once(tmp_path: Path) -> None:
    _stopped_at_once(tmp_path, presses=2)


@pytest.mark.docker
def test_ctrl_c_stops_the_running_containers_at_once(tmp_path: Path) -> None:
    from harness.docker import engine as docker_engine

    reason = docker_engine.unavailable()
    if reason is not None:
        pytest.skip(f"no Docker engine: {reason}")
    from harness.docker.containers import PID

    _, lines, _, pid = _stopped_at_once(tmp_path, "--runner", "docker")
    assert len(lines) == 2 and all(r["evidence"].startswith("interrupted (Ctrl-C) after") for r in lines), lines
    assert docker_engine.client().containers.list(all=True, filters={"label": f"{PID}={pid}"}) == []
