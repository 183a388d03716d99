"""nix-ld's own test suite as cells (matrices/nix-ld-suite.yaml): its 2.0.6 column agrees with what
upstream's tests/tests.rs asserts.

UPSTREAM is tests.rs transcribed, one row per Command it runs; a fast test holds the transcription
to the tests.rs of the 2.0.6 archive (the Commands, their environment, must_succeed or must_fail,
what stdout and stderr must contain, in order), and a slow one runs the matrix and checks every
assert against each 2.0.6 cell's recorded exit status and output.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
MATRIX = REPO / "matrices" / "nix-ld-suite.yaml"
ARCHIVE = "nix-ld-2.0.6.tar.gz"

# tests.rs: (function, the matrix's binary, its env profile and libs, the env the Command gets
# (removed keys, set keys), must_succeed, stdout contains, stderr contains)
UPSTREAM = (
    ("test_hello", "hello", "no-library-path", "none", ({"LD_LIBRARY_PATH", "NIX_LD_LIBRARY_PATH"}, set()), True,
     ("Hello, world!",), ()),
    ("test_dt_needed", "dt-needed", "no-library-path", "none", ({"LD_LIBRARY_PATH", "NIX_LD_LIBRARY_PATH"}, set()),
     False, (), ("loading shared",)),
    ("test_dt_needed", "dt-needed", "nixos-login", "libtest", ({"LD_LIBRARY_PATH"}, {"NIX_LD_LIBRARY_PATH"}), True,
     ("Hello from libtest",), ()),
    ("test_dlopen", "dlopen", "no-library-path", "none", ({"LD_LIBRARY_PATH", "NIX_LD_LIBRARY_PATH"}, set()), False,
     (), ("Failed to dlopen libtest.so",)),
    ("test_dlopen", "dlopen", "nixos-login", "libtest", ({"LD_LIBRARY_PATH"}, {"NIX_LD_LIBRARY_PATH"}), True,
     ("Hello from libtest",), ()),
    ("test_ld_path_restore", "ld-path-restore", "poisoned", "libtest", ({"LD_LIBRARY_PATH"}, {"NIX_LD_LIBRARY_PATH"}),
     True, ("Hello from libtest",), ("No LD_LIBRARY_PATH",)),
    ("test_ld_path_restore", "ld-path-restore-needle", "poisoned-needle", "libtest",
     (set(), {"LD_LIBRARY_PATH", "NIX_LD_LIBRARY_PATH"}), True, ("Hello from libtest",),
     ("LD_LIBRARY_PATH contains needle", "Launching child process", "loading shared")),
)


def archive() -> Path:
    for directory in os.environ.get("LDMATRIX_NIX_LD_ARCHIVES", str(REPO.parent / "shared" / "nix-ld")).split(":"):
        if (Path(directory) / ARCHIVE).is_file():
            return Path(directory) / ARCHIVE
    pytest.skip(f"needs upstream's {ARCHIVE}: put it in a directory named by LDMATRIX_NIX_LD_ARCHIVES")


def commands(tests_rs: str) -> list[tuple[str, tuple[set[str], set[str]], bool, tuple[str, ...], tuple[str, ...]]]:
    """Each Command tests.rs runs, in order: its test function, the environment keys it removes and
    sets, whether it must succeed, and what it asserts stdout and stderr contain."""
    out = []
    for function, body in re.findall(r"fn (test_\w+)\([^)]*\) \{(.*?)\n\}", tests_rs, re.S):
        for run in re.split(r"Command::new\(", body)[1:]:
            removed = set(re.findall(r'\.env_remove\("(\w+)"\)', run))
            set_ = set(re.findall(r'\.env\("(\w+)",', run))
            success = ".must_succeed()" in run
            assert success != (".must_fail()" in run), run
            stdout = tuple(re.findall(r'assert!\(stdout\.contains\("([^"]+)"\)\)', run))
            stderr = tuple(re.findall(r'assert!\(stderr\.contains\("([^"]+)"\)\)', run))
            out.append((function, (removed, set_), success, stdout, stderr))
    return out


def test_the_transcription_is_upstreams_tests_rs() -> None:
    with tarfile.open(archive()) as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith("/tests/tests.rs"))
        tests_rs = tar.extractfile(member).read().decode()  # type: ignore[union-attr]
    written = [(f, env, ok, out, err) for f, _, _, _, env, ok, out, err in UPSTREAM]
    assert commands(tests_rs) == written


def test_the_matrix_has_one_cell_per_command_and_version() -> None:
    from harness import matrix

    m = matrix.load(MATRIX)
    for _, binary, env, libs, *_ in UPSTREAM:
        found = [c for c in m.cells if (c.binary, c.env, c.libs) == (binary, env, libs)]
        assert sorted({c.nix_ld for c in found}) == ["1.2.2", "1.2.3", "2.0.5", "2.0.6"], (binary, env)
    assert len(m.cells) == len(UPSTREAM) * 4 * 6  # each Command on every nix-ld and store glibc


@pytest.mark.slow
def test_the_2_0_6_column_is_what_tests_rs_asserts(tmp_path: Path) -> None:
    archive()
    proc = subprocess.run([sys.executable, "-m", "harness", "run", str(MATRIX), "-q", "--out", "results"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=3600,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]  # every cell as the matrix says
    records = [json.loads(line) for line in (tmp_path / "results" / "nix-ld-suite" / "results.jsonl").open()]
    cells = [r for r in records if "cell_id" in r and r["axes"].get("nix_ld") == "2.0.6"]
    assert len(cells) == len(UPSTREAM) * 6 and all(r["outcome"] for r in cells)
    for function, binary, env, libs, (removed, set_), success, stdout, stderr in UPSTREAM:
        for r in (r for r in cells if (r["axes"]["binary"], r["axes"]["env"], r["axes"]["libs"]) == (binary, env, libs)):
            where = f"{function}: {r['cell_id']}"
            assert (r["rc"] == 0) == success, where
            assert all(text in r["stdout"] for text in stdout), where
            assert all(text in r["stderr"] for text in stderr), where
            keys = {k for k, _ in r["env"]}
            assert not keys & removed and set_ <= keys and "NIX_LD" in keys, where
