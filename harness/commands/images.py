"""``ldmatrix images list|build|prune|pin``: the docker images of the roots (harness/docker/images.py)."""

from __future__ import annotations

import argparse
from pathlib import Path

from harness.cache import REPO_ROOT
from harness.docker.images import ensure_image, image_ref, list_images, prune, refresh_pins
from harness.model import RootSpec
from harness.progress import Progress


def _roots_of(matrix_path: Path, progress: Progress) -> list[RootSpec]:
    """The NixOS-like and FHS roots a matrix needs (provisioning them if needed)."""
    from harness import matrix as matrix_mod
    from harness import provision
    from harness.cache import Cache
    from harness.prepare import fhs_root, nixos_root

    matrix = matrix_mod.load(matrix_path)
    cache = Cache.default()
    glibcs = sorted({c.glibc for c in matrix.cells})
    suites = sorted({b.built_in for b in matrix.binaries.values() if b.built_in})
    roots = [nixos_root(provision.provision_glibc(v, cache, progress)) for v in glibcs]
    return roots + [fhs_root(provision.build_root(s, cache, progress)) for s in suites]


def cmd_images(args: argparse.Namespace) -> int:
    from harness.progress import StderrProgress

    progress = StderrProgress()
    if args.images_command == "list":
        for info in list_images():
            print(f"{info.ref:60} {info.kind:6} {info.id:20} {info.size / 1e6:8.1f} MB  {info.created[:19]}")
    elif args.images_command == "build":
        for root in _roots_of(args.matrix, progress):
            print(ensure_image(root, progress))
    elif args.images_command == "prune":
        from harness.docker.containers import prune_containers

        for name in prune_containers():
            print(f"removed container {name} (its run is gone)")
        keep = {image_ref(r) for r in _roots_of(args.keep_matrix, progress)} if args.keep_matrix else set()
        for ref in prune(keep):
            print(f"removed {ref}")
    elif args.images_command == "pin":
        for suite, pin in sorted(refresh_pins(progress=progress).items()):
            print(f"{suite:10} {pin.image:10} {pin.digest}")
    return 0


def add(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """``ldmatrix images list|build|prune|pin``; sets ``func`` to ``cmd_images``."""
    parser = subparsers.add_parser("images", help="docker images of the roots: list, build, prune, pin")
    sub = parser.add_subparsers(dest="images_command", required=True)
    sub.add_parser("list", help="images labelled ldmatrix=1")
    build = sub.add_parser("build", help="import the roots of a matrix as content-tagged images (offline)")
    build.add_argument("matrix", type=Path, nargs="?", default=REPO_ROOT / "matrices" / "seed.yaml",
                       help="the matrix whose images to build (default matrices/seed.yaml)")
    prune_parser = sub.add_parser("prune", help="remove containers left by killed runs, then ldmatrix images "
                                                "(keeping those a matrix still uses)")
    prune_parser.add_argument("--keep-matrix", type=Path, default=None, metavar="MATRIX",
                              help="keep the images this matrix uses")
    sub.add_parser("pin", help="refresh images/pins.json from the registry (needs a registry)")
    parser.set_defaults(func=cmd_images)
    return parser
