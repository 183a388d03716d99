"""matrices/packages.lock.json: the exact .debs ldmatrix uses, with size and sha256."""

from __future__ import annotations

import json
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from harness.cache import REPO_ROOT
from harness.errors import ProvisionError
from harness.textfile import UnreadableText, read_text

from . import debversion
from .suites import CONFIG, SuitesConfig

LOCK_PATH = REPO_ROOT / "matrices" / "packages.lock.json"
FORMAT = 1
MAX_BYTES = 4 << 20  # the lock is about 100 KB
GLIBC_PACKAGE = "libc6"

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_POOL = re.compile(r"^pool/[A-Za-z0-9+_.~/-]+\.deb$")
_POOL_ORIG = re.compile(r"^pool/[A-Za-z0-9+_.~/-]+\.orig\.tar\.(xz|gz|bz2)$")


@dataclass(frozen=True)
class LockedDeb:
    suite: str
    package: str
    version: str  # the Debian version, epoch included: "1:4.4.33-2"
    architecture: str
    filename: str  # pool path relative to the mirror
    size: int
    sha256: str

    def describe(self) -> str:
        return f"{self.package} {self.version} ({self.suite})"


@dataclass(frozen=True)
class LockedSource:
    """An upstream source archive as Debian's pool keeps it (``<name>_<version>.orig.tar.xz``), listed
    with its sha256 in ``suite``'s signed Sources index: what a store glibc is built from."""

    name: str  # "glibc"
    version: str  # upstream "2.41"
    suite: str
    filename: str
    size: int
    sha256: str

    @property
    def key(self) -> str:
        return f"{self.name}-{self.version}"

    def describe(self) -> str:
        return f"{self.name} {self.version} source ({self.suite})"


@dataclass(frozen=True)
class SuiteLock:
    suite: str
    date: str  # the Date: of the InRelease it came from
    packages: tuple[LockedDeb, ...]
    # harness/provision/libraries.py: a library attribute or a system role -> its packages, and each
    # library package -> the library packages it needs (what its RUNPATH names)
    closures: dict[str, tuple[str, ...]] = field(default_factory=dict)
    depends: dict[str, tuple[str, ...]] = field(default_factory=dict)
    libraries: str = ""  # the digest of harness/data/libraries.json's specs the closures were resolved from


@dataclass(frozen=True)
class Lock:
    path: Path
    architecture: str
    suites: tuple[SuiteLock, ...]
    sources: tuple[LockedSource, ...] = ()

    def source(self, name: str, version: str) -> LockedSource:
        for src in self.sources:
            if (src.name, src.version) == (name, version):
                return src
        raise ProvisionError(f"{self.path}: sources.{name}-{version}: not in the lock; "
                             "run `ldmatrix lock --only-missing`")

    def suite(self, suite: str) -> SuiteLock:
        for s in self.suites:
            if s.suite == suite:
                return s
        raise ProvisionError(f"{self.path}: suites.{suite}: not in the lock; run `ldmatrix lock --only-missing`")

    def closure(self, suite: str, name: str) -> tuple[str, ...]:
        """The packages of a library attribute (or system role) in ``suite``, the named ones first."""
        closures = self.suite(suite).closures
        if name not in closures:
            raise ProvisionError(f"{self.path}: suites.{suite}.closures.{name}: not in the lock; "
                                 f"run `ldmatrix lock --only-missing`")
        return closures[name]

    def depends(self, suite: str, package: str) -> tuple[str, ...]:
        return self.suite(suite).depends.get(package, ())

    def deb(self, suite: str, package: str) -> LockedDeb:
        for s in self.suites:
            if s.suite == suite:
                for d in s.packages:
                    if d.package == package:
                        return d
        raise ProvisionError(
            f"{self.path}: suites.{suite}.packages.{package}: not in the lock; run `ldmatrix lock`"
        )

    def to_json(self) -> dict:
        return {
            "architecture": self.architecture,
            "format": FORMAT,
            "suites": {
                s.suite: {
                    "date": s.date,
                    "packages": {
                        d.package: {"filename": d.filename, "sha256": d.sha256, "size": d.size,
                                    "version": d.version}
                        for d in sorted(s.packages, key=lambda d: d.package)
                    },
                    **({"closures": {name: list(pkgs) for name, pkgs in sorted(s.closures.items())},
                        "depends": {name: list(pkgs) for name, pkgs in sorted(s.depends.items())},
                        "libraries": s.libraries}
                       if s.closures else {}),
                }
                for s in sorted(self.suites, key=lambda s: s.suite)
            },
            "sources": {
                src.key: {"filename": src.filename, "sha256": src.sha256, "size": src.size, "suite": src.suite}
                for src in sorted(self.sources, key=lambda src: src.key)
            },
        }


