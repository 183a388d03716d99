"""The NixOS release behaviour of a nixpkgs pin's column (harness/release.py).

A pin carries what its own tree says (``NixpkgsSource.release``, read by ``ldmatrix pins update``
from its nixos/modules: whether stub-ld.nix exists, which form programs/nix-ld.nix has). A pin
that does not yet carry it is its channel's release (``nixos-24.11`` is 24.11, whose modules
harness/release.py was read from), and ``nixos-unstable`` the current one.
"""

from __future__ import annotations

from harness.model import NixpkgsSource
from harness.release import CURRENT, RELEASES, NixosRelease


def pin_release(source: NixpkgsSource) -> NixosRelease:
    own = getattr(source, "release", None)
    if isinstance(own, NixosRelease):
        return own
    version = source.name.removeprefix("nixos-")
    return RELEASES.get(version, RELEASES[CURRENT])
