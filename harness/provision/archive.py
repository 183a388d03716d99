"""Read the Debian archive's signed indexes and rewrite the lock from them (`ldmatrix lock`)."""

from __future__ import annotations

import hashlib
import json
import lzma
import re
import subprocess
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path

from harness.errors import ProvisionError
from harness.progress import Progress

from . import debversion
from .fetch import NotFound, fetch_bytes
from .libraries import CONFIG as LIBRARIES
from .libraries import resolve as resolve_libraries
from .lockfile import LOCK_PATH, Lock, LockedDeb, LockedSource, SuiteLock, wanted_sources, write_lock
from .mirror import debian_mirror
from .suites import CONFIG, SuitesConfig

KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")


@dataclass(frozen=True)
class Release:
    suite: str
    date: str
    fields: dict[str, str]
    sha256: dict[str, tuple[int, str]]  # path -> (size, sha256)
    warning: str = ""  # e.g. Valid-Until in the past: a stale mirror

    @property
    def by_hash(self) -> bool:
        return self.fields.get("acquire-by-hash", "").lower() == "yes"


def gpgv_verify(signed: bytes, keyring: Path, what: str) -> bytes:
    """The signed text of an InRelease, if at least one signature verifies and none is bad.

    gpgv exits 2 when *any* signature cannot be checked (e.g. signed by a key not in the keyring,
    as happens when the archive adds a new key), even if another one verifies: so read its
    status lines, like apt does, instead of trusting the exit status.
    """
    if not keyring.is_file():
        raise ProvisionError(f"{keyring} missing; install it: apt-get install -y debian-archive-keyring")
    with tempfile.TemporaryDirectory(prefix="ldmatrix-gpgv-") as tmp:
        src, out = Path(tmp) / "InRelease", Path(tmp) / "Release"
        src.write_bytes(signed)
        try:
            proc = subprocess.run(
                ["gpgv", "--status-fd", "1", "--keyring", str(keyring), "--output", str(out), str(src)],
                capture_output=True, text=True, timeout=60,
            )
        except FileNotFoundError:
            raise ProvisionError("gpgv not found; install it: apt-get install -y gpgv") from None
        status = [line.split()[1:] for line in proc.stdout.splitlines() if line.startswith("[GNUPG:] ")]
        bad = [s for s in status if s and s[0] == "BADSIG"]
        unusable = {s[1][-16:] for s in status if s and s[0] in ("EXPKEYSIG", "REVKEYSIG") and len(s) > 1}
        valid = [s[1] for s in status if s and s[0] == "VALIDSIG" and len(s) > 1 and s[1][-16:] not in unusable]
        missing = [s[1] for s in status if s and s[0] == "NO_PUBKEY" and len(s) > 1]
        if bad:
            raise ProvisionError(f"{what}: BAD signature by key {bad[0][1]}; refusing it")
        if not valid or not out.exists():
            why = f"signed only by keys not in {keyring}: {', '.join(missing)}" if missing else \
                (proc.stderr.strip().splitlines() or ["no valid signature"])[-1]
            raise ProvisionError(f"{what}: no valid signature ({why}); update debian-archive-keyring")
        return out.read_bytes()


def parse_release(text: str, suite: str, now: datetime | None = None) -> Release:
    fields: dict[str, str] = {}
    sums: dict[str, tuple[int, str]] = {}
    key = None
    for line in text.splitlines():
        if line[:1] in (" ", "\t"):
            if key == "sha256":
                parts = line.split()
                if len(parts) == 3:
                    sums[parts[2]] = (int(parts[1]), parts[0])
            continue
        key, _, value = line.partition(":")
        key = key.strip().lower()
        fields[key] = value.strip()
    warning = ""
    valid_until = fields.get("valid-until")
    if valid_until:
        try:
            until = parsedate_to_datetime(valid_until)
        except (TypeError, ValueError):
            until = None
        if until is not None and until < (now or datetime.now(UTC)):
            # apt would refuse it; the lock still pins every file by sha256, so only warn
            warning = (f"warning: dists/{suite}/InRelease expired at {valid_until} "
                       f"(a stale mirror or a wrong clock); locking its versions anyway")
    codename = fields.get("codename", "")
    if codename and codename != suite and fields.get("suite") != suite:
        raise ProvisionError(f"dists/{suite}/InRelease is for {codename!r}, not {suite!r}")
    return Release(suite, fields.get("date", ""), fields, sums, warning)


