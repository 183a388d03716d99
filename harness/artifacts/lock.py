"""A matrix's artifact lock: ``matrices/<name>.lock.json`` beside ``<name>.yaml``.

Like Cargo.lock: made on first use (each artifact the lock lacks is resolved once and its sha256
trusted), verified ever after (every download and every cached program against its pin), moved on
only by ``ldmatrix lock MATRIX``. A pin names no host: a wheel by its file name (found again in the
configured index), a Debian package by its pool path (on the configured mirror).

    {"format": 1,
     "artifacts": {"wheel:uv==0.1.17": {"filename": "uv-0.1.17-py3-none-manylinux_2_17_x86_64....whl",
                                        "version": "0.1.17", "sha256": "...", "size": 10807463},
                   "deb:bookworm/hello": {"filename": "pool/main/h/hello/hello_2.10-3_amd64.deb",
                                          "version": "2.10-3", "sha256": "...", "size": 52792}}}
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from harness.errors import ProvisionError
from harness.textfile import UnreadableText, read_text

from .spec import SHA256, Kind

FORMAT = 1
MAX_BYTES = 1 << 20
SUFFIX = ".lock.json"
NOTE = ("the artifacts of {matrix}, pinned on first use and verified ever after; "
        "`ldmatrix lock {matrix}` moves them on")
_POOL = re.compile(r"^pool/[A-Za-z0-9+_.~/-]+\.deb$")
_DEB_VERSION = re.compile(r"^[0-9A-Za-z.+~:-]+$")


def lock_path(matrix: Path) -> Path:
    """``matrices/real-world.yaml`` -> ``matrices/real-world.lock.json``."""
    return matrix.with_name(matrix.stem + SUFFIX)


def relock_command(matrix: Path | str) -> str:
    return f"ldmatrix lock {matrix}"


@dataclass(frozen=True)
class Pin:
    """One artifact, exactly: its sha256 (and size), and for a wheel or package which file it is."""

    key: str  # "wheel:uv==0.1.17", "deb:bookworm/jq", "url:https://...#sha256=...", "file:./bin/x"
    sha256: str
    size: int | None = None
    filename: str = ""  # a wheel's file name, a package's pool path
    version: str = ""  # a wheel's or package's version

    @property
    def kind(self) -> Kind:
        return Kind(self.key.split(":", 1)[0])

    def to_json(self) -> dict:
        out: dict = {"sha256": self.sha256}
        if self.size is not None:
            out["size"] = self.size
        if self.filename:
            out["filename"] = self.filename
        if self.version:
            out["version"] = self.version
        return out

    def describe(self) -> str:
        what = PurePosixPath(self.filename).name if self.filename else self.key.split(":", 1)[1]
        return f"{what} (sha256 {self.sha256[:16]}…)"


@dataclass(frozen=True)
class ArtifactLock:
    path: Path
    matrix: str  # the matrix it belongs to, for messages
    pins: Mapping[str, Pin] = field(default_factory=dict)

    def get(self, key: str) -> Pin | None:
        return self.pins.get(key)

    def to_json(self) -> dict:
        return {"format": FORMAT, "note": NOTE.format(matrix=PurePosixPath(self.matrix).name),
                "artifacts": {key: self.pins[key].to_json() for key in sorted(self.pins)}}

    def fail(self, key: str, message: str) -> ProvisionError:
        return ProvisionError(f"{self.path}: {key}: {message}; fix it or run `{relock_command(self.matrix)}`")


def _check_pin(lock: ArtifactLock, key: str, raw: object) -> Pin:
    where = f"artifacts.{key}"
    kind_text = key.split(":", 1)[0]
    if kind_text not in {k.value for k in Kind} or ":" not in key:
        raise lock.fail(where, f"not an artifact key (kinds: {', '.join(k.value for k in Kind)})")
    if not isinstance(raw, dict):
        raise lock.fail(where, "must be an object {sha256, size, ...}")
    unknown = sorted(set(raw) - {"sha256", "size", "filename", "version"})
    if unknown:
        raise lock.fail(f"{where}.{unknown[0]}", "unknown key (allowed: sha256, size, filename, version)")
    sha, size, filename, version = raw.get("sha256"), raw.get("size"), raw.get("filename", ""), raw.get("version", "")
    if not isinstance(sha, str) or not SHA256.match(sha):
        raise lock.fail(f"{where}.sha256", f"not 64 lowercase hex digits: {sha!r}")
    if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size <= 0):
        raise lock.fail(f"{where}.size", f"not a positive integer: {size!r}")
    if not isinstance(filename, str) or not isinstance(version, str):
        raise lock.fail(where, "filename and version are strings")
    pin = Pin(key, sha, size, filename, version)
    kind = pin.kind
    if kind is Kind.WHEEL:
        _check_wheel_pin(lock, where, pin)
    elif kind is Kind.DEB:
        package = key.split("/", 1)[-1]
        bare = version.split(":", 1)[-1]
        if not _POOL.match(filename) or ".." in filename \
                or not PurePosixPath(filename).name.startswith(f"{package}_{bare}_"):
            raise lock.fail(f"{where}.filename", f"{filename!r} is not the pool file of {package} {version}")
        if not _DEB_VERSION.match(version) or size is None:
            raise lock.fail(where, "a Debian package's pin has its version and size")
    elif kind is Kind.URL and not key.endswith(f"#sha256={sha}"):
        raise lock.fail(f"{where}.sha256", f"{sha} is not the sha256 the matrix gives for this URL")
    return pin


def _check_wheel_pin(lock: ArtifactLock, where: str, pin: Pin) -> None:
    from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
    from packaging.version import InvalidVersion, Version

    project, _, wanted = pin.key.split(":", 1)[1].partition("==")
    try:
        name, version, _, _ = parse_wheel_filename(pin.filename)
        same_version = version == Version(wanted)
    except (InvalidWheelFilename, InvalidVersion) as err:
        raise lock.fail(f"{where}.filename", f"{pin.filename!r} is not a wheel's file name ({err})") from None
    if name != canonicalize_name(project) or not same_version:
        raise lock.fail(f"{where}.filename", f"{pin.filename} is not a wheel of {project} {wanted}")


def read_lock(path: Path, matrix: Path | str) -> ArtifactLock:
    """The lock, validated; an empty one when there is none yet (first use)."""
    empty = ArtifactLock(path, str(matrix))
    try:
        text = read_text(path, MAX_BYTES)
    except UnreadableText as err:
        if err.reason == "no such file":
            return empty
        where = f"{path}:{err.line}" if err.line else str(path)
        raise ProvisionError(f"{where}: {err.reason}; not an artifact lock (JSON); restore it (git checkout) "
                             f"or run `{relock_command(matrix)}`") from None
    try:
        raw = json.loads(text)
    except RecursionError:
        raise empty.fail("(top)", "nested too deeply to be an artifact lock") from None
    except ValueError as err:
        line = getattr(err, "lineno", None)
        raise ProvisionError(f"{path}:{line}: not valid JSON: {getattr(err, 'msg', err)}; restore it "
                             f"(git checkout) or run `{relock_command(matrix)}`") from None
    if not isinstance(raw, dict):
        raise empty.fail("(top)", "must be a JSON object")
    if raw.get("format") != FORMAT:
        raise empty.fail("format", f"is {raw.get('format')!r} (allowed: {FORMAT})")
    artifacts = raw.get("artifacts", {})
    if not isinstance(artifacts, dict):
        raise empty.fail("artifacts", "must be an object of artifact -> pin")
    pins = {str(key): _check_pin(empty, str(key), value) for key, value in artifacts.items()}
    return ArtifactLock(path, str(matrix), pins)


def write_lock(lock: ArtifactLock) -> None:
    """Readable, sorted JSON, replaced atomically."""
    text = json.dumps(lock.to_json(), indent=2) + "\n"
    fd, tmp = tempfile.mkstemp(dir=lock.path.parent, prefix=f".{lock.path.name}.")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, lock.path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def held(matrix: Path) -> Iterator[None]:
    """One run at a time reads, resolves and writes a matrix's lock: an flock on the matrix file
    itself (never replaced, unlike the lock)."""
    with open(matrix, "rb") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
