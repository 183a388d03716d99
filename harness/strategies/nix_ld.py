"""``nix-ld``: lay out what ``programs.nix-ld.enable = true`` lays out on NixOS, with a real nix-ld
(nixos/modules/programs/nix-ld.nix; see harness/root/release.py for the versions read):

- ``/lib64/ld-linux-x86-64.so.2`` -> ``<nix-ld>/libexec/nix-ld`` (``environment.ldso`` on 24.05+,
  overriding stub-ld; a systemd-tmpfiles link from the package before);
- ``/run/current-system/sw/share/nix-ld/lib``: a ``buildEnv`` with ``pathsToLink = [ "/lib" ]`` over
  ``map lib.getLib cfg.libraries`` and ``ignoreCollisions = true``: each listed package's own
  ``lib/`` entries linked, the first of a name winning, nothing of their dependencies (their own
  RUNPATHs find those); and ``ld.so`` -> the system glibc's loader (its ``postBuild``);
- ``NIX_LD`` and ``NIX_LD_LIBRARY_PATH`` in the login environment.

The libraries are the cell's ``programs.nix-ld.libraries`` as its release ends up with them
(``StrategyContext.nix_ld_libraries``). The directory holds nothing of glibc: nixpkgs' loader
finds its own libraries (harness/provision/glibc_build.py). Differences named: a directory two
packages both have in lib/ is linked to the first, where buildEnv would merge the two.
"""

from __future__ import annotations

from harness.model import LibrarySet, Link, NotRun
from harness.strategies.base import Plan, StrategyContext

NIX_LD_LIB = "/run/current-system/sw/share/nix-ld/lib"
LOADER_LINK = "/lib64/ld-linux-x86-64.so.2"


def linked(libraries: LibrarySet) -> list[Link]:
    """The directory's links to the listed packages' lib/ entries (the first of a name wins), ld.so aside."""
    links: dict[str, Link] = {}
    for store_path in libraries.own:
        lib_dir = store_path.host_path / "lib"
        for entry in sorted(lib_dir.iterdir()) if lib_dir.is_dir() else ():
            if entry.name != "ld.so" and entry.name not in links:
                links[entry.name] = Link(f"{NIX_LD_LIB}/{entry.name}", f"{store_path.lib_dir}/{entry.name}")
    return list(links.values())


def apply(plan: Plan, ctx: StrategyContext) -> NotRun | None:
    if ctx.nix_ld is None:  # none was supplied for the version the cell names: a skip saying how to supply one
        return NotRun.skip(ctx.nix_ld_missing or f"no nix-ld {ctx.nix_ld_label}")
    plan.add_store_paths([ctx.nix_ld, *ctx.nix_ld_libraries.closure])
    plan.links.append(Link(LOADER_LINK, f"{ctx.nix_ld.store_path}/libexec/nix-ld"))
    plan.links.append(Link(f"{NIX_LD_LIB}/ld.so", ctx.glibc.loader))
    plan.links += linked(ctx.nix_ld_libraries)
    plan.nix_ld_env += [("NIX_LD", f"{NIX_LD_LIB}/ld.so"), ("NIX_LD_LIBRARY_PATH", NIX_LD_LIB)]
    return None
