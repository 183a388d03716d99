"""A program from a local file (``file: ./bin/mytool``, relative to the matrix): pinned by its
sha256 on first use like any artifact, so a rebuilt file is noticed, never run under an old verdict."""

from __future__ import annotations

from pathlib import Path

from harness.cache.entry import file_sha256

from .lock import Pin, relock_command
from .spec import LocalFile, Where


def _hash(local: LocalFile, where: Where) -> tuple[str, int]:
    try:
        return file_sha256(local.path), local.path.stat().st_size
    except OSError as err:
        raise where.error(f"{local.written} ({local.path}) cannot be read: {err.strerror or err}") from None


def resolve(local: LocalFile, where: Where) -> Pin:
    sha, size = _hash(local, where)
    return Pin(local.key, sha, size)


def verified(local: LocalFile, pin: Pin, where: Where, matrix: str) -> Path:
    """The file, if it is still what the lock pinned."""
    sha, _ = _hash(local, where)
    if sha != pin.sha256:
        raise where.error(f"{local.written} has changed since it was locked (sha256 {sha}, the lock says "
                          f"{pin.sha256}); run `{relock_command(matrix)}` to test the new one")
    return local.path
