"""nixpkgs pins (harness/data/nixpkgs-pins.json): which nixpkgs revision a channel name stands for.

A pin is a channel (``nixos-24.11``, ``nixos-unstable``) fixed at one revision, with the NAR hash
of that revision's source tree (``sha256``, what ``builtins.fetchTarball`` checks), the glibc and
nix-ld versions that tree packages, what its NixOS modules do around a foreign program (``stub_ld``:
the tree has ``nixos/modules/config/stub-ld.nix``; ``nix_ld_libraries``: ``replace`` or ``add``, how
a user's ``programs.nix-ld.libraries`` meets the module's base list), and whether NixOS users are on
it (``supported``: the nightly guard runs those). ``ldmatrix pins update`` (harness/nixpkgs/update.py)
fills all of it in, reading the tree; nothing of a release is assumed from its name.

A pin without a hash is refused, never used: without one, ``fetchTarball`` would take whatever
the URL serves. There is no opt-in: run ``ldmatrix pins update NAME`` on a machine that can reach
GitHub. ``nar_hash_seen`` is a lead (a hash public flake.lock files give for the revision), kept
for whoever checks it, and never used as the hash.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any

from harness.errors import LdmatrixError, did_you_mean
from harness.model import NixpkgsSource
from harness.root.release import RELEASES, LibraryList, NixosRelease

PINS_NAME = "harness/data/nixpkgs-pins.json"
SUPPORTED = "supported"  # --nixpkgs supported: every pin NixOS users are on
_SRI = re.compile(r"^sha256-[A-Za-z0-9+/]{43}=$")
_REV = re.compile(r"^[0-9a-f]{40}$")
_VERSION = re.compile(r"^\d+\.\d+$")
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
ENTRY_KEYS = ("channel", "rev", "url", "sha256", "nar_hash_seen", "glibc", "nix_ld", "stub_ld", "nix_ld_libraries",
              "supported", "note")
_CHANNEL_VERSION = re.compile(r"(\d+\.\d+)")


@dataclass(frozen=True)
class NixpkgsPin:
    name: str  # "nixos-24.11": the key, the cells' column, the baseline directory
    channel: str  # the branch of nixpkgs it follows ("nixos-24.11"); `pins update` moves it to its head
    rev: str | None  # 40 hex digits; None: not pinned yet
    url: str | None  # the archive of rev
    sha256: str | None  # sha256-<base64>: the NAR hash of the unpacked archive; None: refused
    glibc: str | None  # "2.40": the glibc that revision packages (pkgs.glibc), as recorded
    nix_ld: str | None = None  # "2.0.3": its pkgs.nix-ld, as recorded
    supported: bool = False  # NixOS users are on it: the nightly guard runs it
    nar_hash_seen: str | None = None  # a lead, never used as the hash
    stub_ld: bool | None = None  # its tree has nixos/modules/config/stub-ld.nix; None: not read yet
    nix_ld_libraries: LibraryList | None = None  # the form of its programs/nix-ld.nix; None: not read (or unknown)

    @property
    def usable(self) -> bool:
        return bool(self.rev and self.url and self.sha256)

    @property
    def release(self) -> NixosRelease | None:
        """The pin's NixOS as read from its tree: the version from the channel's name (``nixos-24.11``
        -> 24.11, ``nixos-unstable`` -> unstable), stub-ld and the library list's form as recorded;
        None until `pins update` has read both."""
        if self.stub_ld is None or self.nix_ld_libraries is None:
            return None
        found = _CHANNEL_VERSION.search(self.channel)
        version = found.group(1) if found else self.channel.removeprefix("nixos-")
        codename = RELEASES[version].codename if version in RELEASES else ""
        return NixosRelease(version, codename, stub_ld=self.stub_ld, libraries=self.nix_ld_libraries)

    def source(self, nix_ld: str | None = None) -> NixpkgsSource:
        assert self.rev and self.url and self.sha256, "refuse() first"
        return NixpkgsSource(self.name, self.url, self.sha256, self.rev, nix_ld, self.release)

    def refusal(self, where: str) -> str | None:
        """Why this pin cannot be used, in one line; None when it can."""
        if self.usable and self.glibc:
            return None
        if self.usable:
            return (f"{where}: pin {self.name} records no glibc version: run `ldmatrix pins update {self.name}` "
                    "(it reads the version from the tree)")
        missing = "a revision" if not self.rev else "a hash" if not self.sha256 else "a URL"
        lead = (f" (a lead to check: nar_hash_seen {self.nar_hash_seen})" if self.nar_hash_seen and not self.sha256
                else "")
        return (f"{where}: pin {self.name} has no {missing.split()[-1]}, so it is refused, not trusted{lead}: "
                f"run `ldmatrix pins update {self.name}` on a machine that can reach GitHub and commit the result")


@dataclass(frozen=True)
class Pins:
    path: str  # for messages
    source: Mapping[str, str]  # "archive": URL template with {rev}; "head": URL template with {channel}
    pins: Mapping[str, NixpkgsPin]
    raw: Mapping[str, Any]  # the file as read, so that an update keeps what it does not know

    def select(self, items: Iterable[str]) -> list[NixpkgsPin]:
        """``--nixpkgs`` items: a pin's name, the revision of one (7 or more hex digits), or
        ``supported`` (every supported pin); each refused if it has no hash."""
        chosen: dict[str, NixpkgsPin] = {}
        for item in items:
            for pin in self._lookup(item.strip()):
                why = pin.refusal(f"--nixpkgs {item}")
                if why:
                    raise LdmatrixError(why)
                chosen.setdefault(pin.name, pin)
        return list(chosen.values())

    def _lookup(self, item: str) -> list[NixpkgsPin]:
        if item == SUPPORTED:
            found = [p for p in self.pins.values() if p.supported]
            if not found:
                raise LdmatrixError(f"--nixpkgs {SUPPORTED}: {self.path} marks no pin as supported")
            return found
        if item in self.pins:
            return [self.pins[item]]
        if re.fullmatch(r"[0-9a-f]{7,40}", item):
            found = [p for p in self.pins.values() if p.rev and p.rev.startswith(item)]
            if len(found) == 1:
                return found
            if len(found) > 1:
                raise LdmatrixError(f"--nixpkgs {item}: the revision of more than one pin "
                                    f"({', '.join(p.name for p in found)}); give the pin's name")
            raise LdmatrixError(f"--nixpkgs {item}: no pin of {self.path} has that revision; a revision is "
                                "used only once pinned with its hash (add it as a pin and run `ldmatrix pins update`)")
        names = [*self.pins, SUPPORTED]
        raise LdmatrixError(f"--nixpkgs {item}: unknown pin{did_you_mean(item, names)} (allowed: {', '.join(names)}; "
                            f"pins are in {self.path})")


def _bad(where: str, name: str, key: str, message: str) -> LdmatrixError:
    return LdmatrixError(f"{where}: pins.{name}.{key}: {message}")


def _entry(where: str, name: str, entry: Any) -> NixpkgsPin:
    if not _NAME.match(name):
        raise LdmatrixError(f"{where}: pins: {name!r} is not a plain name (it names a results column and "
                            "a baseline directory: lower case letters, digits, '.', '_', '-')")
    if not isinstance(entry, dict):
        raise LdmatrixError(f"{where}: pins.{name}: must be a mapping of {', '.join(ENTRY_KEYS)}")
    for key in entry:
        if key not in ENTRY_KEYS:
            raise _bad(where, name, key,
                       f"unknown key{did_you_mean(key, ENTRY_KEYS)} (allowed: {', '.join(ENTRY_KEYS)})")
    values: dict[str, Any] = {}
    for key in ("channel", "rev", "url", "sha256", "nar_hash_seen", "glibc", "nix_ld"):
        value = entry.get(key)
        if value is not None and not isinstance(value, str):
            raise _bad(where, name, key, f"must be a string or null, not {type(value).__name__}")
        values[key] = value
    checks = {"rev": (_REV, "40 hex digits"), "sha256": (_SRI, "sha256-<base64> (the NAR hash)"),
              "nar_hash_seen": (_SRI, "sha256-<base64>"), "glibc": (_VERSION, "a glibc version such as 2.40")}
    for key, (pattern, what) in checks.items():
        if values[key] is not None and not pattern.match(values[key]):
            raise _bad(where, name, key, f"{values[key]!r} is not {what}")
    if values["url"] is not None and not re.match(r"^(https?|file)://\S+$", values["url"]):
        raise _bad(where, name, "url", f"{values['url']!r} is not an http(s) or file URL")
    supported = entry.get("supported", False)
    if not isinstance(supported, bool):
        raise _bad(where, name, "supported", "must be true or false")
    stub_ld = entry.get("stub_ld")
    if stub_ld is not None and not isinstance(stub_ld, bool):
        raise _bad(where, name, "stub_ld", "must be true, false or null (`pins update` reads it from the tree)")
    forms = [form.value for form in LibraryList]
    libraries = entry.get("nix_ld_libraries")
    if libraries is not None and libraries not in forms:
        raise _bad(where, name, "nix_ld_libraries", f"{libraries!r}{did_you_mean(libraries, forms)} is not a form "
                   f"(allowed: {', '.join(forms)}, or null; `pins update` reads it from the tree)")
    return NixpkgsPin(name, values["channel"] or name, values["rev"], values["url"], values["sha256"],
                      values["glibc"], values["nix_ld"], supported, values["nar_hash_seen"], stub_ld,
                      None if libraries is None else LibraryList(libraries))


def default_path() -> Path:
    return Path(str(resources.files("harness").joinpath("data/nixpkgs-pins.json")))


def load(path: Path | None = None) -> Pins:
    """The pins file (default harness/data/nixpkgs-pins.json); a damaged one is one line naming the key."""
    path = path or default_path()
    where = PINS_NAME if path == default_path() else str(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise LdmatrixError(f"{where}: cannot read the pins file: {err.strerror or err}") from None
    except ValueError as err:
        raise LdmatrixError(f"{where}: not JSON: {err}") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("pins"), dict):
        raise LdmatrixError(f"{where}: pins: required, a mapping of pin name -> {{{', '.join(ENTRY_KEYS)}}}")
    source = raw.get("source", {})
    if not isinstance(source, dict) or not all(isinstance(source.get(k), str) for k in ("archive", "head")):
        raise LdmatrixError(f"{where}: source: required, {{archive: URL with {{rev}}, head: URL with {{channel}}}}")
    pins = {str(name): _entry(where, str(name), entry) for name, entry in raw["pins"].items()}
    return Pins(where, dict(source), pins, raw)


def save(pins: Pins, updated: Iterable[NixpkgsPin], path: Path) -> None:
    """Write ``path``: the file as read, the ``updated`` pins' entries replaced (keys kept in order)."""
    raw = json.loads(json.dumps(pins.raw))
    for pin in updated:
        entry = raw["pins"].setdefault(pin.name, {})
        entry.update({"channel": pin.channel, "rev": pin.rev, "url": pin.url, "sha256": pin.sha256,
                      "glibc": pin.glibc, "nix_ld": pin.nix_ld, "stub_ld": pin.stub_ld,
                      "nix_ld_libraries": None if pin.nix_ld_libraries is None else pin.nix_ld_libraries.value,
                      "supported": pin.supported})
        if pin.nar_hash_seen is not None:
            entry["nar_hash_seen"] = pin.nar_hash_seen
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(raw, indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)


def with_head(pin: NixpkgsPin, rev: str, url: str, sha256: str, glibc: str | None, nix_ld: str | None,
              stub_ld: bool, nix_ld_libraries: LibraryList | None) -> NixpkgsPin:
    """The pin at ``rev``. The versions fall back to the recorded ones when the tree names none; the
    release's behaviour never does: it is this tree's (None when its nix-ld module was not recognised)."""
    return replace(pin, rev=rev, url=url, sha256=sha256, glibc=glibc or pin.glibc, nix_ld=nix_ld or pin.nix_ld,
                   stub_ld=stub_ld, nix_ld_libraries=nix_ld_libraries)
