"""A matrix's artifacts as programs to run: pinned in its lock, fetched and verified, the program
extracted into a checked cache entry, and handed to the rest of the harness as a ``BuiltBinary``
(what a compiled reproducer is), so ``installed.install`` patches it per strategy like any other.

    provide(matrix, artifacts, wanted, cache, progress) -> {artifact id: BuiltBinary}
    relock(matrix, artifacts, progress)                  `ldmatrix lock MATRIX`: move every pin on

The program's cache entry is ``artifacts/<name>-<digest>``, made from the pin (sha256) and the
path: once it is there and checks, nothing is fetched, so a run needs no network. A local file is
hashed on every run all the same, so a rebuilt one is never judged by its old entry.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from harness.cache import Cache
from harness.cache import entry as cache_entry
from harness.errors import LdmatrixError
from harness.loader import elf
from harness.model import BuiltBinary
from harness.progress import Progress

from . import deb, local, url, wheel
from .lock import ArtifactLock, Pin, held, lock_path, read_lock, write_lock
from .spec import Artifact, Deb, LocalFile, Url, Wheel
from .tree import TOP, install

if TYPE_CHECKING:
    from harness.matrix import Matrix
    from harness.model import Cell

AREA = "artifacts"
LAYOUT = "2.1"  # bump when what an entry holds changes (2: the artifact whole, under tree/; a package's apt line)
ORIGIN = "origin.json"
_SAFE = re.compile(r"[^A-Za-z0-9._+-]")


def resolve(artifact: Artifact, cache: Cache, progress: Progress) -> Pin:
    """The pin of an artifact the lock lacks: what the index, the mirror, the URL or the file gives now."""
    source = artifact.source
    where = artifact.at(artifact.kind.value)
    if isinstance(source, Wheel):
        pin = wheel.resolve(source, where)
    elif isinstance(source, Deb):
        pin = deb.resolve(source, where, progress)
    elif isinstance(source, Url):
        pin = url.resolve(source, cache, progress, where, artifact.at("sha256"))
    else:
        pin = local.resolve(source, where)
    return pin


def fetched(artifact: Artifact, pin: Pin, cache: Cache, progress: Progress, matrix: str) -> Path:
    """The artifact's verified bytes on this machine (a cached download, or the local file)."""
    source = artifact.source
    where = artifact.at(artifact.kind.value)
    if isinstance(source, Wheel):
        return wheel.download(source, pin, cache, progress, where, matrix)
    if isinstance(source, Deb):
        return deb.download(source, pin, cache, progress, where, matrix)
    if isinstance(source, Url):
        return url.download(source, cache, progress, where, artifact.at("sha256"), pin.size)
    return local.verified(source, pin, where, matrix)


def _label(artifact: Artifact, pin: Pin) -> str:
    if pin.filename:
        return Path(pin.filename).name
    if isinstance(artifact.source, Url):
        return artifact.source.name
    if isinstance(artifact.source, LocalFile):
        return artifact.source.written
    return artifact.binary


def made_from(artifact: Artifact, pin: Pin) -> dict:
    return {"kind": "artifact", "layout": LAYOUT, "source": artifact.source.key, "sha256": pin.sha256,
            "path": artifact.path or "", "name": artifact.name}


def entry_for(artifact: Artifact, pin: Pin, cache: Cache) -> cache_entry.Entry:
    digest = hashlib.sha256(json.dumps(made_from(artifact, pin), sort_keys=True).encode()).hexdigest()[:32]
    return cache_entry.Entry(cache, AREA, f"{_SAFE.sub('_', artifact.name)}-{digest}")


