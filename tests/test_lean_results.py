"""Lean results: a cell's folder holds its command, output and verdict, and names its binaries by digest.

Before, every cell's folder held a patched copy of its binaries (an 11 MB Rust launcher per
launcher cell: 1.4 GB for a seed run with nix-ld). Now the patched binaries are made once in
the cache and bound read-only into the cells; ``command.sh`` runs a cell again as it ran.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("bwrap") is None, reason="needs bubblewrap: apt-get install -y bubblewrap"),
]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, dict]]:
    work = tmp_path_factory.mktemp("lean")
    proc = subprocess.run([sys.executable, "-m", "harness", "run", str(REPO / "matrices" / "seed.yaml"), "-q",
                           "--out", "results", "-k", "patchelf glibc-2.36"], cwd=work, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=1800)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = work / "results" / "seed"
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    return out, {r["cell_id"]: r for r in records if "cell_id" in r and r["outcome"]}


def test_results_do_not_copy_binaries(run: tuple[Path, dict[str, dict]]) -> None:
    out, ran = run
    assert "rust-spawn-env.patchelf.glibc-2.36" in ran  # a cell with the 11 MB launcher
    files = [p for p in out.rglob("*") if p.is_file() and not p.is_symlink()]
    elves = [p for p in files if p.read_bytes()[:4] == b"\x7fELF"]
    assert not elves, f"binaries copied into the results: {elves[:3]}"
    assert sum(p.stat().st_size for p in files) < len(ran) * (48 << 10)  # a command, its output, its verdict
    for cell_id in ran:
        record = json.loads((out / "cells" / cell_id / "cell.json").read_text())
        assert record["binaries"], cell_id
        for binary in record["binaries"]:
            host = Path(binary["host_path"])
            assert out not in host.parents, f"{cell_id}: {host} is inside the results"
            assert sha256(host) == binary["sha256"], f"{cell_id}: {host} is not what the cell ran"


def test_cell_folder_keeps_command_output_and_proving_line(run: tuple[Path, dict[str, dict]]) -> None:
    out, ran = run
    for cell_id, record in ran.items():
        folder = out / "cells" / cell_id
        assert sorted(p.name for p in folder.iterdir()) == ["cell.json", "command.sh", "stderr", "stdout"]
        assert (folder / "stdout").read_text() == record["stdout"]
        assert json.loads((folder / "cell.json").read_text())["evidence"] == record["evidence"]


@pytest.mark.parametrize("cell_id", ["rust-spawn-env.patchelf.glibc-2.36", "c-needs-libcrypt.patchelf.glibc-2.36"])
def test_command_sh_runs_the_cell_again_as_it_ran(run: tuple[Path, dict[str, dict]], cell_id: str) -> None:
    out, ran = run
    folder = out / "cells" / cell_id
    again = subprocess.run(["sh", str(folder / "command.sh")], capture_output=True, text=True, timeout=60,
                           cwd="/", env={"PATH": os.environ["PATH"]})
    assert again.returncode == ran[cell_id]["rc"], again.stderr
    assert again.stdout == (folder / "stdout").read_text()
    assert again.stderr == (folder / "stderr").read_text()
    script = (folder / "command.sh").read_text()
    assert "--clearenv" in script and "--setenv NIX_PATH" in script  # the environment, in order


def test_identical_patched_binaries_are_made_once(run: tuple[Path, dict[str, dict]]) -> None:
    out, _ = run

    def host_of(cell_id: str) -> str:
        record = json.loads((out / "cells" / cell_id / "cell.json").read_text())
        return next(b["host_path"] for b in record["binaries"] if b["path"] == "/home/user/bin/c-hello")

    # LD_LIBRARY_PATH changes the environment, not the binary: both cells run the same file.
    assert host_of("c-hello.patchelf.glibc-2.36") == host_of("c-hello.patchelf+LD_LIBRARY_PATH.glibc-2.36")


def test_a_damaged_shared_binary_is_made_again(bullseye_root, tmp_path: Path) -> None:
    from harness import reproducers
    from harness.cache import installed
    from harness.cache import Cache
    from harness.progress import NullProgress

    built = reproducers.build("hello", bullseye_root, Cache.default(), NullProgress())
    cache = Cache(tmp_path / "cache")
    first = installed.install(built, "/home/user/bin/c-hello", "/nix/store/x-glibc/lib/ld-linux-x86-64.so.2",
                              ["/nix/store/x-glibc/lib"], cache)
    assert first.sha256 == sha256(first.host_path) != built.sha256
    first.host_path.chmod(0o755)
    first.host_path.write_bytes(first.host_path.read_bytes()[:1000])  # cut short
    installed._checked.clear()  # as in a new process: entries are checked once per process
    second = installed.install(built, "/home/user/bin/c-hello", "/nix/store/x-glibc/lib/ld-linux-x86-64.so.2",
                               ["/nix/store/x-glibc/lib"], cache)
    assert second.host_path == first.host_path and sha256(second.host_path) == first.sha256
