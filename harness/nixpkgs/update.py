"""``ldmatrix pins update``: move pins to their channel's head (or a given revision), with real hashes.

For each pin: the channel's head commit (the pins file's ``source.head`` URL), the archive of that
revision (``source.archive``), unpacked and hashed the way Nix hashes it (the NAR hash of the tree,
harness/nixld/nar.py: what ``builtins.fetchTarball { sha256 }`` checks), the glibc and nix-ld
versions read from the tree's own package files, and the tree's NixOS behaviour around a foreign
program (``release_facts``): whether it has stub-ld, and which form its nix-ld module has. Nothing
is written unless every pin asked for was updated. The one function that touches the network is
``fetch_url``; tests pass their own. It sends ``$GITHUB_TOKEN`` (when set) to GitHub's API only,
and a rate limit that stops it is one line saying so.
"""

from __future__ import annotations

import json
import os
import re
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable
from pathlib import Path

from harness.errors import LdmatrixError
from harness.nixld.nar import tree_hash
from harness.progress import Progress
from harness.root.release import LibraryList

from .pins import NixpkgsPin, Pins, with_head

Fetch = Callable[[str, Path], None]  # fetch(url, dest): the body of url into dest; raises Unreachable
TIMEOUT = 60.0
GLIBC_FILES = ("pkgs/development/libraries/glibc/common.nix",)
NIX_LD_FILES = ("pkgs/by-name/ni/nix-ld/package.nix", "pkgs/os-specific/linux/nix-ld/default.nix")
_GLIBC_VERSION = re.compile(r'^\s*version\s*=\s*"(\d+\.\d+)"\s*;', re.MULTILINE)
_PACKAGE_VERSION = re.compile(r'^\s*version\s*=\s*"([0-9][0-9A-Za-z.\-]*)"\s*;', re.MULTILINE)
# NixOS's behaviour, read from the tree (harness/root/release.py says what each form means)
STUB_LD_MODULE = "nixos/modules/config/stub-ld.nix"
NIX_LD_MODULE = "nixos/modules/programs/nix-ld.nix"
_LIBRARIES_OPTION = re.compile(r"\blibraries\s*=\s*(?:lib\.)?mkOption\s*\{")
_OPTION_DEFAULT = re.compile(r"\bdefault\s*=\s*([^;]*);")
_SET_IN_CONFIG = re.compile(r"\bprograms\.nix-ld\.libraries\s*=")
TOKEN_ORIGINS = ("https://api.github.com",)  # where $GITHUB_TOKEN is sent (never on a redirect)


class Unreachable(LdmatrixError):
    """The network (GitHub) cannot be reached from here."""


class RateLimited(LdmatrixError):
    """GitHub's API refused the request: its rate limit for this token (or address) is used up."""


def _rate_limited(err: urllib.error.HTTPError) -> bool:
    if err.code not in (403, 429):
        return False
    return err.headers.get("X-RateLimit-Remaining") == "0" or err.headers.get("Retry-After") is not None


def fetch_url(url: str, dest: Path) -> None:
    request = urllib.request.Request(url, headers={"User-Agent": "ldmatrix"})
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or url
    token = os.environ.get("GITHUB_TOKEN", "").strip()
    sent = bool(token) and f"{parts.scheme}://{parts.netloc}" in TOKEN_ORIGINS
    if sent:
        request.add_unredirected_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response, dest.open("wb") as out:
            for chunk in iter(lambda: response.read(1 << 16), b""):
                out.write(chunk)
    except urllib.error.HTTPError as err:
        if _rate_limited(err):
            with_token = "even with $GITHUB_TOKEN" if sent else "set GITHUB_TOKEN to a token"
            raise RateLimited(f"{host}: GitHub's rate limit stopped it (HTTP {err.code}); {with_token} and run it "
                              "again later") from None
        raise LdmatrixError(f"{url}: HTTP {err.code} {err.reason}") from None
    except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as err:
        reason = getattr(err, "reason", err)
        raise Unreachable(f"{url.split('/')[2] if '://' in url else url} cannot be reached ({reason})") from None


def head_revision(pins: Pins, pin: NixpkgsPin, fetch: Fetch, scratch: Path) -> str:
    url = pins.source["head"].format(channel=pin.channel)
    dest = scratch / "head.json"
    fetch(url, dest)
    try:
        sha = json.loads(dest.read_text(encoding="utf-8"))["sha"]
    except (ValueError, KeyError, TypeError):
        raise LdmatrixError(f"{url}: not a commit (no sha in the answer); "
                            f"is {pin.channel!r} a branch of nixpkgs?") from None
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


def _without_comments(text: str) -> str:
    return re.sub(r"(?m)(^|\s)#.*$", r"\1", text)


def _braced(text: str, start: int) -> str:
    """The text from the ``{`` at ``start`` to its matching ``}``."""
    depth = 0
    for index in range(start, len(text)):
        depth += {"{": 1, "}": -1}.get(text[index], 0)
        if depth == 0:
            return text[start:index + 1]
    return text[start:]


def nix_ld_libraries_form(module: str) -> LibraryList | None:
    """How a user's ``programs.nix-ld.libraries`` meets the base list in this nix-ld.nix: REPLACE when
    the base libraries are the option's default, ADD when the default is ``[ ]`` and the module sets
    the list in its ``config`` (list options merge); None when the text is neither."""
    text = _without_comments(module)
    option = _LIBRARIES_OPTION.search(text)
    if option is None:
        return None
    block = _braced(text, option.end() - 1)
    default = _OPTION_DEFAULT.search(block)
    if default is None:
        return None
    if re.fullmatch(r"\[\s*\]", default.group(1).strip()):
        rest = text[:option.start()] + text[option.start() + len(block):]
        return LibraryList.ADD if _SET_IN_CONFIG.search(rest) else None
    return LibraryList.REPLACE


def release_facts(tree: Path) -> tuple[bool, LibraryList | None]:
    """What the tree's NixOS does around a foreign program: stub-ld (the module exists), and the
    form of programs.nix-ld.libraries (None: no nix-ld module, or one of another form)."""
    module = tree / NIX_LD_MODULE
    form = nix_ld_libraries_form(module.read_text(encoding="utf-8", errors="replace")) if module.is_file() else None
    return (tree / STUB_LD_MODULE).is_file(), form


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
        stub_ld, libraries = release_facts(tree)
    if glibc is None:
        raise LdmatrixError(f"{pin.name}: {rev}: no glibc version in {', '.join(GLIBC_FILES)}; "
                            "is this a nixpkgs revision?")
    if nix_ld is None:
        progress.step(f"{pin.name}: no nix-ld version in {' or '.join(NIX_LD_FILES)}; nix_ld left as recorded")
    if libraries is None:
        progress.step(f"{pin.name}: {NIX_LD_MODULE} is missing or of a form not known here; nix_ld_libraries "
                      "recorded as null (the pin's release is unknown)")
    lead = " (the same as nar_hash_seen)" if pin.nar_hash_seen == nar_hash else ""
    progress.step(f"{pin.name}: {rev[:12]} {nar_hash}{lead}, glibc {glibc}, nix-ld {nix_ld or pin.nix_ld or '?'}, "
                  f"stub-ld {'yes' if stub_ld else 'no'}, nix-ld libraries {libraries or '?'}")
    return with_head(pin, rev, url, nar_hash, glibc, nix_ld, stub_ld, libraries)


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
