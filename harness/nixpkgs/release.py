"""The NixOS release behaviour of a nixpkgs pin's column (harness/root/release.py): what its own tree
says (``NixpkgsSource.release``, read by ``ldmatrix pins update`` from its nixos/modules: whether
stub-ld.nix exists, which form programs/nix-ld.nix has), never assumed from its name."""

from __future__ import annotations

from harness.errors import LdmatrixError
from harness.model import NixpkgsSource
from harness.root.release import NixosRelease


def pin_release(source: NixpkgsSource) -> NixosRelease:
    if source.release is None:
        raise LdmatrixError(f"{source.name}: its NixOS modules were not read (stub-ld, programs.nix-ld's list); "
                            f"run `ldmatrix pins update {source.name}`")
    return source.release