def program(artifact: Artifact, pin: Pin, built_in: str | None, cache: Cache, progress: Progress,
            matrix: str) -> BuiltBinary:
    """The program, extracted once into its cache entry (checked on every use)."""
    if isinstance(artifact.source, LocalFile):
        local.verified(artifact.source, pin, artifact.at("file"), matrix)
    entry = entry_for(artifact, pin, cache)
    label = _label(artifact, pin)

    def fill(out: Path, scratch: Path) -> None:
        source = fetched(artifact, pin, cache, progress, matrix)
        progress.step(f"installing {label} whole, its program {artifact.path or artifact.name}")
        info, member = install(artifact, source, label, out, scratch)
        origin = {"binary": artifact.binary, "artifact": artifact.source.key, "file": label, "sha256": pin.sha256,
                  "path": artifact.path, "member": member, "interpreter": info.interpreter,
                  "needed": list(info.needed), "requires": info.newest_requirements()}
        if isinstance(artifact.source, Deb):  # how apt installs it in the container's root
            origin["apt"] = [f"{artifact.source.package}={pin.version}", *deb.exact_depends(source)]
        (out / ORIGIN).write_text(json.dumps(origin, indent=1, sort_keys=True) + "\n")

    cache_entry.ensure(entry, made_from(artifact, pin), fill, progress, f"program {artifact.name} from {label}")
    origin = json.loads((entry.path / ORIGIN).read_text())
    binary = entry.path / TOP / origin["member"]
    return BuiltBinary(reproducer=artifact.name, suite=built_in or "", path=binary,
                       sha256=cache_entry.file_sha256(binary), build_log=entry.path / ORIGIN,
                       interpreter=elf.read_interpreter(binary) or "", tree=entry.path / TOP,
                       named=artifact.path or artifact.name, member=origin["member"], apt=tuple(origin.get("apt", ())))


def _pins(matrix: Path, display: str, artifacts: Iterable[Artifact], wanted: set[str], cache: Cache,
          progress: Progress, *, move: bool = False) -> ArtifactLock:
    """The lock with a pin for every wanted artifact (first use: resolved and written), and only the
    artifacts the matrix names. What resolved is written even when another artifact fails."""
    path = lock_path(matrix)
    artifacts = list(artifacts)
    with held(matrix):
        lock = read_lock(path, display)
        pins = {k: p for k, p in lock.pins.items() if k in {a.source.key for a in artifacts}}
        changed = set(pins) != set(lock.pins)
        failure: LdmatrixError | None = None
        for artifact in artifacts:
            key = artifact.source.key
            if artifact.id not in wanted or (key in pins and not move):
                continue
            try:
                pin = resolve(artifact, cache, progress)
            except LdmatrixError as err:
                failure = failure or err
                continue
            old = pins.get(key)
            if old != pin:
                what = "moved" if old else "pinned"
                was = f" (was {old.version or old.describe()})" if old else ""
                progress.step(f"lock: {what} {artifact.source.describe()}: {pin.version + ' ' if pin.version else ''}"
                              f"{pin.describe()}{was}")
                pins[key] = pin
                changed = True
        updated = ArtifactLock(path, display, pins)
        if changed:
            write_lock(updated)
        if failure is not None:
            raise failure
    return updated


def provide(matrix: Path, display: str, artifacts: Iterable[tuple[Artifact, str | None]], wanted: set[str],
            cache: Cache, progress: Progress) -> dict[str, BuiltBinary]:
    """``artifacts``: every (artifact, built_in) of the matrix; ``wanted``: the ids the run's cells use."""
    pairs = list(artifacts)
    if not pairs:
        return {}
    lock = _pins(matrix, display, (a for a, _ in pairs), wanted, cache, progress)
    out: dict[str, BuiltBinary] = {}
    for artifact, built_in in pairs:
        if artifact.id in wanted and artifact.id not in out:
            progress.step(f"program {artifact.binary} from {artifact.source.describe()}")
            out[artifact.id] = program(artifact, lock.pins[artifact.source.key], built_in, cache, progress, display)
    return out


def relock(matrix: Path, display: str, artifacts: Iterable[Artifact], cache: Cache, progress: Progress,
           only_missing: bool = False) -> ArtifactLock:
    """``ldmatrix lock MATRIX``: every artifact resolved again (or only those the lock lacks)."""
    artifacts = list(artifacts)
    unique = list({a.source.key: a for a in artifacts}.values())
    return _pins(matrix, display, unique, {a.id for a in unique}, cache, progress, move=not only_missing)


def for_cells(matrix: Matrix, cells: Iterable[Cell], cache: Cache,
              progress: Progress) -> dict[tuple[str, str], BuiltBinary]:
    """The programs the cells of ``matrix`` run, keyed as the run's binaries are (``BinarySpec.key``)."""
    specs = [s for s in matrix.binaries.values() if s.artifact is not None]
    if not specs:
        return {}
    cells = list(cells)
    used = {c.binary for c in cells} | {matrix.binaries[c.binary].child for c in cells}
    wanted = {s.artifact.id for s in specs if s.name in used and s.artifact is not None}
    given = [(s.artifact, s.built_in) for s in specs if s.artifact is not None]
    built = provide(matrix.path, str(matrix.path), given, wanted, cache, progress)
    return {s.key: built[s.artifact.id] for s in specs if s.artifact is not None and s.artifact.id in built}
