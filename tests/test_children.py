"""matrices/children.yaml for real (one glibc column): what a prebuilt parent's children get under each
nix-ld, and programs started under every name; the whole column as the matrix expects, and the
findings it is there for."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(shutil.which("bwrap") is None, reason="needs bubblewrap: apt-get install -y bubblewrap")]


@pytest.fixture(scope="module")
def column(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    work = tmp_path_factory.mktemp("children")
    proc = subprocess.run([sys.executable, "-m", "harness", "run", str(REPO / "matrices" / "children.yaml"), "-q",
                           "--out", "results", "-k", "glibc-2.36"], cwd=work, capture_output=True, text=True,
                          timeout=3600, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]  # every cell as the matrix says
    records = [json.loads(line) for line in (work / "results" / "children" / "results.jsonl").open()]
    found = {r["cell_id"]: r for r in records if "cell_id" in r}
    if any(r["outcome"] is None for r in found.values()):
        pytest.skip(f"cells skipped: {next(r['skip_reason'] for r in found.values() if r['outcome'] is None)}")
    return found


@pytest.mark.parametrize("parent", ["server", "node"])
def test_a_nix_built_grandchild_under_nix_ld_1_gets_its_parents_library_path(column: dict, parent: str) -> None:
    broken = column[f"{parent}-nix-child.nix-ld-1.2.2.glibc-2.36.libs-default"]
    assert broken["outcome"] == "error"
    assert "/run/current-system/sw/share/nix-ld/lib/libstdc++.so.6: version `GLIBCXX_3.4.35' not found" \
        in broken["evidence"]
    assert column[f"{parent}-nix-child.nix-ld-2.0.6.glibc-2.36.libs-default"]["outcome"] == "ok"


def test_a_prebuilt_grandchild_under_nix_ld_1_runs_without_nix_ld_library_path(column: dict) -> None:
    renamed = column["server-prebuilt-child.nix-ld-1.2.2.glibc-2.36.libs-default"]
    assert renamed["outcome"] == "env-corrupted"
    assert '"NIX_LD_LIBRARY_PATH=/run/current-system/sw/share/nix-ld/lib" became ' \
           '"LD_LIBRARY_PATH=/run/current-system/sw/share/nix-ld/lib"' in renamed["evidence"]


def test_a_short_name_from_its_directory_crashes_nix_ld_1(column: dict) -> None:
    assert column["c-envprint.nix-ld-1.2.2.glibc-2.36.libs-default.name-dot-slash-short"]["outcome"] == "crash"
    damaged = column["c-envprint.nix-ld-1.2.2.glibc-2.36.libs-default.name-dot-slash"]
    assert 'AT_EXECFN damaged: "./c-envprint" became "envprint"' in damaged["evidence"]
    assert column["c-envprint.nix-ld-2.0.6.glibc-2.36.libs-default.name-dot-slash-short"]["outcome"] == "ok"
