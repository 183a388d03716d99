"""Parity: the same matrix under the sandbox and the docker runner gives the same outcome in every cell."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from harness.docker import containers
from harness.docker import engine as docker_engine
from harness import matrix as matrix_mod
from harness.cache import REPO_ROOT
from harness.session import RunOptions, execute

REASON = docker_engine.unavailable()
pytestmark = [pytest.mark.slow, pytest.mark.docker,
              pytest.mark.skipif(REASON is not None, reason=f"no Docker engine: {REASON}")]

# Every strategy on two glibc releases for the seed's four kinds of binary (-k: words ANDed).
# nix-ld cells run where a nix-ld is supplied (LDMATRIX_NIX_LD), else both runners skip them.
BINARIES = ("c-hello", "c-needs-libcrypt", "c-needs-glibc-2.38", "rust-spawn-env")
SELECTS = tuple(f"{binary}. glibc-{glibc}" for binary in BINARIES for glibc in ("2.36", "2.41"))


def outcomes(runner: str, out: Path) -> dict[str, tuple[str | None, str]]:
    from harness import nixld
    from harness.cache import Cache
    from harness.progress import NullProgress

    nix_ld = nixld.supply([], nixld.archives_from_env(), Cache.default(), NullProgress())
    matrix = matrix_mod.load(REPO_ROOT / "matrices" / "seed.yaml", extra_nix_ld=nix_ld.labels)
    found: dict[str, tuple[str | None, str]] = {}
    for select in SELECTS:
        options = RunOptions(runner=runner, select=select, out=out / runner, jobs=4, nix_ld=nix_ld)
        for r in execute(matrix, options):
            found[r.cell_id] = (r.outcome.value if r.outcome else None, r.evidence)
    return found


def test_docker_and_sandbox_give_the_same_outcomes(tmp_path: Path) -> None:
    sandbox = outcomes("sandbox", tmp_path)
    docker = outcomes("docker", tmp_path)
    assert len(sandbox) >= 16 and sandbox.keys() == docker.keys()
    assert any(outcome for outcome, _ in sandbox.values()), "every cell was skipped"
    differing = {cell: (sandbox[cell], docker[cell]) for cell in sandbox if sandbox[cell][0] != docker[cell][0]}
    assert not differing, "\n".join(f"{c}: sandbox {s} / docker {d}" for c, (s, d) in differing.items())
    left = [c for c in docker_engine.client().containers.list(all=True, filters={"label": docker_engine.LABEL})
            if (c.labels or {}).get(containers.PID) == str(os.getpid())]  # ours, not another run's on this engine
    assert left == []
