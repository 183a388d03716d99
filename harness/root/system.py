"""What a NixOS system has besides /nix/store, so that a real program's verdict is about its loader.

Laid out as NixOS does, with contents from the suite's Debian packages where a file needs real
content (harness/provision/packages.py makes them store paths):

- ``/run/current-system/sw/bin``: coreutils, grep, sed, findutils, bash, ``ldd`` and ``python3``
  (links into their store paths); ``/bin/sh``, the same bash (NixOS's ``environment.binsh``),
  dynamically linked against the store glibc as every other program here;
- ``/usr/bin/env`` (NixOS keeps this one link for ``#!/usr/bin/env`` scripts);
- ``/etc/os-release`` (``ID=nixos``, the cell's release), ``passwd`` and ``group`` (the cell's user is uid 1000 /
  gid 100, ``user`` of group ``users``), ``nsswitch.conf``, ``hosts``, ``hostname``, an empty
  ``resolv.conf`` (no network; a container engine mounts its own over these), ``profile`` and
  ``set-environment`` (the login environment, programs.nix-ld's variables among it),
  ``ssl/certs/ca-certificates.crt`` and ``ca-bundle.crt``, ``zoneinfo`` and ``localtime`` (UTC).

Not there, as on NixOS: /lib, /lib64, /usr/lib and every other /usr/bin program.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from harness.model import Link, StorePath
from harness.root.bwrap import HOSTNAME
from harness.root.environments import HOME, set_environment
from harness.root.release import CURRENT, RELEASES, NixosRelease

SW_BIN = "/run/current-system/sw/bin"


def os_release(release: NixosRelease) -> str:
    """``/etc/os-release`` of ``release`` (the fields NixOS writes that programs read: ID, VERSION_ID)."""
    version = f"{release.version} ({release.codename})" if release.codename else release.version
    return (f'ID=nixos\nLOGO="nix-snowflake"\nNAME=NixOS\nPRETTY_NAME="{release.pretty_name}"\n'
            f'VERSION="{version}"\n'
            + (f"VERSION_CODENAME={release.codename.lower()}\n" if release.codename else "")
            + f'VERSION_ID="{release.version}"\n')

PASSWD = f"""root:x:0:0:System administrator:/root:{SW_BIN}/bash
user:x:1000:100::{HOME}:{SW_BIN}/bash
nobody:x:65534:65534:Unprivileged account (don't use!):/var/empty:{SW_BIN}/nologin
"""
GROUP = """root:x:0:
users:x:100:user
nogroup:x:65534:
"""
NSSWITCH = """passwd:    files
group:     files
shadow:    files
hosts:     files dns
networks:  files
ethers:    files
services:  files
protocols: files
rpc:       files
"""
HOSTS = """127.0.0.1 localhost
::1 localhost
"""
PROFILE = """# /etc/profile (ldmatrix, after NixOS's): read by login shells.
if [ -n "$__ETC_PROFILE_SOURCED" ]; then return; fi
__ETC_PROFILE_SOURCED=1
# Prevent this file from being sourced by interactive non-login child shells.
export __ETC_PROFILE_DONE=1
# The system's environment.variables (programs.nix-ld's among them).
. /etc/set-environment
"""


@dataclass(frozen=True)
class SystemPaths:
    """The store paths the system's layout links to (one set per store glibc)."""

    coreutils: tuple[StorePath, ...]  # coreutils first, then its libraries
    tools: tuple[StorePath, ...]  # grep, sed, findutils (NixOS's requiredPackages have them), their libraries
    ldd: StorePath  # the store glibc's bin output (glibc.bin): ldd with its #! on the store's bash
    tzdata: StorePath
    cacert: StorePath
    bash: tuple[StorePath, ...]  # Debian's bash, dynamically linked as NixOS's bashInteractive, then its libraries
    python: tuple[StorePath, ...]  # the suite's python3 first, then the libraries its modules need

    @property
    def store_paths(self) -> tuple[StorePath, ...]:
        return (*self.coreutils, *self.tools, self.ldd, self.tzdata, self.cacert, *self.bash, *self.python)

    def sw_bin(self) -> tuple[Link, ...]:
        """``/run/current-system/sw/bin``: every program of coreutils and the tools, bash, ldd, python3."""
        return _sw_bin(self)


@functools.lru_cache(maxsize=64)
def _sw_bin(paths: SystemPaths) -> tuple[Link, ...]:
    """Listed once per system (its store paths are cache entries, which do not change under a run)."""
    programs: dict[str, Link] = {}
    for path in (*paths.coreutils, *paths.tools):
        directory = path.host_path / "bin"
        for name in sorted(p.name for p in directory.iterdir()) if directory.is_dir() else ():
            programs.setdefault(name, Link(f"{SW_BIN}/{name}", f"{path.store_path}/bin/{name}"))
    links = list(programs.values())
    bash = f"{paths.bash[0].store_path}/bin/bash"
    links += [Link(f"{SW_BIN}/bash", bash), Link(f"{SW_BIN}/sh", bash),
              Link(f"{SW_BIN}/ldd", f"{paths.ldd.store_path}/bin/ldd"),
              Link(f"{SW_BIN}/python3", f"{paths.python[0].store_path}/bin/python3")]
    return tuple(links)


@dataclass(frozen=True)
class SystemLayout:
    store_paths: tuple[StorePath, ...]
    links: tuple[Link, ...]
    files: dict[str, str]


def layout(paths: SystemPaths, login_env: tuple[tuple[str, str], ...],
           release: NixosRelease = RELEASES[CURRENT]) -> SystemLayout:
    """The system's links and files for a cell whose login environment is ``login_env``, on ``release``."""
    certs = f"{paths.cacert.store_path}/etc/ssl/certs/ca-certificates.crt"
    links = (
        *paths.sw_bin(),
        # NixOS's environment.binsh: a dynamically linked bash, whose PT_INTERP is the store's ld.so
        # (what uv 0.1.17 reads to find the libc: /bin/sh, /bin/dash, /bin/ls, in that order)
        Link("/bin/sh", f"{paths.bash[0].store_path}/bin/bash"),
        Link("/usr/bin/env", f"{paths.coreutils[0].store_path}/bin/env"),
        Link("/etc/ssl/certs/ca-certificates.crt", certs),
        Link("/etc/ssl/certs/ca-bundle.crt", certs),
        Link("/etc/zoneinfo", f"{paths.tzdata.store_path}/share/zoneinfo"),
        Link("/etc/localtime", "/etc/zoneinfo/UTC"),
    )
    files = {"/etc/os-release": os_release(release), "/etc/passwd": PASSWD, "/etc/group": GROUP,
             "/etc/nsswitch.conf": NSSWITCH, "/etc/hosts": HOSTS, "/etc/hostname": f"{HOSTNAME}\n",
             "/etc/resolv.conf": "", "/etc/profile": PROFILE, "/etc/set-environment": set_environment(login_env)}
    return SystemLayout(paths.store_paths, links, files)