def _fail(path: Path, key: str, message: str, allowed: list[str] | None = None) -> ProvisionError:
    text = f"{path}: {key}: {message}"
    if allowed:
        text += f" (allowed: {', '.join(allowed)})"
    return ProvisionError(text + "; fix it or run `ldmatrix lock`")


def _check_stands_for(path: Path, key: str, suite: str, package: str, version: str, filename: str,
                      arch: str, config: SuitesConfig) -> None:
    """An entry is the package it is filed under, in the suite it is filed under.

    The pool file is ``<package>_<version without epoch>_<arch|all>.deb``, and ``libc6`` of a suite
    has the glibc the suites map says that suite stands for (bookworm's must be 2.36-*).
    """
    bare = version.split(":", 1)[1] if ":" in version else version
    name = filename.rsplit("/", 1)[-1]
    if name not in (f"{package}_{bare}_{arch}.deb", f"{package}_{bare}_all.deb"):
        raise _fail(path, f"{key}.filename", f"{name} is not {package} {version} "
                                              f"(expected {package}_{bare}_{arch}.deb)")
    if package == GLIBC_PACKAGE:
        glibc = config.suite_glibc.get(suite)
        if glibc is not None and debversion.upstream(version) != glibc:
            raise _fail(path, f"{key}.version", f"is {version}, but {suite} stands for glibc {glibc} "
                                                f"(harness/data/suites.json): an entry of another suite?")


def parse_lock(raw: object, path: Path, config: SuitesConfig = CONFIG, partial: bool = False) -> Lock:
    """Validate the lock's JSON against the suites map; every error names the key.

    ``partial``: suites and packages the lock lacks are left out instead of refused (to add them).
    """
    if not isinstance(raw, dict):
        raise _fail(path, "(top)", "must be a JSON object")
    if raw.get("format") != FORMAT:
        raise _fail(path, "format", f"is {raw.get('format')!r}", [str(FORMAT)])
    arch = raw.get("architecture")
    if arch != config.architecture:
        raise _fail(path, "architecture", f"is {arch!r}", [config.architecture])
    suites = raw.get("suites")
    if not isinstance(suites, dict):
        raise _fail(path, "suites", "must be an object of suite -> packages")
    wanted = config.wanted()
    for suite in suites:
        if suite not in wanted:
            raise _fail(path, f"suites.{suite}", "unknown suite", list(wanted))
    out = []
    for suite, static in wanted.items():
        entry = suites.get(suite)
        if partial and entry is None:
            continue
        if not isinstance(entry, dict):
            raise _fail(path, f"suites.{suite}", "missing")
        pkgs = entry.get("packages")
        if not isinstance(pkgs, dict):
            raise _fail(path, f"suites.{suite}.packages", "must be an object of package -> entry")
        closures, depends = _closures(entry, path, suite, partial)
        packages = tuple(sorted({*static, *(p for c in closures.values() for p in c)}))
        for name in pkgs:
            if name not in packages:
                raise _fail(path, f"suites.{suite}.packages.{name}", "not wanted", list(packages))
        debs = []
        for name in packages:
            key = f"suites.{suite}.packages.{name}"
            d = pkgs.get(name)
            if partial and d is None:
                continue
            if not isinstance(d, dict):
                raise _fail(path, key, "missing")
            version, filename, size, sha = d.get("version"), d.get("filename"), d.get("size"), d.get("sha256")
            if not isinstance(version, str) or not re.match(r"^[0-9A-Za-z.+~:-]+$", version or ""):
                raise _fail(path, f"{key}.version", f"not a Debian version: {version!r}")
            if not isinstance(filename, str) or not _POOL.match(filename) or ".." in filename:
                raise _fail(path, f"{key}.filename", f"not a pool/…/.deb path: {filename!r}")
            if not isinstance(size, int) or isinstance(size, bool) or size <= 0:
                raise _fail(path, f"{key}.size", f"not a positive integer: {size!r}")
            if not isinstance(sha, str) or not _SHA256.match(sha):
                raise _fail(path, f"{key}.sha256", f"not 64 lowercase hex digits: {sha!r}")
            _check_stands_for(path, key, suite, name, version, filename, arch, config)
            debs.append(LockedDeb(suite, name, version, arch, filename, size, sha))
        for key, mapping in (("closures", closures), ("depends", depends)):
            for name, members in mapping.items():
                missing = [m for m in members if m not in pkgs and not partial]
                if missing:
                    raise _fail(path, f"suites.{suite}.{key}.{name}", f"names {missing[0]}, which has no entry")
        out.append(SuiteLock(suite, str(entry.get("date", "")), tuple(debs), closures, depends,
                             str(entry.get("libraries", ""))))
    return Lock(path, arch, tuple(out), _sources(raw, path, config, partial))


