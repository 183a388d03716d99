"""``ldmatrix ci-matrix``: the jobs of a fan-out, as the JSON a GitHub Actions ``strategy.matrix`` reads.

    ldmatrix ci-matrix matrices/seed.yaml matrices/glibc.yaml --shards 4 --nixpkgs supported --pins pins.json

One job per glibc build × shard: Debian's builds (``build: debian``) and each ``--nixpkgs`` pin's
own, each in ``--shards`` slices (harness/shard.py). A job runs, for every matrix,

    ldmatrix run MATRIX --shard $SHARD [--nixpkgs $NIXPKGS -k $NIXPKGS]

and uploads ``<out>/<matrix>/`` as the artifact named ``$ARTIFACT``; a last job merges each
matrix's shards (``ldmatrix merge``). Pins are named, not realised: planning needs no Nix. The
workflow reads it as ``strategy: {matrix: ${{ fromJSON(needs.plan.outputs.jobs) }}}``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from harness import matrix as matrix_mod
from harness.commands import options
from harness.errors import LdmatrixError
from harness.shard import Shard

DEBIAN = "debian"  # the build name of Debian's glibc builds (as harness/results/baseline.py names it)
GITHUB_JOB_LIMIT = 256  # a workflow run's matrix may not make more jobs


def jobs(matrices: list[Path], shards: int, pins: list[str]) -> dict[str, list[dict[str, str]]]:
    """``{"include": [...]}``: one entry per (build, shard), each naming every matrix."""
    names = [matrix_mod.load(m).name for m in matrices]  # each checked now: a typo fails the plan, not N jobs
    paths = " ".join(str(m) for m in matrices)
    include = []
    for build in [DEBIAN, *pins]:
        for index in range(1, shards + 1):
            shard = Shard(index, shards)
            include.append({"build": build, "nixpkgs": "" if build == DEBIAN else build, "shard": str(shard),
                            "matrices": paths, "names": " ".join(names),
                            "artifact": f"results-{build}-{shard.name}"})
    if len(include) > GITHUB_JOB_LIMIT:
        raise LdmatrixError(f"ci-matrix: {len(include)} jobs ({1 + len(pins)} builds x {shards} shards); GitHub "
                            f"runs at most {GITHUB_JOB_LIMIT} per matrix: fewer --shards")
    return {"include": include}


def cmd_ci_matrix(args: argparse.Namespace) -> int:
    pins: list[str] = []
    if args.nixpkgs:
        from harness.nixpkgs import pins as pins_mod
        from harness.nixpkgs.provide import pins_path

        pins = [pin.name for pin in pins_mod.load(pins_path(args.pins)).select(args.nixpkgs)]
    print(json.dumps(jobs(args.matrices, args.shards, pins), separators=(",", ":")))
    return 0


def add(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser("ci-matrix", help="the jobs of a fan-out over glibc builds x shards, as JSON for a "
                                                "GitHub Actions strategy.matrix (fromJSON)", parents=[options.PINS])
    p.add_argument("matrices", nargs="+", type=Path, metavar="MATRIX", help="the matrices every job runs its shard of")
    p.add_argument("--shards", type=options.positive_int, default=1, metavar="N",
                   help="slices per glibc build (default 1)")
    p.add_argument("--nixpkgs", action="append", default=[], metavar="PIN",
                   help="also a job per shard on each pin's own glibc: a pin's name, its revision, or 'supported' "
                        "(repeatable; named only, nothing is realised)")
    p.set_defaults(func=cmd_ci_matrix)
    return p
