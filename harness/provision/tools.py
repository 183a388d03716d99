"""Debian's static bash (``bash-static``) as a store path, ``<store>/bin/bash``: a shell that needs no
glibc of its own, for the test fixtures that stand in for a nixpkgs pin and for a NixOS VM
(tests/nixpkgs_standin.py, tests/vm_standin.py). The NixOS-like root's own bash, /bin/sh and
python3 are the suite's, dynamically linked against the store glibc (harness/provision/packages.py).
"""

from __future__ import annotations

from pathlib import Path

from harness.cache import Cache
from harness.errors import ProvisionError
from harness.model import StorePath
from harness.progress import Progress

from .lockfile import LOCK_PATH, Lock, load_lock
from .store import make_package_path, store_version
from .suites import CONFIG, SuitesConfig


def _debs(name: str, lock: Lock, config: SuitesConfig):
    try:
        suite, packages = config.store_packages[name]
    except KeyError:
        raise ProvisionError(f"suites.json: store_packages has no {name!r}") from None
    return tuple(lock.deb(suite, package) for package in packages)


def provision_bash(cache: Cache, progress: Progress, *, lock: Lock | None = None, lock_path: Path = LOCK_PATH,
                   config: SuitesConfig = CONFIG) -> StorePath:
    debs = _debs("bash", lock or load_lock(lock_path, config), config)
    from .store import LAYOUTS

    return make_package_path("bash", store_version(debs[0].version).split("-")[0], debs, cache, progress,
                             LAYOUTS["bash"])
