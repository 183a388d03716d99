"""Programs the launch styles start a cell's program from, as store paths of the NixOS-like root.

- ``bash``: Debian's static bash (``bash-static``) as ``<store>/bin/bash``, the login shell.
- ``python3``: bullseye's Python 3.9 (runs on every store glibc from 2.31 on) with its minimal
  standard library, zlib and expat, its interpreter and RUNPATH patched into one store glibc, as a
  Nix-built Python is built against the system's glibc: one store path per glibc.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from harness.cache import Cache
from harness.errors import ProvisionError
from harness.model import GlibcSet, StorePath
from harness.patchelf import patch
from harness.progress import Progress

from .lockfile import LOCK_PATH, Lock, load_lock
from .store import LIB_DIRS, _flatten_dir, make_package_path, store_version
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


def python_version(debs) -> str:
    interpreter = next(d for d in debs if d.package.startswith("python3") and d.package.endswith("-minimal"))
    return store_version(interpreter.version).split("-")[0]


def provision_python(glibc: GlibcSet, cache: Cache, progress: Progress, *, lock: Lock | None = None,
                     lock_path: Path = LOCK_PATH, config: SuitesConfig = CONFIG) -> StorePath:
    debs = _debs("python3", lock or load_lock(lock_path, config), config)
    version = python_version(debs)
    short = ".".join(version.split(".")[:2])

    def layout(tree: Path, out: Path, what: str) -> None:
        interpreter = next((tree / d / f"python{short}" for d in ("usr/bin", "bin")
                            if (tree / d / f"python{short}").is_file()), None)
        stdlib = tree / "usr" / "lib" / f"python{short}"
        if interpreter is None or not (stdlib / "os.py").is_file():
            raise ProvisionError(f"{what}: no bin/python{short} with lib/python{short}/os.py")
        _flatten_dir(tree, LIB_DIRS, out / "lib", what)  # libz, libexpat
        os.rename(stdlib, out / "lib" / f"python{short}")
        (out / "bin").mkdir()
        shutil.move(str(interpreter), out / "bin" / f"python{short}")
        (out / "bin" / "python3").symlink_to(f"python{short}")
        # Found by the landmark lib/python3.x/os.py beside its own bin/: no PYTHONHOME needed.
        patch(out / "bin" / f"python{short}", glibc.loader, ["$ORIGIN/../lib", glibc.glibc.lib_dir])

    return make_package_path("python3", version, debs, cache, progress, layout, extra=(glibc.glibc.basename,))
