"""The seed matrix spread over shards and merged equals the run on one machine; cells in parallel with
pytest-xdist. Real runs in bubblewrap."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SEED = REPO / "matrices" / "seed.yaml"
SELECT = "glibc-2.41"  # one column of the seed: every strategy, nix-ld, launch and environment

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("bwrap") is None, reason="needs bubblewrap: apt-get install -y bubblewrap"),
]


def ldmatrix(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True, text=True, cwd=cwd,
                          env={**_env(), "PYTHONPATH": str(REPO)}, timeout=1800)


def _env() -> dict[str, str]:
    import os

    return dict(os.environ)


def _cells(path: Path) -> dict[str, dict]:
    records = [json.loads(line) for line in path.read_text().splitlines()]
    return {r["cell_id"]: r for r in records if "cell_id" in r}


def _grid(stdout: str) -> str:
    """The grid a run prints: everything before the legend line."""
    return stdout.split("\ncells: ", 1)[0]


SAME = ("outcome", "expected", "bug", "skip_reason", "rc", "evidence", "axes", "argv", "env")


def test_three_shards_merged_equal_the_unsharded_run(tmp_path: Path) -> None:
    whole = ldmatrix("run", str(SEED), "-k", SELECT, "--out", "whole", "-q", "--markdown", "whole.md", cwd=tmp_path)
    assert whole.returncode in (0, 1), whole.stdout[-3000:] + whole.stderr[-3000:]  # 1: a cell not as expected
    shards = []
    for k in (1, 2, 3):
        proc = ldmatrix("run", str(SEED), "-k", SELECT, "--shard", f"{k}/3", "--out", f"shard{k}", "-q", cwd=tmp_path)
        assert proc.returncode in (0, 1), proc.stdout[-3000:] + proc.stderr[-3000:]
        shards.append(tmp_path / f"shard{k}" / "seed" / "results.jsonl")
    sizes = [len(_cells(s)) for s in shards]
    assert all(sizes) and sum(sizes) == len(_cells(tmp_path / "whole" / "seed" / "results.jsonl"))
    merged = ldmatrix("merge", *map(str, shards), "--out", "merged", "--markdown", "merged.md", cwd=tmp_path)
    assert merged.returncode == whole.returncode, merged.stdout[-3000:] + merged.stderr[-3000:]

    one, many = _cells(tmp_path / "whole" / "seed" / "results.jsonl"), _cells(tmp_path / "merged" / "seed" / "results.jsonl")
    assert one.keys() == many.keys()
    for cell_id, record in one.items():
        for key in SAME:
            assert (cell_id, key, record[key]) == (cell_id, key, many[cell_id][key])
        if record["outcome"] is not None:  # its folder came along: show and command.sh work on the merged run
            assert Path(many[cell_id]["extra"]["workdir"], "command.sh").is_file()
            assert Path(many[cell_id]["extra"]["workdir"]).is_relative_to(tmp_path / "merged")
    assert _grid(merged.stdout) == _grid(whole.stdout)
    assert (tmp_path / "merged.md").read_text() == (tmp_path / "whole.md").read_text()
    again = ldmatrix("run", str(SEED), "-k", SELECT, "--shard", "2/3", "--out", "again", "-q",
                     "--baseline", "whole/seed/results.jsonl", cwd=tmp_path)
    assert "no cell changed" in again.stdout, again.stdout[-3000:]  # the cells of other shards are not "gone"
    show = ldmatrix("show", "c-hello.patchelf.glibc-2.41", "--results", "merged/seed/results.jsonl", cwd=tmp_path)
    assert show.returncode == 0 and "LDMATRIX-CHECK: ok" in show.stdout, show.stderr


TINY = """\
name: tiny
binaries:
  c-hello: {reproducer: hello, built_in: bullseye}
  c-needs-glibc-2.38: {reproducer: needs-glibc-2.38, built_in: trixie}
axes: {strategy: [none, patchelf, patchelf+LD_LIBRARY_PATH], glibc: ["2.36", "2.41"]}
expect:
  - {when: {strategy: none}, outcome: missing-interpreter}
  - {when: {binary: c-needs-glibc-2.38, glibc: "2.36"}, outcome: glibc-too-old}
  - {outcome: ok}
"""


def test_the_matrix_runs_in_parallel_with_xdist_into_one_results_file(tmp_path: Path) -> None:
    if importlib.util.find_spec("xdist") is None:
        pytest.fail("pytest-xdist is not installed: it is a test dependency (tox.ini installs it)")
    matrix = tmp_path / "tiny.yaml"
    matrix.write_text(TINY)
    out = tmp_path / "out"
    # as `tox -e matrix -- MATRIX -n 2` runs it
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "tests/test_matrix.py",
                           str(matrix), "--ldmatrix-out", str(out), "-n", "2"],
                          capture_output=True, text=True, cwd=REPO, env={**_env(), "PYTHONPATH": str(REPO)},
                          timeout=1800)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "12 passed" in proc.stdout and "ldmatrix grid: tiny" in proc.stdout
    cells = _cells(out / "tiny" / "results.jsonl")
    assert len(cells) == 12 and all(r["outcome"] == r["expected"] for r in cells.values())
    workers = {r["extra"]["workdir"] for r in cells.values()}
    assert all(Path(w).parent == out / "tiny" / "cells" for w in workers)
    assert not (out / "tiny" / ".workers").exists()
    header = json.loads((out / "tiny" / "results.jsonl").read_text().splitlines()[0])
    assert sorted(Path(f).parts[-3] for f in header["merged"]) == ["gw0", "gw1"]  # both workers ran cells