def wanted_sources(config: SuitesConfig = CONFIG) -> dict[str, tuple[str, str, str]]:
    """``glibc-2.41`` -> (name, upstream version, the suite whose Sources index lists it): the
    sources of every store glibc build (harness/data/suites.json)."""
    return {f"glibc-{v}": ("glibc", v, b.build) for v, b in sorted(config.glibc_builds.items())}


def _sources(raw: dict, path: Path, config: SuitesConfig, partial: bool) -> tuple[LockedSource, ...]:
    section = raw.get("sources", {} if partial else None)
    if not isinstance(section, dict):
        raise _fail(path, "sources", "missing: the upstream sources the store glibc is built from; "
                                     "run `ldmatrix lock --only-missing`")
    wanted = wanted_sources(config)
    for key in section:
        if key not in wanted:
            raise _fail(path, f"sources.{key}", "not wanted", list(wanted))
    out = []
    for key, (name, version, suite) in wanted.items():
        entry = section.get(key)
        if entry is None and partial:
            continue
        if not isinstance(entry, dict):
            raise _fail(path, f"sources.{key}", "missing; run `ldmatrix lock --only-missing`")
        filename, size, sha = entry.get("filename"), entry.get("size"), entry.get("sha256")
        if entry.get("suite") != suite:
            raise _fail(path, f"sources.{key}.suite", f"is {entry.get('suite')!r}", [suite])
        if not isinstance(filename, str) or not _POOL_ORIG.match(filename) or ".." in filename \
                or not filename.rsplit("/", 1)[-1].startswith(f"{name}_{version}.orig.tar."):
            raise _fail(path, f"sources.{key}.filename", f"not pool/…/{name}_{version}.orig.tar.xz: {filename!r}")
        if not isinstance(size, int) or isinstance(size, bool) or size <= 0:
            raise _fail(path, f"sources.{key}.size", f"not a positive integer: {size!r}")
        if not isinstance(sha, str) or not _SHA256.match(sha):
            raise _fail(path, f"sources.{key}.sha256", f"not 64 lowercase hex digits: {sha!r}")
        out.append(LockedSource(name, version, suite, filename, size, sha))
    return tuple(out)


def _closures(entry: dict, path: Path, suite: str, partial: bool) -> tuple[dict, dict]:
    """``closures`` (every library attribute and system role of harness/data/libraries.json) and
    ``depends`` of a suite's entry, checked for form."""
    from .libraries import CONFIG as LIBRARIES

    out: list[dict[str, tuple[str, ...]]] = []
    for key in ("closures", "depends"):
        raw = entry.get(key, {} if partial else None)
        if not isinstance(raw, dict) or not all(isinstance(v, list) and all(isinstance(p, str) for p in v)
                                                for v in raw.values()):
            raise _fail(path, f"suites.{suite}.{key}", "must be an object of name -> [packages]; "
                                                      "run `ldmatrix lock --only-missing`")
        out.append({str(k): tuple(v) for k, v in raw.items()})
    closures, depends = out
    names = set(LIBRARIES.closures)
    for name in closures:
        if name not in names:
            raise _fail(path, f"suites.{suite}.closures.{name}", "unknown", sorted(names))
    if not partial:
        for name in sorted(names - set(closures)):
            raise _fail(path, f"suites.{suite}.closures.{name}", "missing")
    return closures, depends


def load_lock(path: Path = LOCK_PATH, config: SuitesConfig = CONFIG) -> Lock:
    try:
        text = read_text(path, MAX_BYTES)
    except UnreadableText as err:
        where = f"{path}:{err.line}" if err.line else str(path)
        if err.reason == "no such file":
            raise ProvisionError(f"{path}: no lock file; run `ldmatrix lock`") from None
        raise ProvisionError(f"{where}: {err.reason}; not a package lock (JSON); "
                             "restore it (git checkout) or run `ldmatrix lock`") from None
    try:
        raw = json.loads(text)
    except RecursionError:
        raise ProvisionError(f"{path}: nested too deeply to be a package lock; run `ldmatrix lock`") from None
    except ValueError as err:
        line = getattr(err, "lineno", None)
        reason = getattr(err, "msg", str(err))
        raise ProvisionError(f"{path}:{line}: not valid JSON: {reason}; run `ldmatrix lock`") from None
    return parse_lock(raw, path, config)


def write_lock(lock: Lock, path: Path) -> None:
    """Readable, sorted JSON, replaced atomically."""
    text = json.dumps(lock.to_json(), indent=2, sort_keys=True) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
