"""``ldmatrix cache verify``: every entry of the cache against its manifest (harness/cache/verify.py)."""

from __future__ import annotations

import argparse

from harness.cache import Cache
from harness.cache.verify import verify_cache
from harness.commands import options
from harness.progress import StderrProgress


def cmd_cache(args: argparse.Namespace) -> int:
    cache = Cache.default()
    progress = StderrProgress(quiet=args.quiet)
    total, findings = verify_cache(cache, progress)
    for finding in findings:
        print(finding.line(cache.root))
    damaged = sum(f.status == "damaged" for f in findings)
    unchecked = sum(f.status == "unchecked" for f in findings)
    print(f"ldmatrix cache verify: {total} entries in {cache.root}: {total - damaged - unchecked} verified, "
          f"{damaged} damaged, {unchecked} without a manifest")
    return 1 if damaged else 0


def add(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """``ldmatrix cache verify``; sets ``func`` to ``cmd_cache``."""
    parser = subparsers.add_parser("cache", help="check the cache (store paths, build roots, builds, downloads)")
    sub = parser.add_subparsers(dest="cache_command", required=True)
    sub.add_parser("verify", help="sha256 of every entry against its manifest; exit 1 if any is damaged",
                   parents=[options.QUIET])
    parser.set_defaults(func=cmd_cache)
    return parser
