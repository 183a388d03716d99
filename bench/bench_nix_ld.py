#!/usr/bin/env python3
"""Building the seed's four nix-ld versions from source, cold and warm, as ratios in one run.

    python bench/bench_nix_ld.py [--archives DIR] [--with-root]

1. cold builds: a fresh cache whose build roots are the real cache's (so the nix-ld build root is
   there), everything else from nothing: export and verify the archives, vendor the crates of the
   2.x versions (crates.io, once per Cargo.lock), build all four.
2. warm: the same again in the same cache: nothing is built.
3. with ``--with-root``: also a fully cold cache, which first mmdebstraps the nix-ld build root.
Not a test: nothing here asserts; it prints seconds and ratios.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness import matrix as matrix_mod  # noqa: E402
from harness import nixld  # noqa: E402
from harness.cache import REPO_ROOT, Cache  # noqa: E402
from harness.progress import NullProgress  # noqa: E402

SEED = REPO_ROOT / "matrices" / "seed.yaml"


def build_all(cache: Cache, archives: Path) -> float:
    pins = matrix_mod.load(SEED).nix_ld_sources
    start = time.perf_counter()
    got = nixld.provide(pins, nixld.Supply(archives=(archives,)), pins, cache, NullProgress())
    elapsed = time.perf_counter() - start
    if got.missing or len(got.store_paths) != len(pins):
        raise SystemExit(f"not every version was built: {got.missing}")
    return elapsed


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--archives", type=Path, default=REPO_ROOT.parent / "shared" / "nix-ld")
    p.add_argument("--with-root", action="store_true", help="also measure a cache without the build root")
    args = p.parse_args()
    real = Cache.default()
    with tempfile.TemporaryDirectory(prefix="ldmatrix-bench-") as tmp:
        cache = Cache(Path(tmp) / "cache")
        cache.root.mkdir(parents=True)
        (cache.root / "buildroots").symlink_to(real.buildroots)
        cold = build_all(cache, args.archives)
        warm = build_all(cache, args.archives)
        print(f"4 nix-ld versions, cold builds (root present): {cold:6.1f} s")
        print(f"4 nix-ld versions, warm (cached):               {warm:6.2f} s   ratio warm/cold {warm / cold:.4f}")
        if args.with_root:
            bare = Cache(Path(tmp) / "bare")
            full = build_all(bare, args.archives)
            print(f"4 nix-ld versions, fully cold (root too):     {full:6.1f} s   ratio to cold builds {full / cold:.2f}")


if __name__ == "__main__":
    main()
