"""The program every sandboxed cell starts through: harness/data/cell_user.c, built once and cached.

It is compiled statically in a build root (the same bubblewrap build sandbox as the reproducers)
into a store-path-like cache entry ``store/<digest>-ldmatrix-cell-user-<recipe>/bin/cell-user``,
checked like every other entry, and bound read-only into each cell (harness.bwrap.CELL_USER_PATH).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import threading
from pathlib import Path

from harness import cache_entry
from harness.cache import Cache
from harness.errors import LdmatrixError
from harness.progress import NullProgress, Progress

SOURCE = Path(__file__).resolve().parent / "data" / "cell_user.c"
RECIPE = "2"  # 2: --own DIR (a cell's HOME, a tmpfs, given to the cell user)
SUITE = "bullseye"  # any build root does: the result is static
FLAGS = ("-static", "-O2", "-Wall", "-Wextra", "-Werror")
TIMEOUT = 300.0

_lock = threading.Lock()
_built: dict[Path, Path] = {}


def _digest(root_digest: str) -> str:
    h = hashlib.sha256()
    for part in (RECIPE, " ".join(FLAGS), root_digest, SOURCE.read_text()):
        h.update(part.encode() + b"\0")
    return h.hexdigest()[:32]


def ensure(cache: Cache | None = None, progress: Progress | None = None) -> Path:
    """The host path of the built cell-user program (built now if it is not in the cache)."""
    from harness import provision
    from harness.provision.buildroot import root_digest as buildroot_digest
    from harness.provision.mirror import ENV_VAR
    from harness.reproducers import bwrap_argv

    def mirror() -> str | None:
        return os.environ.get(ENV_VAR, "").strip() or None

    cache = cache or Cache.default()
    progress = progress or NullProgress()
    with _lock:
        if cache.root in _built:
            return _built[cache.root]
        root_digest = buildroot_digest(SUITE, mirror=mirror())
        entry = cache_entry.Entry(cache, "store", f"{_digest(root_digest)}-ldmatrix-cell-user-{RECIPE}")
        made_from = {"kind": "cell-user", "recipe": RECIPE, "source": hashlib.sha256(SOURCE.read_bytes()).hexdigest(),
                     "flags": list(FLAGS), "root": root_digest}

        def fill(out: Path, scratch: Path) -> None:
            root = provision.build_root(SUITE, cache, progress)  # checked only when there is something to build
            (out / "bin").mkdir()
            command = ("gcc", *FLAGS, "-o", "/out/bin/cell-user", f"/src/{SOURCE.name}")
            proc = subprocess.run(bwrap_argv(root.path, SOURCE.parent, out, command), capture_output=True,
                                  text=True, timeout=TIMEOUT, stdin=subprocess.DEVNULL)
            if proc.returncode != 0 or not (out / "bin" / "cell-user").is_file():
                last = (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]
                raise LdmatrixError(f"building {SOURCE.name} in {SUITE} failed: {last}")
            out.chmod(0o755)

        path = cache_entry.ensure(entry, made_from, fill, progress, "the cell-user program") / "bin" / "cell-user"
        _built[cache.root] = path
        return path
