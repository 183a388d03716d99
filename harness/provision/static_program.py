"""Small static programs of ldmatrix's own (harness/data/*.c), built once in a build root and cached.

Each is compiled statically in the bullseye build root (any root does: the result is static) with
the same bubblewrap build sandbox as the reproducers, into a checked cache entry
``store/<digest>-<name>-<recipe>/bin/<program>``: harness/data/cell_user.c (every sandboxed cell
starts through it), harness/data/cell_start.c (what starts bubblewrap for a cell, joined to its
cgroup and limited; harness/root/cell_user.py) and harness/data/stub_ld.c (NixOS 24.05+'s stub-ld).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

from harness import DATA
from harness.cache import Cache
from harness.cache import entry as cache_entry
from harness.errors import LdmatrixError
from harness.progress import NullProgress, Progress

SUITE = "bullseye"  # any build root does: the result is static
TIMEOUT = 300.0

_lock = threading.Lock()
_built: dict[tuple[Path, str], Path] = {}


@dataclass(frozen=True)
class StaticProgram:
    name: str  # the cache entry's name: "ldmatrix-cell-user"
    program: str  # bin/<program>
    source: str  # in harness/data
    recipe: str
    flags: tuple[str, ...]

    @property
    def source_path(self) -> Path:
        return DATA / self.source

    def digest(self, root_digest: str) -> str:
        h = hashlib.sha256()
        for part in (self.recipe, " ".join(self.flags), root_digest, self.source_path.read_text()):
            h.update(part.encode() + b"\0")
        return h.hexdigest()[:32]


def ensure(spec: StaticProgram, cache: Cache | None = None, progress: Progress | None = None) -> Path:
    """The host path of ``spec``'s built program (built now if it is not in the cache)."""
    return entry_path(spec, cache, progress) / "bin" / spec.program


def entry_path(spec: StaticProgram, cache: Cache | None = None, progress: Progress | None = None) -> Path:
    """The checked cache entry holding ``bin/<program>``; its name's digest part is ``entry_digest``."""
    from harness import provision
    from harness.provision.buildroot import root_digest as buildroot_digest
    from harness.provision.mirror import ENV_VAR
    from harness.reproducers import bwrap_argv

    cache = cache or Cache.default()
    progress = progress or NullProgress()
    with _lock:
        if (cache.root, spec.name) in _built:
            return _built[(cache.root, spec.name)]
        root_digest = buildroot_digest(SUITE, mirror=os.environ.get(ENV_VAR, "").strip() or None)
        entry = cache_entry.Entry(cache, "store", f"{spec.digest(root_digest)}-{spec.name}-{spec.recipe}")
        made_from = {"kind": spec.name.removeprefix("ldmatrix-"), "recipe": spec.recipe,
                     "source": hashlib.sha256(spec.source_path.read_bytes()).hexdigest(),
                     "flags": list(spec.flags), "root": root_digest}

        def fill(out: Path, scratch: Path) -> None:
            root = provision.build_root(SUITE, cache, progress)  # checked only when there is something to build
            (out / "bin").mkdir()
            command = ("gcc", *spec.flags, "-o", f"/out/bin/{spec.program}", f"/src/{spec.source}")
            proc = subprocess.run(bwrap_argv(root.path, DATA, out, command), capture_output=True,
                                  text=True, timeout=TIMEOUT, stdin=subprocess.DEVNULL)
            if proc.returncode != 0 or not (out / "bin" / spec.program).is_file():
                last = (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]
                raise LdmatrixError(f"building {spec.source} in {SUITE} failed: {last}")
            out.chmod(0o755)

        path = cache_entry.ensure(entry, made_from, fill, progress, f"the {spec.program} program")
        _built[(cache.root, spec.name)] = path
        return path
