#!/usr/bin/env python3
"""Speed of a cell, as ratios measured in one run (not a test: nothing here asserts).

    python bench/bench.py [--runs 50] [--matrix matrices/seed.yaml] [--nix-ld-archives DIR]

1. The harness's own time per cell: a warm run of the matrix, one cell at a time, each cell's time
   in ``run_one`` less the time its sandbox process ran (preparing, predicting, the command script,
   recording). Goal: under 5 ms.
2. A cell's ``command.sh`` (c-hello.patchelf on the newest glibc) against a plain start of the same
   program on the host (its build, unpatched), paired runs, median of each.
3. The warm matrix as ``ldmatrix run`` runs it (-j 2) against as many plain starts as it has cells.
   Goal: within 10x.

Everything is measured in the same process within minutes, so a busy machine slows both sides
of each ratio; the machine (cores, CPU, load) is printed with them.
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
from harness import nixld, session  # noqa: E402
from harness.cache import REPO_ROOT, Cache  # noqa: E402
from harness.progress import NullProgress  # noqa: E402
from harness.runners import sandbox  # noqa: E402
from harness.session import RunOptions, execute  # noqa: E402

SEED = REPO_ROOT / "matrices" / "seed.yaml"


def machine() -> str:
    model = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg()[0]
    return f"{os.cpu_count()} cores, {model}, load average {load:.1f}"


class Timed:
    """Wraps ``module.name`` to add each call's wall time to ``self.total`` (and count calls)."""

    def __init__(self, module, name: str):
        self.module, self.name, self.original = module, name, getattr(module, name)
        self.total, self.calls = 0.0, 0
        self.samples: list[float] = []

    def __enter__(self) -> "Timed":
        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return self.original(*args, **kwargs)
            finally:
                took = time.perf_counter() - start
                self.total += took
                self.calls += 1
                self.samples.append(took)
        setattr(self.module, self.name, timed)
        return self

    def __exit__(self, *exc: object) -> None:
        setattr(self.module, self.name, self.original)


def harness_time(matrix: matrix_mod.Matrix, options: RunOptions, out: Path) -> tuple[list[float], int]:
    """Per cell: run_one's time less its sandbox process's (jobs 1, so nothing overlaps)."""
    options = RunOptions(**{**options.__dict__, "jobs": 1, "out": out})
    with Timed(session, "run_one") as whole, Timed(sandbox, "run_bounded") as process:
        execute(matrix, options, NullProgress())
    ran = min(len(whole.samples), len(process.samples))
    if len(whole.samples) != len(process.samples):  # a skipped cell runs no process: compare the totals
        return [(whole.total - process.total) / max(whole.calls, 1)], whole.calls
    return [w - p for w, p in zip(whole.samples, process.samples)], ran


def paired(a: list[str], b: list[str], runs: int) -> tuple[float, float]:
    """Median wall time of ``a`` and of ``b``, run alternately."""
    ta, tb = [], []
    for _ in range(runs):
        for argv, into in ((a, ta), (b, tb)):
            start = time.perf_counter()
            subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
            into.append(time.perf_counter() - start)
    return statistics.median(ta), statistics.median(tb)


def plain_starts(binary: Path, count: int) -> float:
    start = time.perf_counter()
    for _ in range(count):
        subprocess.run([str(binary)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=50, help="paired runs of command.sh and the plain start")
    parser.add_argument("--matrix", type=Path, default=SEED)
    parser.add_argument("--nix-ld-archives", type=Path, action="append", default=[])
    args = parser.parse_args()
    cache = Cache.default()
    supply = nixld.supply([], args.nix_ld_archives, cache, NullProgress())
    matrix = matrix_mod.load(args.matrix, extra_nix_ld=supply.labels)
    options = RunOptions(cache=cache, nix_ld=supply, jobs=2)
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory(prefix="ldmatrix-bench-") as tmp:
        work = Path(tmp)
        execute(matrix, RunOptions(**{**options.__dict__, "out": work / "prime"}), NullProgress())  # all built

        own, ran = harness_time(matrix, options, work / "sequential")
        print(f"1. harness's own time per cell ({ran} cells, one at a time): median {statistics.median(own) * 1000:.2f} ms, "
              f"mean {statistics.mean(own) * 1000:.2f} ms (goal: under 5 ms)")

        glibc = max(matrix_mod.parse_version(c.glibc) or (0,) for c in matrix.cells if not c.nixpkgs)
        newest = ".".join(map(str, glibc))
        cell_id = f"c-hello.patchelf.glibc-{newest}"
        script = work / "sequential" / matrix.name / "cells" / cell_id / "command.sh"
        spec = matrix.binaries["c-hello"]
        art = session.provision_all(matrix, (), options, NullProgress())
        built = art.binaries.get(spec.key) or session.provision_all(
            matrix, tuple(c for c in matrix.cells if c.id == cell_id), options, NullProgress()).binaries[spec.key]
        plain, command = paired([str(built.path)], ["sh", str(script)], args.runs)
        print(f"2. {cell_id}: sh command.sh {command * 1000:.2f} ms, a plain start {plain * 1000:.2f} ms: "
              f"{command / plain:.1f}x (medians of {args.runs} paired runs)")

        start = time.perf_counter()
        results = execute(matrix, RunOptions(**{**options.__dict__, "out": work / "warm"}), NullProgress())
        warm = time.perf_counter() - start
        floor = plain_starts(built.path, len(results))
        print(f"3. {matrix.name}, warm, -j {options.jobs}: {len(results)} cells in {warm:.2f} s, {len(results)} plain "
              f"starts in {floor:.2f} s: {warm / floor:.1f}x (goal: within 10x)")
    print(f"machine after: {machine()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
