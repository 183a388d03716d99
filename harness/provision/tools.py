"""Programs the launch styles start a cell's program from, as store paths of the NixOS-like root.

- ``bash``: Debian's static bash (``bash-static``) as ``<store>/bin/bash``, the login shell.
(The system's Python is the suite's own, made by harness/provision/packages.py.)
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
