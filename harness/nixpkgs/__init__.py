"""nixpkgs' own store paths: pins, their realisation with Nix, and ``--nixpkgs`` for a run.

    pins.load(path)                    the pins file; a pin without a hash is refused
    update.update(pins, names, fetch)  `ldmatrix pins update`: channel heads with real hashes
    realise.realise_with_nix(pin, ...) a pin's glibc, libxcrypt, gcc-lib, busybox, bash, ldd, nix-ld
    provide.supply(items, cache, ...)  --nixpkgs for a run: each pin realised, or why not
"""

from __future__ import annotations

from .provide import NixpkgsSupply, supply

__all__ = ["NixpkgsSupply", "supply"]
