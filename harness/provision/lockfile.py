"""matrices/packages.lock.json: the exact .debs ldmatrix uses, with size and sha256."""

from __future__ import annotations

import json
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from harness.cache import REPO_ROOT
from harness.errors import ProvisionError
from harness.textfile import UnreadableText, read_text

from . import debversion
from .suites import CONFIG, SuitesConfig

LOCK_PATH = REPO_ROOT / "matrices" / "packages.lock.json"
FORMAT = 1
MAX_BYTES = 1 << 20  # the lock is about 4 KB
GLIBC_PACKAGE = "libc6"

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_POOL = re.compile(r"^pool/[A-Za-z0-9+_.~/-]+\.deb$")


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
class SuiteLock:
    suite: str
    date: str  # the Date: of the InRelease it came from
    packages: tuple[LockedDeb, ...]


@dataclass(frozen=True)
class Lock:
    path: Path
    architecture: str
    suites: tuple[SuiteLock, ...]

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
                }
                for s in sorted(self.suites, key=lambda s: s.suite)
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
        glibc = {s: v for v, s in config.glibc.items()}.get(suite)
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
    for suite, packages in wanted.items():
        entry = suites.get(suite)
        if partial and entry is None:
            continue
        if not isinstance(entry, dict):
            raise _fail(path, f"suites.{suite}", "missing")
        pkgs = entry.get("packages")
        if not isinstance(pkgs, dict):
            raise _fail(path, f"suites.{suite}.packages", "must be an object of package -> entry")
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
        out.append(SuiteLock(suite, str(entry.get("date", "")), tuple(debs)))
    return Lock(path, arch, tuple(out))


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
