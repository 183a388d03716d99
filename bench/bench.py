#!/usr/bin/env python3
"""Speed of the sandbox runner, as ratios measured in one run (not a test: nothing here asserts).

    python bench/bench.py [--runs 50] [--cold]

1. Per cell: the sandbox runner running c-hello (patched into the store) against the floor, a
   plain ``subprocess`` run of the same binary on the host. Target: within 3x the floor.
2. The whole default matrix (matrices/seed.yaml), warm (everything cached). Target: under 15 s.
3. With ``--cold``: the same from an empty cache (downloads, build roots, builds), as a ratio to warm.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness import matrix as matrix_mod  # noqa: E402
from harness.cache import REPO_ROOT, Cache  # noqa: E402
from harness.prepare import prepare  # noqa: E402
from harness.progress import NullProgress  # noqa: E402
from harness.runners.sandbox import SandboxRunner  # noqa: E402
from harness.session import RunOptions, execute, provision_all  # noqa: E402

SEED = REPO_ROOT / "matrices" / "seed.yaml"


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def per_cell(runs: int, cache: Cache) -> tuple[float, float, float]:
    matrix = matrix_mod.load(SEED)
    cell = next(c for c in matrix.cells if c.id == "c-hello.patchelf.glibc-2.36")
    art = provision_all(matrix, (cell,), RunOptions(cache=cache), NullProgress())
    spec = matrix.binaries[cell.binary]
    host_binary = art.binaries[(spec.reproducer, spec.built_in)].path
    with tempfile.TemporaryDirectory() as tmp:
        prepared = prepare(cell, spec, None, art, Path(tmp) / "cell", matrix.timeout)
        runner = SandboxRunner()
        floor, sandbox, full = [], [], []
        for _ in range(runs):
            start = time.perf_counter()
            subprocess.run([str(host_binary)], capture_output=True, check=True)
            floor.append(time.perf_counter() - start)
            start = time.perf_counter()
            result = runner.run(prepared)
            sandbox.append(time.perf_counter() - start)
            assert result.rc == 0, result.stderr
            start = time.perf_counter()
            prepare(cell, spec, None, art, Path(tmp) / "again", matrix.timeout)
            runner.run(prepared)
            full.append(time.perf_counter() - start)
    return median_ms(floor), median_ms(sandbox), median_ms(full)


def whole_matrix(cache: Cache, out: Path) -> tuple[float, int]:
    matrix = matrix_mod.load(SEED)
    start = time.perf_counter()
    results = execute(matrix, RunOptions(cache=cache, out=out, jobs=2), NullProgress())
    return time.perf_counter() - start, sum(1 for r in results if r.outcome is not None)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--cold", action="store_true", help="also time the matrix from an empty cache (minutes)")
    args = parser.parse_args()
    cache = Cache.default()
    with tempfile.TemporaryDirectory() as tmp:
        floor, sandbox, full = per_cell(args.runs, cache)
        print(f"per cell (median of {args.runs}, c-hello.patchelf.glibc-2.36):")
        print(f"  floor, host subprocess        {floor:7.2f} ms")
        print(f"  sandbox runner                {sandbox:7.2f} ms   = {sandbox / floor:5.1f}x the floor (target 3x)")
        print(f"  prepare + sandbox runner      {full:7.2f} ms   = {full / floor:5.1f}x the floor")
        whole_matrix(cache, Path(tmp) / "prime")  # everything built and cached
        warm, ran = whole_matrix(cache, Path(tmp) / "warm")
        print(f"default matrix, warm: {warm:6.2f} s for {ran} cells run (target 15 s) on {os.cpu_count()} cores")
        if args.cold:
            cold_cache = Cache(Path(tmp) / "cold-cache")
            cold, _ = whole_matrix(cold_cache, Path(tmp) / "cold")
            print(f"default matrix, cold: {cold:6.2f} s   = {cold / warm:5.1f}x warm")
    return 0


if __name__ == "__main__":
    sys.exit(main())
