"""``ldmatrix pins list|update``: the nixpkgs pins (harness/nixpkgs/pins.py), listed or moved on."""

from __future__ import annotations

import argparse
from pathlib import Path

from harness.commands import options
from harness.errors import LdmatrixError
from harness.nixpkgs import pins as pins_mod
from harness.nixpkgs import update as update_mod
from harness.nixpkgs.provide import pins_path
from harness.progress import StderrProgress

FETCH: update_mod.Fetch = update_mod.fetch_url  # tests replace it: the one way pins update reaches the network


def cmd_pins(args: argparse.Namespace) -> int:
    pins = pins_mod.load(pins_path(args.pins))
    if args.pins_command == "list":
        for pin in pins.pins.values():
            state = "usable" if pin.refusal("") is None else "refused (no hash: run `ldmatrix pins update`)"
            stub = {True: "stub-ld", False: "no stub", None: "?"}[pin.stub_ld]
            libraries = pin.nix_ld_libraries.value if pin.nix_ld_libraries else "?"
            print(f"{pin.name:<16} {(pin.rev or '-')[:12]:<12} glibc {pin.glibc or '?':<5} "
                  f"nix-ld {pin.nix_ld or '?':<6} "
                  f"{stub:<7} libraries {libraries:<7} {'supported' if pin.supported else '         '}  {state}")
        return 0
    names = list(args.names)
    if args.supported:
        names += [p.name for p in pins.pins.values() if p.supported and p.name not in names]
    progress = StderrProgress(quiet=args.quiet)
    try:
        updated = update_mod.update(pins, names, FETCH, progress, rev=args.rev)
    except update_mod.Unreachable as err:
        raise LdmatrixError(f"pins update: {err}: run it on a machine that can reach GitHub; "
                            "nothing was changed") from None
    except update_mod.RateLimited as err:
        raise LdmatrixError(f"pins update: {err}; nothing was changed") from None
    target = args.out or pins_path(args.pins) or pins_mod.default_path()
    pins_mod.save(pins, updated, target)
    for pin in updated:
        print(f"{pin.name}: {pin.rev} {pin.sha256} glibc {pin.glibc} nix-ld {pin.nix_ld or '?'}")
    print(f"wrote {target}")
    return 0


def add(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("pins", help="nixpkgs pins: list them, move them to their channel's head",
                                   parents=[options.PINS])
    sub = parser.add_subparsers(dest="pins_command", required=True)
    sub.add_parser("list", help="each pin: revision, glibc, nix-ld, supported, usable or refused")
    update = sub.add_parser("update", help="move pins to their channel's head with real hashes (needs GitHub)",
                            parents=[options.QUIET])
    update.add_argument("names", nargs="*", metavar="PIN",
                        help="the pins to update (default: all); a new name adds one")
    update.add_argument("--supported", action="store_true", help="every supported pin")
    update.add_argument("--rev", help="pin this revision instead of the channel's head (one pin)")
    update.add_argument("--out", type=Path, metavar="FILE", help="write the result here instead of the pins file")
    parser.set_defaults(func=cmd_pins)
    return parser
