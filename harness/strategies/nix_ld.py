"""``nix-ld``: lay out what ``programs.nix-ld.enable = true`` lays out on NixOS, with a real nix-ld.

- ``/lib64/ld-linux-x86-64.so.2`` -> ``<nix-ld>/libexec/nix-ld`` (NixOS: a systemd-tmpfiles link)
- ``/run/current-system/sw/share/nix-ld/lib/ld.so`` -> the system glibc's loader, next to links
  to the libraries of ``programs.nix-ld.libraries``: the cell's library set (``libs``: none,
  default = nixpkgs' baseLibraries, or a list), each library's lib/ linked in as buildEnv does
  (the first of two with one name wins, as ``ignoreCollisions``)
- ``NIX_LD`` and ``NIX_LD_LIBRARY_PATH`` in the login environment.

Before the library set, what the glibc build needs there (``GlibcSet.nix_ld_library_paths``): for
Debian's builds, glibc itself, a difference stated: Debian's loader does not search its own
directory the way Nix's glibc does, so its libraries are linked into the nix-ld lib dir too; for a
nixpkgs pin nothing (its ``libs: default`` is the pin's own realised default list). A name two
libraries share is linked once, to the first (as NixOS's buildEnv with ignoreCollisions does).
"""

from __future__ import annotations

from harness.model import GlibcSet, Link, StorePath
from harness.strategies.base import Plan, StrategyContext

NIX_LD_LIB = "/run/current-system/sw/share/nix-ld/lib"
LOADER_LINK = "/lib64/ld-linux-x86-64.so.2"


class NixLdMissing(Exception):
    """No nix-ld was supplied for the version this cell names."""


def linked_store_paths(glibc: GlibcSet, libraries: tuple[StorePath, ...]) -> tuple[StorePath, ...]:
    """Whose libraries the nix-ld lib dir links, in order (the first of a name wins)."""
    return (*glibc.nix_ld_library_paths, *libraries)


def apply(plan: Plan, ctx: StrategyContext) -> None:
    if ctx.nix_ld is None:
        raise NixLdMissing(ctx.nix_ld_label)
    plan.add_store_paths([ctx.nix_ld, *ctx.libraries])
    plan.links.append(Link(LOADER_LINK, f"{ctx.nix_ld.store_path}/libexec/nix-ld"))
    plan.links.append(Link(f"{NIX_LD_LIB}/ld.so", ctx.glibc.loader))
    linked: set[str] = {"ld.so", "ld-linux-x86-64.so.2"}
    for store_path in linked_store_paths(ctx.glibc, ctx.libraries):
        lib_dir = store_path.host_path / "lib"
        for lib in sorted(lib_dir.iterdir()) if lib_dir.is_dir() else ():
            if ".so" in lib.name and lib.name not in linked:
                linked.add(lib.name)
                plan.links.append(Link(f"{NIX_LD_LIB}/{lib.name}", f"{store_path.lib_dir}/{lib.name}"))
    plan.nix_ld_env += [("NIX_LD", f"{NIX_LD_LIB}/ld.so"), ("NIX_LD_LIBRARY_PATH", NIX_LD_LIB)]
