"""Where ldmatrix keeps what it downloads and builds: ``$LDMATRIX_CACHE`` or ``~/.cache/ldmatrix``.

- here: ``Cache`` (the directory and its areas) and ``REPO_ROOT``;
- ``entry``: one checked entry, made atomically with a manifest (``ensure``, ``check``, ``verify``, ``sweep``);
- ``installed``: patched binaries and root overlays cells share, on the same entry mechanism;
- ``verify``: ``verify_cache`` (``ldmatrix cache verify``); ``remove``: ``remove_tree``, any depth.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Cache:
    root: Path

    @classmethod
    def default(cls) -> Cache:
        env = os.environ.get("LDMATRIX_CACHE")
        if env:
            return cls(Path(env))
        base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
        return cls(base / "ldmatrix")

    def dir(self, name: str) -> Path:
        path = self.root / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    @property
    def downloads(self) -> Path:  # verified .deb files, named by sha256
        return self.dir("downloads")

    @property
    def store(self) -> Path:  # unpacked store paths, <digest>-<name>-<version>
        return self.dir("store")

    @property
    def buildroots(self) -> Path:  # Debian roots with gcc and rustc
        return self.dir("buildroots")

    @property
    def builds(self) -> Path:  # compiled reproducers
        return self.dir("builds")


REPO_ROOT = Path(__file__).resolve().parent.parent.parent