def fetch_release(suite: str, mirror: str, keyring: Path = KEYRING) -> Release:
    rel = f"dists/{suite}/InRelease"
    try:
        signed = fetch_bytes(rel, mirror)
    except NotFound:
        raise ProvisionError(f"{rel}: 404; is {suite!r} a suite of this mirror?") from None
    text = gpgv_verify(signed, keyring, rel)
    return parse_release(text.decode("utf-8", "replace"), suite)


def fetch_packages(release: Release, mirror: str, arch: str, component: str = "main") -> str:
    """The Packages index, checked against the sha256 the signed InRelease gives for it."""
    return fetch_index(release, mirror, f"{component}/binary-{arch}", "Packages.xz")


def fetch_sources(release: Release, mirror: str, component: str = "main") -> str:
    """The Sources index, checked against the sha256 the signed InRelease gives for it."""
    return fetch_index(release, mirror, f"{component}/source", "Sources.xz")


def fetch_index(release: Release, mirror: str, directory: str, file: str) -> str:
    """An xz index of the suite (``main/source/Sources.xz``), checked against the signed InRelease."""
    name = f"{directory}/{file}"
    if name not in release.sha256:
        raise ProvisionError(f"dists/{release.suite}/InRelease lists no {name}")
    size, sha = release.sha256[name]
    plain = f"dists/{release.suite}/{name}"
    # by-hash cannot change under us between reading InRelease and the index (sid moves daily)
    rel = f"dists/{release.suite}/{directory}/by-hash/SHA256/{sha}" if release.by_hash else plain
    try:
        data = fetch_bytes(rel, mirror)
    except NotFound:
        data = fetch_bytes(plain, mirror) if rel != plain else b""
    got = hashlib.sha256(data).hexdigest()
    if len(data) != size or got != sha:
        raise ProvisionError(f"{plain}: sha256 {got} ({len(data)} bytes) does not match InRelease "
                             f"({sha}, {size} bytes); the mirror is mid-sync, try again later")
    return lzma.decompress(data).decode("utf-8", "replace")


def parse_packages(text: str, wanted: set[str] | None) -> dict[str, list[dict[str, str]]]:
    """Stanzas of the wanted packages (None: all of them): package -> [fields, ...]."""
    out: dict[str, list[dict[str, str]]] = {}
    for stanza in text.split("\n\n"):
        first = stanza.lstrip("\n").split("\n", 1)[0]
        if not first.startswith("Package: ") or (wanted is not None and first[9:].strip() not in wanted):
            continue
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            if line[:1] not in (" ", "\t") and ":" in line:
                k, _, v = line.partition(":")
                fields[k.strip()] = v.strip()
        out.setdefault(fields["Package"], []).append(fields)
    return out


def pick(stanzas: dict[str, list[dict[str, str]]], suite: str, package: str, arch: str) -> LockedDeb:
    found = [s for s in stanzas.get(package, []) if s.get("Architecture") in (arch, "all")]
    if not found:
        raise ProvisionError(f"dists/{suite}: no {package} for {arch} in main")
    version = debversion.newest([s["Version"] for s in found])
    s = next(s for s in found if s["Version"] == version)
    # the lock records its own architecture; an "all" package is told by its file name (_all.deb)
    return LockedDeb(suite, package, version, arch, s["Filename"], int(s["Size"]), s["SHA256"])


def pick_source(sources_index: str, suite: str, name: str, version: str) -> LockedSource:
    """``<name>_<version>.orig.tar.*`` of the Sources index of ``suite``: its pool path, size and sha256
    (whichever source version of the package lists it: the original is the same for every revision)."""
    want = re.compile(rf"^{re.escape(name)}_{re.escape(version)}\.orig\.tar\.(xz|gz|bz2)$")
    for stanza in _deb822(sources_index, name):
        directory = stanza.get("Directory", "")
        for line in stanza.get("Checksums-Sha256", "").splitlines():
            parts = line.split()
            if len(parts) == 3 and want.match(parts[2]):
                return LockedSource(name, version, suite, f"{directory}/{parts[2]}", int(parts[1]), parts[0])
    raise ProvisionError(f"dists/{suite}/main/source/Sources.xz lists no {name}_{version}.orig.tar.xz; "
                         f"move the glibc build of {version} to a suite that has it (harness/data/suites.json)")


