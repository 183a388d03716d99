"""HTTP from the Debian archive: retries on transient errors, verified and atomic downloads."""

from __future__ import annotations

import hashlib
import http.client
import os
import socket
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO, Protocol, TypeVar

from harness.cache import Cache
from harness.cache.entry import file_sha256
from harness.errors import ProvisionError
from harness.progress import Progress

from .lockfile import LockedDeb, LockedSource
from .mirror import debian_mirror

TIMEOUT = 60.0
ATTEMPTS = 3
BACKOFF = (1.0, 3.0)
CHUNK = 1 << 16


class NotFound(Exception):
    """The archive answered 404."""


def urlopen(url: str, timeout: float, headers: dict[str, str] | None = None) -> BinaryIO:
    """The one place that touches the network (tests replace it). ``headers``: more request headers
    (the package index's Accept); only passed when there are some."""
    req = urllib.request.Request(url, headers={"User-Agent": "ldmatrix", **(headers or {})})
    return urllib.request.urlopen(req, timeout=timeout)


_TRANSIENT = (urllib.error.URLError, http.client.HTTPException, socket.timeout, TimeoutError,
              ConnectionError)


def _describe(err: BaseException) -> str:
    if isinstance(err, urllib.error.HTTPError):
        return f"HTTP {err.code} {err.reason}"
    if isinstance(err, urllib.error.URLError):
        return f"{type(err.reason).__name__}: {err.reason}" if not isinstance(err.reason, str) else err.reason
    return f"{type(err).__name__}: {err}"


def with_retries(rel: str, mirror: str, action: Callable[[BinaryIO], object],
                 sleep: Callable[[float], None] = time.sleep) -> object:
    """Open ``mirror/rel`` and hand the response to ``action``; retry transient errors.

    404 raises NotFound; anything else that persists raises a one-line ProvisionError naming ``rel``.
    """
    return retrying(f"{mirror}/{rel}", rel, action, sleep=sleep)


T = TypeVar("T")  # what an action makes of a response


def retrying(url: str, what: str, action: Callable[[BinaryIO], T], *, headers: dict[str, str] | None = None,
             sleep: Callable[[float], None] = time.sleep) -> T:
    """Open ``url`` and hand the response to ``action``; retry transient errors.

    404 raises NotFound; anything else that persists raises a one-line ProvisionError naming ``what``
    (not the host). A ``file:`` URL is not retried: a missing file is NotFound at once.
    """
    last: BaseException | None = None
    for attempt in range(ATTEMPTS):
        try:
            with (urlopen(url, TIMEOUT, headers) if headers else urlopen(url, TIMEOUT)) as resp:
                return action(resp)
        except urllib.error.HTTPError as err:
            if err.code in (404, 410):
                raise NotFound(what) from None
            if err.code < 500 and err.code not in (408, 429):
                raise ProvisionError(f"download of {what} failed: {_describe(err)}") from None
            last = err
        except _TRANSIENT as err:
            if url.startswith("file:"):
                if isinstance(err, urllib.error.URLError) and isinstance(err.reason, FileNotFoundError):
                    raise NotFound(what) from None
                raise ProvisionError(f"reading {what} failed: {_describe(err)}") from None
            last = err
        if attempt + 1 < ATTEMPTS:
            sleep(BACKOFF[min(attempt, len(BACKOFF) - 1)])
    assert last is not None
    raise ProvisionError(
        f"download of {what} failed after {ATTEMPTS} attempts: {_describe(last)}"
    ) from None


def fetch_bytes(rel: str, mirror: str) -> bytes:
    return with_retries(rel, mirror, lambda resp: resp.read())  # type: ignore[return-value]


def verifies(path: Path, size: int | None, sha256: str) -> bool:
    """``path`` exists with this sha256 (and this size, when it is known)."""
    try:
        return (size is None or path.stat().st_size == size) and file_sha256(path) == sha256
    except OSError:
        return False


class Mismatch(ProvisionError):
    """What was downloaded is not what was pinned; ``got`` says how (its size or its sha256)."""

    def __init__(self, got: str):
        super().__init__(got)
        self.got = got


def save_verified(resp: BinaryIO, dest: Path, sha256: str, size: int | None = None) -> None:
    """Stream ``resp`` into ``dest`` atomically (a ``.part`` file beside it, renamed into place) only if
    it is ``size`` bytes (when known) with this ``sha256``; otherwise Mismatch, and nothing is left."""
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{sha256[:12]}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        h = hashlib.sha256()
        n = 0
        with os.fdopen(fd, "wb") as out:
            for chunk in iter(lambda: resp.read(CHUNK), b""):
                h.update(chunk)
                n += len(chunk)
                out.write(chunk)
                if size is not None and n > size:
                    break
        if (size is not None and n != size) or h.hexdigest() != sha256:
            raise Mismatch(f"{n} bytes" if size is not None and n != size else f"sha256 {h.hexdigest()}")
        os.chmod(tmp, 0o644)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


class Pinned(Protocol):
    """A file of the archive's pool pinned by a lock: a .deb or an upstream source."""

    @property
    def filename(self) -> str: ...
    @property
    def size(self) -> int: ...
    @property
    def sha256(self) -> str: ...

    def describe(self) -> str: ...


def cached_deb_path(cache: Cache, deb: LockedDeb) -> Path:
    return cache.downloads / f"{deb.sha256}.deb"


def download_source(source: LockedSource, cache: Cache, progress: Progress, mirror: str | None = None) -> Path:
    """The verified upstream source archive (``glibc_2.41.orig.tar.xz``) in the cache."""
    suffix = source.filename[source.filename.index(".orig.tar."):]
    return download_pinned(source, cache.downloads / f"{source.sha256}{suffix}", progress, mirror,
                           relock="ldmatrix lock --only-missing")


def download_deb(deb: LockedDeb, cache: Cache, progress: Progress, mirror: str | None = None, *,
                 relock: str = "ldmatrix lock") -> Path:
    """The verified .deb in the cache, downloaded only if no cached copy verifies. ``relock``: the
    command that moves this pin on (a matrix's own artifacts: ``ldmatrix lock MATRIX``)."""
    return download_pinned(deb, cached_deb_path(cache, deb), progress, mirror, relock=relock)


def download_pinned(deb: Pinned, dest: Path, progress: Progress, mirror: str | None = None, *,
                    relock: str = "ldmatrix lock") -> Path:
    """``deb`` (a pinned pool file) verified at ``dest``, downloaded only if no copy there verifies."""
    if verifies(dest, deb.size, deb.sha256):
        return dest
    if dest.exists():
        progress.step(f"cached {dest.name} does not verify; downloading it again")
        dest.unlink()
    mirror = mirror or debian_mirror()
    progress.step(f"downloading {deb.describe()} ({deb.size / 1e6:.1f} MB)")

    def save(resp: BinaryIO) -> None:
        try:
            save_verified(resp, dest, deb.sha256, deb.size)
        except Mismatch as err:
            raise ProvisionError(
                f"{deb.filename}: got {err.got}, the lock says {deb.size} bytes, sha256 {deb.sha256}; "
                f"refusing {deb.describe()} (run `{relock}` if the archive really changed)"
            ) from None

    try:
        with_retries(deb.filename, mirror, save)
    except NotFound:
        raise ProvisionError(
            f"{deb.describe()} is gone from the Debian archive (404 for {deb.filename}); "
            f"run `{relock}` to move to the archive's current version"
        ) from None
    return dest
