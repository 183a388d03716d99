"""``ldmatrix pins update``: move pins to their channel's head (or a given revision), with real hashes.

For each pin: the channel's head commit (the pins file's ``source.head`` URL), the archive of that
revision (``source.archive``), unpacked and hashed the way Nix hashes it (the NAR hash of the tree,
harness/nixld/nar.py: what ``builtins.fetchTarball { sha256 }`` checks), and the glibc and nix-ld
versions read from the tree's own package files. Nothing is written unless every pin asked for
was updated. The one function that touches the network is ``fetch_url``; tests pass their own.
"""

from __future__ import annotations

import json
import re
import socket
import tarfile
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from pathlib import Path

from harness.errors import LdmatrixError
from harness.nixld.nar import tree_hash
from harness.progress import Progress

from .pins import NixpkgsPin, Pins, with_head

Fetch = Callable[[str, Path], None]  # fetch(url, dest): the body of url into dest; raises Unreachable
TIMEOUT = 60.0
GLIBC_FILES = ("pkgs/development/libraries/glibc/common.nix",)
NIX_LD_FILES = ("pkgs/by-name/ni/nix-ld/package.nix", "pkgs/os-specific/linux/nix-ld/default.nix")
_GLIBC_VERSION = re.compile(r'^\s*version\s*=\s*"(\d+\.\d+)"\s*;', re.MULTILINE)
_PACKAGE_VERSION = re.compile(r'^\s*version\s*=\s*"([0-9][0-9A-Za-z.\-]*)"\s*;', re.MULTILINE)


class Unreachable(LdmatrixError):
    """The network (GitHub) cannot be reached from here."""


def fetch_url(url: str, dest: Path) -> None:
    request = urllib.request.Request(url, headers={"User-Agent": "ldmatrix"})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response, dest.open("wb") as out:  # noqa: S310
            for chunk in iter(lambda: response.read(1 << 16), b""):
                out.write(chunk)
    except urllib.error.HTTPError as err:
        raise LdmatrixError(f"{url}: HTTP {err.code} {err.reason}") from None
    except (urllib.error.URLError, socket.timeout, TimeoutError, ConnectionError, OSError) as err:
        reason = getattr(err, "reason", err)
        raise Unreachable(f"{url.split('/')[2] if '://' in url else url} cannot be reached ({reason})") from None


def head_revision(pins: Pins, pin: NixpkgsPin, fetch: Fetch, scratch: Path) -> str:
    url = pins.source["head"].format(channel=pin.channel)
    dest = scratch / "head.json"
    fetch(url, dest)
    try:
        sha = json.loads(dest.read_text(encoding="utf-8"))["sha"]
    except (ValueError, KeyError, TypeError):
        raise LdmatrixError(f"{url}: not a commit (no sha in the answer); is {pin.channel!r} a branch of nixpkgs?") from None
    if not isinstance(sha, str) or not re.fullmatch(r"[0-9a-f]{40}", sha):
        raise LdmatrixError(f"{url}: {sha!r} is not a commit id")
    return sha


def unpack(archive: Path, dest: Path) -> Path:
    """The archive's tree: its single top directory, as fetchTarball takes it."""
    try:
        with tarfile.open(archive) as tar:
            tar.extractall(dest, filter="data")
    except (tarfile.TarError, EOFError, OSError) as err:
        raise LdmatrixError(f"{archive.name}: not a readable archive ({err})") from None
    entries = [e for e in dest.iterdir() if e.name != "pax_global_header"]
    return entries[0] if len(entries) == 1 and entries[0].is_dir() else dest


def read_version(tree: Path, files: Iterable[str], pattern: re.Pattern[str]) -> str | None:
    for name in files:
        path = tree / name
        if path.is_file():
            found = pattern.search(path.read_text(encoding="utf-8", errors="replace"))
            if found:
                return found.group(1)
    return None


def update_pin(pins: Pins, pin: NixpkgsPin, fetch: Fetch, progress: Progress, rev: str | None = None) -> NixpkgsPin:
    with tempfile.TemporaryDirectory(prefix="ldmatrix-pins-") as tmp:
        scratch = Path(tmp)
        if rev is None:
            progress.step(f"{pin.name}: the head of {pin.channel}")
            rev = head_revision(pins, pin, fetch, scratch)
        url = pins.source["archive"].format(rev=rev)
        progress.step(f"{pin.name}: {rev[:12]}: downloading {url}")
        archive = scratch / "nixpkgs.tar.gz"
        fetch(url, archive)
        progress.step(f"{pin.name}: unpacking and hashing the tree (as fetchTarball does)")
        (scratch / "tree").mkdir()
        tree = unpack(archive, scratch / "tree")
        nar_hash = tree_hash(tree)
        glibc = read_version(tree, GLIBC_FILES, _GLIBC_VERSION)
        nix_ld = read_version(tree, NIX_LD_FILES, _PACKAGE_VERSION)
    if glibc is None:
        raise LdmatrixError(f"{pin.name}: {rev}: no glibc version in {', '.join(GLIBC_FILES)}; "
                            "is this a nixpkgs revision?")
    if nix_ld is None:
        progress.step(f"{pin.name}: no nix-ld version in {' or '.join(NIX_LD_FILES)}; nix_ld left as recorded")
    lead = " (the same as nar_hash_seen)" if pin.nar_hash_seen == nar_hash else ""
    progress.step(f"{pin.name}: {rev[:12]} {nar_hash}{lead}, glibc {glibc}, nix-ld {nix_ld or pin.nix_ld or '?'}")
    return with_head(pin, rev, url, nar_hash, glibc, nix_ld)


def update(pins: Pins, names: Iterable[str], fetch: Fetch, progress: Progress,
           rev: str | None = None) -> list[NixpkgsPin]:
    """The pins ``names`` (all when empty) at their channel's head, or at ``rev`` (one pin only).

    A name that is not a pin yet becomes one, following the channel of that name."""
    names = list(names) or list(pins.pins)
    if rev is not None and len(names) != 1:
        raise LdmatrixError("pins update --rev: name exactly one pin")
    if rev is not None and not re.fullmatch(r"[0-9a-f]{40}", rev):
        raise LdmatrixError(f"pins update --rev {rev}: a revision is 40 hex digits")
    out = []
    for name in names:
        pin = pins.pins.get(name) or NixpkgsPin(name, name, None, None, None, None)
        out.append(update_pin(pins, pin, fetch, progress, rev))
    return out