def _deb822(text: str, package: str) -> list[dict[str, str]]:
    """The stanzas of ``package`` in an index, multi-line fields joined with newlines."""
    out = []
    for stanza in text.split("\n\n"):
        if not stanza.lstrip("\n").startswith(f"Package: {package}\n"):
            continue
        fields: dict[str, str] = {}
        key = ""
        for line in stanza.splitlines():
            if line[:1] in (" ", "\t") and key:
                fields[key] += "\n" + line.strip()
            elif ":" in line:
                key, _, value = line.partition(":")
                fields[key] = value.strip()
        out.append(fields)
    return out


def _locked(lock_path: Path, config: SuitesConfig) -> Lock | None:
    """What the lock already has (validated), to keep it while adding what it lacks."""
    from .lockfile import parse_lock

    try:
        return parse_lock(json.loads(lock_path.read_text()), lock_path, config, partial=True)
    except (OSError, ValueError, ProvisionError):
        return None


def refresh_lock(lock_path: Path = LOCK_PATH, progress: Progress | None = None,
                 config: SuitesConfig = CONFIG, keyring: Path = KEYRING, only_missing: bool = False) -> Lock:
    """Fetch every suite's signed index, pick the current versions and rewrite the lock.

    ``only_missing``: keep every entry the lock already has and add only the packages it lacks
    (a new store package), so that nothing already pinned moves.
    """
    from harness.progress import NullProgress

    progress = progress or NullProgress()
    mirror = debian_mirror()
    locked = _locked(lock_path, config) if only_missing else None
    existing = {s.suite: s for s in locked.suites} if locked else {}
    releases: dict[str, Release] = {}
    suites = []
    for suite, static in config.wanted().items():
        kept = existing.get(suite)
        have = {d.package: d for d in kept.packages} if kept else {}
        if only_missing and kept and kept.libraries == LIBRARIES.digest and all(p in have for p in static):
            suites.append(kept)
            continue
        release = releases[suite] = _release(suite, mirror, keyring, progress)
        progress.step(f"lock: reading dists/{suite}/main/binary-{config.architecture}/Packages.xz")
        stanzas = parse_packages(fetch_packages(release, mirror, config.architecture), None)
        newest = {name: next(s for s in found if s["Version"] == debversion.newest([f["Version"] for f in found]))
                  for name, found in stanzas.items()}
        libraries = resolve_libraries(suite, newest)
        packages = sorted({*static, *libraries.packages})
        debs = tuple(have.get(p) or pick(stanzas, suite, p, config.architecture) for p in packages)
        for d in debs:
            if d.package not in have:
                progress.step(f"lock: {d.describe()}")
        progress.step(f"lock: {suite}: {len(debs)} packages ({len(have)} kept), "
                      f"{len(libraries.closures)} library closures")
        suites.append(SuiteLock(suite, kept.date if kept and have else release.date, debs, libraries.closures,
                                libraries.depends, LIBRARIES.digest))
    kept_sources = {src.key: src for src in locked.sources} if locked else {}
    sources: list[LockedSource] = []
    indexes: dict[str, str] = {}
    for key, (name, version, suite) in wanted_sources(config).items():
        if key in kept_sources:
            sources.append(kept_sources[key])
            continue
        if suite not in indexes:
            release = releases.get(suite) or _release(suite, mirror, keyring, progress)
            progress.step(f"lock: reading dists/{suite}/main/source/Sources.xz")
            indexes[suite] = fetch_sources(release, mirror)
        sources.append(pick_source(indexes[suite], suite, name, version))
        progress.step(f"lock: {sources[-1].describe()}: {sources[-1].filename}")
    lock = Lock(lock_path, config.architecture, tuple(suites), tuple(sources))
    write_lock(lock, lock_path)
    return lock


def _release(suite: str, mirror: str, keyring: Path, progress: Progress) -> Release:
    progress.step(f"lock: reading dists/{suite}/InRelease")
    release = fetch_release(suite, mirror, keyring)
    if release.warning:
        progress.step(release.warning)
    return release
