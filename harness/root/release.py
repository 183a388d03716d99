"""NixOS releases, as the behaviour of the root a cell runs in: what nixpkgs' own modules of that
release put around a foreign program. No I/O here; the root is laid out from these facts
(harness/root/system.py, harness/strategies/).

Each fact is read from NixOS/nixpkgs (the files are the specification):

- ``nixos/modules/config/stub-ld.nix`` (new in 24.05; NixOS/nixpkgs@0c01466c read):
  ``environment.stub-ld.enable`` defaults to true and sets ``environment.ldso`` (``mkDefault``) to a
  small static program that prints ``Could not start dynamically linked executable: ARGV0`` and a
  three-line message ending in ``https://nix.dev/permalink/stub-ld`` to stderr and returns 127.
  Before 24.05 there is no ``/lib64`` at all: the kernel's execve fails with ENOENT.
- ``nixos/modules/config/ldso.nix`` (24.05+; NixOS/nixpkgs@136283b5 read): ``environment.ldso``
  becomes the systemd-tmpfiles rule ``L+ /lib64/ld-linux-x86-64.so.2 - - - - <ldso>``.
- ``nixos/modules/programs/nix-ld.nix``:
  23.11 (NixOS/nixpkgs@05924f71 read): ``libraries`` is an option whose *default* is the 14
  ``baseLibraries``, so a user's list replaces them; nix-ld reaches ``/lib64`` through
  ``systemd.tmpfiles.packages = [ cfg.package ]``.
  24.05 and later (faukah/nixpkgs@3b20077c, a recent fork, read): the option's default is ``[ ]``
  and the module sets the 14 libraries in ``config``; list options merge, so a user's list is
  *added* to them and only ``lib.mkForce [ ]`` empties it; nix-ld is ``environment.ldso``, which
  overrides stub-ld's ``mkDefault``.

A nixpkgs pin reads its own form from its tree (harness/nixpkgs/); these are the named releases a
matrix's Debian columns can run as (``nixos:`` in a matrix).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

STUB_LD_MESSAGE = (
    "NixOS cannot run dynamically linked executables intended for generic\n"
    "linux environments out of the box. For more information, see:\n"
    "https://nix.dev/permalink/stub-ld\n"
)
STUB_LD_FIRST_LINE = "Could not start dynamically linked executable: "
STUB_LD_STATUS = 127


class LibraryList(enum.StrEnum):
    """How ``programs.nix-ld.libraries`` written by a user meets the module's base libraries."""

    REPLACE = "replace"  # 23.11: the base list is the option's default; a user's list replaces it
    ADD = "add"  # 24.05+: the module adds the base list in config; a user's list is added to it


@dataclass(frozen=True)
class NixosRelease:
    version: str  # "23.11"
    codename: str  # "Tapir"; "" where none is known here
    stub_ld: bool  # /lib64/ld-linux-x86-64.so.2 is stub-ld unless nix-ld is enabled
    libraries: LibraryList

    @property
    def pretty_name(self) -> str:
        return f"NixOS {self.version}" + (f" ({self.codename})" if self.codename else "")

    def libs_label(self, libs: str, attributes: tuple[str, ...], nix_ld: bool) -> str:
        """What a NixOS user of this release writes for the library set ``libs`` (``none``,
        ``default`` or a list of attributes): ``mkForce []``, ``default+[jq]``, ``[jq]``.

        Only nix-ld has base libraries; patchelf and LD_LIBRARY_PATH name what the list names."""
        listed = "[" + " ".join(attributes) + "]"
        if libs == "default":
            return "default"
        if not nix_ld:
            return "none" if libs == "none" else listed
        if self.libraries is LibraryList.ADD:
            return "mkForce []" if libs == "none" else f"default+{listed}"
        return "[]" if libs == "none" else listed

    def nix_ld_attributes(self, libs: str, attributes: tuple[str, ...], base: tuple[str, ...]) -> tuple[str, ...]:
        """The attributes programs.nix-ld.libraries ends up with on this release when a cell's
        library set is ``libs`` (its ``attributes``); ``base``: the module's 14 base libraries."""
        if libs == "default":
            return base
        if libs == "none":
            return ()  # 24.05+: lib.mkForce [ ]; 23.11: [ ]
        if self.libraries is LibraryList.ADD:
            return (*base, *(a for a in attributes if a not in base))
        return attributes


RELEASES: dict[str, NixosRelease] = {
    r.version: r
    for r in (
        NixosRelease("23.11", "Tapir", stub_ld=False, libraries=LibraryList.REPLACE),
        NixosRelease("24.05", "Uakari", stub_ld=True, libraries=LibraryList.ADD),
        NixosRelease("24.11", "Vicuña", stub_ld=True, libraries=LibraryList.ADD),
        NixosRelease("25.05", "Warbler", stub_ld=True, libraries=LibraryList.ADD),
        NixosRelease("25.11", "Xantusia", stub_ld=True, libraries=LibraryList.ADD),
        NixosRelease("26.05", "", stub_ld=True, libraries=LibraryList.ADD),
    )
}
SEED = "23.11"  # the seed post's NixOS
CURRENT = "26.05"  # what a matrix's Debian columns run as unless it says otherwise


def release(version: str) -> NixosRelease:
    return RELEASES[version]
