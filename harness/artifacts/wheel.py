"""A wheel from the package index: the Linux x86_64 file pip would choose for ``name==version``.

pip ranks a version's wheels by the first of its supported tags each matches: for CPython on
glibc x86_64 the interpreter tags (cp311, abi3, py3, ...) crossed with the platforms
``manylinux_2_N_x86_64`` from the machine's glibc down to 2.5 (each legacy alias right after its
version: manylinux2014 = 2.17, manylinux2010 = 2.12, manylinux1 = 2.5), then ``linux_x86_64``.
Here the machine is a NixOS with the newest glibc ldmatrix tests, and the Python is ldmatrix's own.
The choice is made once and pinned (file name and the index's sha256) in the matrix's lock.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.tags import Tag, compatible_tags, cpython_tags
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

from harness.cache import Cache
from harness.errors import ProvisionError
from harness.progress import Progress
from harness.provision import fetch

from . import index
from .lock import Pin, relock_command
from .spec import Wheel, Where

ARCH = "x86_64"
LEGACY = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}
NEAREST = 3  # versions shown on each side of one the index does not have


def newest_glibc() -> tuple[int, int]:
    from harness.provision import SUITES

    major, minor = max(tuple(int(p) for p in v.split(".")) for v in SUITES)
    return major, minor


def platforms(glibc: tuple[int, int]) -> list[str]:
    """pip's platform tags on a glibc x86_64 machine, best first."""
    out = []
    for minor in range(glibc[1], 4, -1):
        out.append(f"manylinux_2_{minor}_{ARCH}")
        if minor in LEGACY:
            out.append(f"{LEGACY[minor]}_{ARCH}")
    out.append(f"linux_{ARCH}")
    return out


def supported(glibc: tuple[int, int], python: tuple[int, int]) -> dict[Tag, int]:
    """Every tag this Python on that glibc accepts, with its rank (0 is best): packaging's
    ``sys_tags`` for CPython, with the platforms above instead of the running machine's."""
    plats = platforms(glibc)
    tags = [*cpython_tags(python, platforms=plats), *compatible_tags(python, f"cp{python[0]}{python[1]}", plats)]
    ranks: dict[Tag, int] = {}
    for rank, tag in enumerate(tags):
        ranks.setdefault(tag, rank)
    return ranks


@dataclass(frozen=True)
class Candidate:
    file: index.IndexFile
    version: Version
    tags: frozenset[Tag]


def _candidates(page: index.ProjectPage) -> tuple[list[Candidate], set[str], dict[Version, list[str]]]:
    """The page's wheels, all its versions, and per version the file names (wheels and sdists)."""
    wheels: list[Candidate] = []
    versions: set[str] = set(page.versions)
    names: dict[Version, list[str]] = {}
    wanted = canonicalize_name(page.project)
    for f in page.files:
        try:
            if f.filename.endswith(".whl"):
                name, version, _, tags = parse_wheel_filename(f.filename)
                if name == wanted:
                    wheels.append(Candidate(f, version, tags))
            else:
                name, version = parse_sdist_filename(f.filename)
        except (InvalidWheelFilename, InvalidSdistFilename, InvalidVersion):
            continue
        if name == wanted:
            versions.add(str(version))
            names.setdefault(version, []).append(f.filename)
    return wheels, versions, names


def nearest(versions: Iterable[str], wanted: Version, count: int = NEAREST) -> list[str]:
    """The ``count`` versions just below and just above ``wanted``, in order."""
    parsed = []
    for v in set(versions):
        try:
            parsed.append(Version(v))
        except InvalidVersion:
            continue
    parsed.sort()
    below = [v for v in parsed if v < wanted][-count:]
    above = [v for v in parsed if v > wanted][:count]
    return [str(v) for v in below + above]


