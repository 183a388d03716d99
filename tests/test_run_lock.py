"""Runs that do not collide: one run per output directory, each cell's result written whole and once.

The lock is held by another process here, as it would be by a second `ldmatrix run` or `tox -e matrix`;
the lock file's name (``.lock``) is written out so that the same tests also run against a
harness that has no lock at all (and fail there, since the second run then goes ahead).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.cli import main

REPO = Path(__file__).resolve().parent.parent
SEED = REPO / "matrices" / "seed.yaml"
ONE_CELL = "c-hello.none.glibc-2.36"

HOLD = """
import fcntl, json, os, sys, time
path = sys.argv[1]
os.makedirs(os.path.dirname(path), exist_ok=True)
fd = os.open(path, os.O_RDWR | os.O_CREAT)
fcntl.flock(fd, fcntl.LOCK_EX)
os.ftruncate(fd, 0)
os.write(fd, json.dumps({"pid": os.getpid(), "command": "ldmatrix run matrices/seed.yaml -j 8",
                         "started": time.time()}).encode())
print("held", flush=True)
sys.stdin.read()
"""


@pytest.fixture
def held_out_dir(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    """``<out>/seed/`` held by another process, as a running `ldmatrix run` holds it."""
    out = tmp_path / "out"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(out / "seed" / ".lock")], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline() == "held\n"
    try:
        yield out, holder.pid
    finally:
        holder.communicate(input="", timeout=30)


def test_second_run_with_the_same_out_dir_fails_at_once(held_out_dir: tuple[Path, int],
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    out, pid = held_out_dir
    started = time.monotonic()
    status = main(["run", str(SEED), "-q", "--out", str(out), "-k", ONE_CELL])
    _, err = capsys.readouterr()
    assert status == 2, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert f"in use by another run (pid {pid}: ldmatrix run matrices/seed.yaml -j 8, since" in err
    assert "--out" in err
    assert time.monotonic() - started < 5  # at once: nothing provisioned, nothing run
    assert not (out / "seed" / "results.jsonl").exists() and not (out / "seed" / "cells").exists()


def test_pytest_plugin_holds_the_out_dir_too(held_out_dir: tuple[Path, int]) -> None:
    out, pid = held_out_dir
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "tests/test_matrix.py",
                           "--ldmatrix", str(SEED), "--ldmatrix-out", str(out), "-k", ONE_CELL],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert f"in use by another run (pid {pid}:" in proc.stdout + proc.stderr
    assert "--ldmatrix-out" in proc.stdout + proc.stderr
    assert not (out / "seed" / "results.jsonl").exists()


def test_result_log_writes_whole_lines_from_many_threads(tmp_path: Path) -> None:
    from harness.results import file as results_file
    from harness.model import Outcome
    from harness.results.outdir import ResultLog

    log = ResultLog(tmp_path / "results.jsonl", {"name": "t", "matrix": "m.yaml", "runner": "sandbox"})
    stdout = "x" * 70_000  # more than a pipe buffer (64 KiB) and than PIPE_BUF: one write still keeps it whole

    def writer(n: int) -> None:
        for i in range(10):
            log.write({"cell_id": f"cell-{n}-{i}", "outcome": Outcome.OK.value, "evidence": "e", "runner": "sandbox",
                       "duration": 0.0, "stdout": stdout})

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    log.close()
    loaded = results_file.read(tmp_path / "results.jsonl")
    assert not loaded.damaged and len(loaded.results) == 80 and loaded.header is not None


def test_a_second_result_for_a_cell_is_refused(tmp_path: Path) -> None:
    from harness.errors import LdmatrixError
    from harness.results.outdir import ResultLog

    log = ResultLog(tmp_path / "results.jsonl", {"name": "t"})
    record = {"cell_id": "c", "outcome": "ok", "evidence": "", "runner": "sandbox", "duration": 0.0}
    log.write(record)
    with pytest.raises(LdmatrixError, match="a second result for cell c"):
        log.write(record)
    log.close()
    assert len((tmp_path / "results.jsonl").read_text().splitlines()) == 2


def test_cell_folder_is_published_whole_and_once(tmp_path: Path) -> None:
    from harness.errors import LdmatrixError
    from harness.results.outdir import RunDirectory

    with RunDirectory(tmp_path, "seed") as rundir:
        rundir.begin({"name": "seed"}).close()
        staging = rundir.staging("a.b")
        assert staging.parent == rundir.cells_dir and staging.name.startswith(".tmp-a.b-")
        (staging / "stdout").write_text("out\n")
        final = rundir.publish(staging, "a.b")
        assert final == rundir.cells_dir / "a.b" and (final / "stdout").read_text() == "out\n"
        assert not staging.exists()
        again = rundir.staging("a.b")
        (again / "stdout").write_text("other\n")
        with pytest.raises(LdmatrixError, match="cannot publish"):
            rundir.publish(again, "a.b")
        assert (final / "stdout").read_text() == "out\n" and not again.exists()


def test_taking_the_directory_starts_a_fresh_run(tmp_path: Path) -> None:
    from harness.results.outdir import RunDirectory

    with RunDirectory(tmp_path, "seed") as rundir:
        rundir.begin({"name": "seed"}).close()
        rundir.publish(rundir.staging("old-cell"), "old-cell")
        (rundir.cells_dir / ".tmp-killed-run-cell-x").mkdir()  # left by a killed run
        rundir.scratch("old-cell")
    with RunDirectory(tmp_path, "seed") as rundir:
        assert (rundir.cells_dir / "old-cell").is_dir()  # held, but no results begun: the last run's stay
        rundir.begin({"name": "seed"}).close()
        assert list(rundir.cells_dir.iterdir()) == [] and list(rundir.scratch_dir.iterdir()) == []
    assert sorted(p.name for p in (tmp_path / "seed").iterdir()) == [".lock", "cells", "results.jsonl"]


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("bwrap") is None, reason="needs bubblewrap: apt-get install -y bubblewrap")
def test_two_runs_same_out_dir_do_not_interleave(tmp_path: Path) -> None:
    """Before: both ran, one's prepare() deleted the other's cell folders (false `error` outcomes), and
    results.jsonl got interleaved and junk lines. Now the second stops at once; the first is whole."""
    from harness.results import file as results_file

    def start(*extra: str) -> subprocess.Popen[str]:
        return subprocess.Popen([sys.executable, "-m", "harness", "run", str(SEED), "-q", "--out", "out",
                                 "-k", "glibc-2.3", "-j", "1", *extra], cwd=tmp_path, text=True,
                                env={**os.environ, "PYTHONPATH": str(REPO)},
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    first = start()
    lock = tmp_path / "out" / "seed" / ".lock"
    deadline = time.monotonic() + 60
    while not (lock.exists() and str(first.pid) in lock.read_text()):
        assert time.monotonic() < deadline and first.poll() is None, "the first run never took the directory"
        time.sleep(0.01)
    second = start("-j", "4")
    _, second_err = second.communicate(timeout=60)
    _, first_err = first.communicate(timeout=1800)
    assert second.returncode == 2 and len(second_err.splitlines()) == 1, second_err
    assert f"pid {first.pid}:" in second_err
    assert first.returncode == 0, first_err[-3000:]
    results = results_file.read(tmp_path / "out" / "seed" / "results.jsonl")
    assert not results.damaged
    ran = [r for r in results.results if r.outcome is not None]
    assert len({r.cell_id for r in results.results}) == len(results.results) > 0
    folders = sorted(p.name for p in (tmp_path / "out" / "seed" / "cells").iterdir())
    assert folders == sorted(r.cell_id for r in ran)  # one whole folder per cell that ran, no .tmp- left
