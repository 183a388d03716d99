"""A matrix's ``nix_ld_sources``: each version's upstream release archive, pinned by its tree's NAR hash."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PinnedSource:
    version: str  # "2.0.6"
    url: str  # upstream's release archive, fetched only on a machine that can reach it
    nar_hash: str  # sha256-<base64> of the unpacked tree, as nixpkgs' fetchFromGitHub pins it
    where: str  # "matrices/seed.yaml:40"

    def archive_names(self) -> tuple[str, ...]:
        return archive_names(self.version)


def archive_names(v: str) -> tuple[str, ...]:
    """File names a directory of release archives may hold version ``v`` under."""
    return (f"nix-ld-{v}.tar.gz", f"nix-ld-{v}.tar.xz", f"nix-ld-{v}.tgz", f"{v}.tar.gz", f"v{v}.tar.gz")