def choose(page: index.ProjectPage, wheel: Wheel, where: Where, *, glibc: tuple[int, int] | None = None,
           python: tuple[int, int] | None = None) -> index.IndexFile:
    """The file pip would install for ``wheel`` on Linux x86_64, or one line saying why there is none."""
    glibc = glibc or newest_glibc()
    python = python or (sys.version_info[0], sys.version_info[1])
    wanted = Version(wheel.version)
    wheels, versions, names = _candidates(page)
    if wanted not in names and not any(c.version == wanted for c in wheels):
        close = nearest(versions, wanted)
        have = f"nearest: {', '.join(close)} (of {len(versions)} versions)" if close else "it lists no versions"
        raise where.error(f"the package index has no {wheel.project} {wheel.version}; {have}")
    ranks = supported(glibc, python)
    python_version = Version(f"{python[0]}.{python[1]}")
    usable = []
    for c in wheels:
        if c.version != wanted:
            continue
        rank = min((ranks[t] for t in c.tags if t in ranks), default=None)
        if rank is None or not _python_ok(c.file.requires_python, python_version):
            continue
        usable.append((rank, c.file.filename, c.file))
    if not usable:
        plats = sorted({t.platform for c in wheels if c.version == wanted for t in c.tags})
        sdists = [n for n in names.get(wanted, []) if not n.endswith(".whl")]
        has = f"its wheels are for: {', '.join(plats)}" if plats else "it has no wheels"
        if sdists:
            has += f"; and a source distribution ({sdists[0]}), which ldmatrix does not build"
        raise where.error(f"{wheel.project} {wheel.version} has no wheel for Linux {ARCH} (manylinux or linux, "
                          f"glibc <= {glibc[0]}.{glibc[1]}, Python {python[0]}.{python[1]}); {has}")
    return min(usable)[2]


def _python_ok(requires: str | None, python: Version) -> bool:
    if not requires:
        return True
    try:
        return SpecifierSet(requires).contains(python, prereleases=True)
    except InvalidSpecifier:
        return True  # pip ignores a specifier it cannot read


def resolve(wheel: Wheel, where: Where) -> Pin:
    """First use: the file pip would choose, pinned by the index's sha256 (trusted on first use)."""
    page = _page(wheel, where)
    chosen = choose(page, wheel, where)
    if not chosen.sha256:
        raise where.error(f"the package index gives no sha256 for {chosen.filename}; ldmatrix pins every "
                          "artifact by its sha256")
    return Pin(wheel.key, chosen.sha256, chosen.size, chosen.filename, wheel.version)


def _page(wheel: Wheel, where: Where) -> index.ProjectPage:
    try:
        return index.project_page(wheel.project)
    except index.NoSuchProject as err:
        raise where.error(str(err)) from None
    except ProvisionError as err:
        raise where.error(f"the package index cannot be reached ({err}); once the wheel is in the cache "
                          "no network is needed") from None


def download(wheel: Wheel, pin: Pin, cache: Cache, progress: Progress, where: Where, matrix: str) -> Path:
    """The pinned wheel in the cache (``downloads/<sha256>.whl``), fetched from the index only when no
    cached copy verifies; the index's sha256 and the bytes must both be the lock's."""
    dest = cache.downloads / f"{pin.sha256}.whl"
    if fetch.verifies(dest, pin.size, pin.sha256):
        return dest
    page = _page(wheel, where)
    listed = next((f for f in page.files if f.filename == pin.filename), None)
    if listed is None:
        raise where.error(f"the package index no longer lists {pin.filename}, pinned in the lock; run "
                          f"`{relock_command(matrix)}` to choose again")
    if listed.sha256 and listed.sha256 != pin.sha256:
        raise where.error(f"the package index gives sha256 {listed.sha256} for {pin.filename}, the lock says "
                          f"{pin.sha256}; refusing it")
    progress.step(f"downloading {pin.filename}" + (f" ({pin.size / 1e6:.1f} MB)" if pin.size else ""))

    def save(resp) -> None:
        try:
            fetch.save_verified(resp, dest, pin.sha256, pin.size)
        except fetch.Mismatch as err:
            raise where.error(f"{pin.filename}: got {err.got}, the lock says sha256 {pin.sha256}; refusing it "
                              f"(run `{relock_command(matrix)}` if the index really changed)") from None

    try:
        fetch.retrying(listed.url, pin.filename, save)
    except fetch.NotFound:
        raise where.error(f"the package index lists {pin.filename} but serves 404 for it") from None
    except ProvisionError as err:  # the error raised by save is an ArtifactError, not caught here
        raise where.error(f"the package index cannot be reached ({err}); once the wheel is in the cache "
                          "no network is needed") from None
    return dest
