"""A program from a Debian package: the package's newest version in a suite of the machine's Debian
mirror, read from the signed InRelease and its Packages index (harness.provision.archive), pinned
by the index's sha256, downloaded and checked as the glibc packages are (harness.provision.fetch)."""

from __future__ import annotations

import difflib
import re
from pathlib import Path

from harness.cache import Cache
from harness.errors import ProvisionError
from harness.progress import Progress
from harness.provision import archive, fetch, store
from harness.provision.lockfile import LockedDeb
from harness.provision.mirror import debian_mirror
from harness.provision.suites import CONFIG

from .lock import Pin, relock_command
from .spec import Deb, Where

_PACKAGE_LINE = re.compile(r"^Package: (\S+)$", re.MULTILINE)
_INDEXES: dict[tuple[str, str, str], str] = {}  # (mirror, suite, arch) -> Packages, read once per process


def resolve(deb: Deb, where: Where, progress: Progress) -> Pin:
    """First use: the suite's current version of the package, as its signed index lists it."""
    arch = CONFIG.architecture
    try:
        mirror = debian_mirror()
        key = (mirror, deb.suite, arch)
        if key not in _INDEXES:
            progress.step(f"lock: reading dists/{deb.suite}/InRelease and its Packages index")
            _INDEXES[key] = archive.fetch_packages(archive.fetch_release(deb.suite, mirror), mirror, arch)
        text = _INDEXES[key]
    except ProvisionError as err:
        raise where.error(f"the Debian mirror cannot be reached ({err}); once the package is in the cache "
                          "no network is needed") from None
    stanzas = archive.parse_packages(text, {deb.package})
    if not any(s.get("Architecture") in (arch, "all") for s in stanzas.get(deb.package, [])):
        names = _PACKAGE_LINE.findall(text)
        close = difflib.get_close_matches(deb.package, names, n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise where.error(f"{deb.suite} has no package {deb.package!r} for {arch} in main{hint}")
    locked = archive.pick(stanzas, deb.suite, deb.package, arch)
    return Pin(deb.key, locked.sha256, locked.size, locked.filename, locked.version)


def locked_deb(deb: Deb, pin: Pin) -> LockedDeb:
    return LockedDeb(deb.suite, deb.package, pin.version, CONFIG.architecture, pin.filename, pin.size or 0,
                     pin.sha256)


def download(deb: Deb, pin: Pin, cache: Cache, progress: Progress, where: Where, matrix: str) -> Path:
    """The pinned .deb, verified (size, sha256, and its control file names this package and version)."""
    entry = locked_deb(deb, pin)
    try:
        path = fetch.download_deb(entry, cache, progress, relock=relock_command(matrix))
        store.check_control(path, entry)
    except ProvisionError as err:
        text = str(err)
        if text.startswith("download of "):  # fetch.retrying: the mirror did not answer
            raise where.error(f"the Debian mirror cannot be reached ({text}); once the package is in the cache "
                              "no network is needed") from None
        raise where.error(text) from None
    return path


_EXACT = re.compile(r"^\s*([a-z0-9][a-z0-9+.-]+)(?::any)?\s*\(\s*=\s*([^)\s]+)\s*\)\s*$")


def exact_depends(deb_file: Path) -> list[str]:
    """``name=version`` of each dependency the package pins exactly (``libjq1 (= 1.6-2.1+deb12u2)``, a
    library of its own source package): apt must be told, or it takes a newer one it cannot use."""
    import subprocess

    proc = subprocess.run(["dpkg-deb", "-f", str(deb_file), "Pre-Depends", "Depends"], capture_output=True, text=True)
    if proc.returncode != 0:
        raise ProvisionError(f"dpkg-deb -f {deb_file.name}: {(proc.stderr.strip().splitlines() or ['failed'])[-1]}")
    fields = " ".join(line.split(":", 1)[1] for line in proc.stdout.splitlines() if ":" in line)
    out = []
    for relation in fields.split(","):
        match = _EXACT.match(relation) if "|" not in relation else None
        if match:
            out.append(f"{match.group(1)}={match.group(2)}")
    return out
