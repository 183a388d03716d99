"""Time the same selection of a matrix under the sandbox and the docker runner; print docker/sandbox.

    python bench/bench_runners.py [MATRIX] [-k SELECT] [--repeat N]

Images and builds are warmed first (one untimed docker run), so the ratio is about running cells.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness import matrix as matrix_mod  # noqa: E402
from harness.session import RunOptions, execute  # noqa: E402


def timed_run(matrix: matrix_mod.Matrix, runner: str, select: str | None, jobs: int, out: Path) -> tuple[float, int]:
    started = time.monotonic()
    results = execute(matrix, RunOptions(runner=runner, select=select, jobs=jobs, out=out / runner))
    ran = sum(1 for r in results if r.outcome is not None)
    return time.monotonic() - started, ran


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("matrix", type=Path, nargs="?", default=Path("matrices/seed.yaml"))
    parser.add_argument("-k", dest="select", default=None)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    matrix = matrix_mod.load(args.matrix)
    with tempfile.TemporaryDirectory(prefix="ldmatrix-bench-") as tmp:
        out = Path(tmp)
        timed_run(matrix, "docker", args.select, args.jobs, out)  # warm: images imported, builds cached
        best: dict[str, float] = {}
        for runner in ("sandbox", "docker"):
            times = []
            for _ in range(args.repeat):
                seconds, ran = timed_run(matrix, runner, args.select, args.jobs, out)
                times.append(seconds)
            best[runner] = min(times)
            print(f"{runner:8} {ran:4} cells run  best of {args.repeat}: {best[runner]:7.2f}s  "
                  f"({1000 * best[runner] / max(ran, 1):6.1f} ms/cell, jobs {args.jobs})")
    print(f"ratio docker/sandbox: {best['docker'] / best['sandbox']:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
