"""A program from a URL whose sha256 the matrix gives (a tarball, a zip or the ELF itself): for
machines with internet, or a ``file:`` URL. Downloaded once into ``downloads/<sha256>.download``."""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

from harness.cache import Cache
from harness.errors import ProvisionError
from harness.progress import Progress
from harness.provision import fetch

from .lock import Pin
from .spec import Url, Where


def cached(cache: Cache, sha256: str) -> Path:
    return cache.downloads / f"{sha256}.download"


def download(url: Url, cache: Cache, progress: Progress, where: Where, sha_where: Where,
             size: int | None = None) -> Path:
    """What the URL serves, if it is what the matrix's sha256 says (``sha_where``); nothing is kept otherwise."""
    dest = cached(cache, url.sha256)
    if fetch.verifies(dest, size, url.sha256):
        return dest
    progress.step(f"downloading {url.url}")

    def save(resp: BinaryIO) -> None:
        try:
            fetch.save_verified(resp, dest, url.sha256)
        except fetch.Mismatch as err:
            raise sha_where.error(f"{url.url} gave {err.got}, the matrix says sha256 {url.sha256}; refusing it") \
                from None

    try:
        fetch.retrying(url.url, url.name, save)
    except fetch.NotFound:
        raise where.error(f"{url.url}: not found" + ("" if url.url.startswith("file:") else " (404)")) from None
    except ProvisionError as err:
        raise where.error(f"{url.url} cannot be reached ({err}); once it is in the cache no network is needed") \
            from None
    return dest


def resolve(url: Url, cache: Cache, progress: Progress, where: Where, sha_where: Where) -> Pin:
    """First use: download it, check the matrix's sha256, and pin its size too."""
    path = download(url, cache, progress, where, sha_where)
    return Pin(url.key, url.sha256, path.stat().st_size)
