"""Provisioning: Debian packages -> checksum-verified store paths, and Debian build roots.

    SUITES                      glibc version -> Debian suite ("2.36" -> "bookworm")
    LOCK_PATH                   matrices/packages.lock.json
    load_lock(path)             the validated lock
    refresh_lock(path, progress)  `ldmatrix lock`: re-read the signed archive indexes, rewrite the lock
    provision_glibc(v, cache, progress) -> GlibcSet
    build_root(suite, cache, progress) -> BuildRoot
"""

from __future__ import annotations

from .archive import refresh_lock
from .buildroot import build_root
from .lockfile import LOCK_PATH, Lock, LockedDeb, load_lock
from .store import provision_glibc
from .suites import SUITES

__all__ = [
    "LOCK_PATH", "SUITES", "Lock", "LockedDeb",
    "build_root", "load_lock", "provision_glibc", "refresh_lock",
]
