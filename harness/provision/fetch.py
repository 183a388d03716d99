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
from pathlib import Path
from typing import BinaryIO, Callable

from harness.cache import Cache
from harness.errors import ProvisionError
from harness.progress import Progress

from .lockfile import LockedDeb
from .mirror import debian_mirror

TIMEOUT = 60.0
ATTEMPTS = 3
BACKOFF = (1.0, 3.0)
CHUNK = 1 << 16


class NotFound(Exception):
    """The archive answered 404."""


def urlopen(url: str, timeout: float) -> BinaryIO:
    """The one place that touches the network (tests replace it)."""
    req = urllib.request.Request(url, headers={"User-Agent": "ldmatrix"})
    return urllib.request.urlopen(req, timeout=timeout)  # noqa: S310 - http(s)/file from apt config


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
    url = f"{mirror}/{rel}"
    last: BaseException | None = None
    for attempt in range(ATTEMPTS):
        try:
            with urlopen(url, TIMEOUT) as resp:
                return action(resp)
        except urllib.error.HTTPError as err:
            if err.code in (404, 410):
                raise NotFound(rel) from None
            if err.code < 500 and err.code not in (408, 429):
                raise ProvisionError(f"download of {rel} failed: {_describe(err)}") from None
            last = err
        except _TRANSIENT as err:
            last = err
        if attempt + 1 < ATTEMPTS:
            sleep(BACKOFF[min(attempt, len(BACKOFF) - 1)])
    assert last is not None
    raise ProvisionError(
        f"download of {rel} failed after {ATTEMPTS} attempts: {_describe(last)}"
    ) from None


def fetch_bytes(rel: str, mirror: str) -> bytes:
    return with_retries(rel, mirror, lambda resp: resp.read())  # type: ignore[return-value]


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def verifies(path: Path, size: int, sha256: str) -> bool:
    try:
        return path.stat().st_size == size and file_sha256(path) == sha256
    except OSError:
        return False


def cached_deb_path(cache: Cache, deb: LockedDeb) -> Path:
    return cache.downloads / f"{deb.sha256}.deb"


def download_deb(deb: LockedDeb, cache: Cache, progress: Progress, mirror: str | None = None) -> Path:
    """The verified .deb in the cache, downloaded only if no cached copy verifies."""
    dest = cached_deb_path(cache, deb)
    if verifies(dest, deb.size, deb.sha256):
        return dest
    if dest.exists():
        progress.step(f"cached {dest.name} does not verify; downloading it again")
        dest.unlink()
    mirror = mirror or debian_mirror()
    progress.step(f"downloading {deb.describe()} ({deb.size / 1e6:.1f} MB)")

    def save(resp: BinaryIO) -> None:
        fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{deb.sha256[:12]}.", suffix=".part")
        tmp = Path(tmp_name)
        try:
            h = hashlib.sha256()
            n = 0
            with os.fdopen(fd, "wb") as out:
                for chunk in iter(lambda: resp.read(CHUNK), b""):
                    h.update(chunk)
                    n += len(chunk)
                    out.write(chunk)
                    if n > deb.size:
                        break
            if n != deb.size or h.hexdigest() != deb.sha256:
                got = f"{n} bytes" if n != deb.size else f"sha256 {h.hexdigest()}"
                raise ProvisionError(
                    f"{deb.filename}: got {got}, the lock says {deb.size} bytes, sha256 {deb.sha256}; "
                    f"refusing {deb.describe()} (run `ldmatrix lock` if the archive really changed)"
                )
            os.chmod(tmp, 0o644)
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)

    try:
        with_retries(deb.filename, mirror, save)
    except NotFound:
        raise ProvisionError(
            f"{deb.describe()} is gone from the Debian archive (404 for {deb.filename}); "
            f"run `ldmatrix lock` to move to the archive's current version"
        ) from None
    return dest
