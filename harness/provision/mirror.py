"""The Debian mirror to download from: ``$LDMATRIX_DEBIAN_MIRROR`` or the machine's apt sources.

No archive host name is written anywhere in ldmatrix; it comes from here.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from harness.errors import ProvisionError

ENV_VAR = "LDMATRIX_DEBIAN_MIRROR"
APT_DIR = Path("/etc/apt")

_DEBIAN_SUITES = {
    "buster", "bullseye", "bookworm", "trixie", "forky", "duke", "sid",
    "oldoldstable", "oldstable", "stable", "testing", "unstable", "experimental",
}  # fmt: skip


@dataclass(frozen=True)
class AptSource:
    types: tuple[str, ...]
    uris: tuple[str, ...]
    suites: tuple[str, ...]
    components: tuple[str, ...]
    signed_by: str
    origin: str  # "file:line" where it was read


def _one_line(path: Path) -> list[AptSource]:
    out = []
    for no, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        options = ""
        m = re.match(r"^(\S+)\s+\[([^\]]*)\]\s+(.*)$", line)
        if m:
            kind, options, rest = m.groups()
        else:
            kind, _, rest = line.partition(" ")
        words = rest.split()
        if len(words) < 2:
            continue
        signed = re.search(r"signed-by=(\S+)", options)
        out.append(AptSource((kind,), (words[0],), (words[1],), tuple(words[2:]),
                             signed.group(1) if signed else "", f"{path}:{no}"))
    return out


def _deb822(path: Path) -> list[AptSource]:
    out = []
    text = path.read_text(errors="replace")
    line_no = 1
    for block in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        key = None
        for line in block.splitlines():
            if line.startswith("#"):
                continue
            if line[:1] in (" ", "\t") and key:
                fields[key] += " " + line.strip()
                continue
            key, sep, value = line.partition(":")
            if not sep:
                key = None
                continue
            key = key.strip().lower()
            fields[key] = value.strip()
        if fields and fields.get("enabled", "yes").lower() != "no" and "uris" in fields:
            out.append(AptSource(
                tuple(fields.get("types", "").split()), tuple(fields["uris"].split()),
                tuple(fields.get("suites", "").split()), tuple(fields.get("components", "").split()),
                fields.get("signed-by", ""), f"{path}:{line_no}",
            ))
        line_no += block.count("\n") + 2
    return out


def apt_sources(apt_dir: Path = APT_DIR) -> list[AptSource]:
    """All apt source entries, in the order apt reads them."""
    out: list[AptSource] = []
    main = apt_dir / "sources.list"
    if main.is_file():
        out += _one_line(main)
    parts = apt_dir / "sources.list.d"
    if parts.is_dir():
        for path in sorted(parts.iterdir()):
            if path.suffix == ".list":
                out += _one_line(path)
            elif path.suffix == ".sources":
                out += _deb822(path)
    return out


def _is_debian_main(src: AptSource) -> bool:
    if "deb" not in src.types or "main" not in src.components:
        return False
    for suite in src.suites:
        base = suite.split("/")[0]
        if base.endswith("-security"):
            continue
        base = re.sub(r"-(updates|backports|proposed-updates|backports-sloppy)$", "", base)
        if base in _DEBIAN_SUITES:
            return True
    return False


def debian_mirror(apt_dir: Path = APT_DIR) -> str:
    """Base URI of a Debian archive (the directory holding ``dists/`` and ``pool/``)."""
    env = os.environ.get(ENV_VAR, "").strip()
    if env:
        return env.rstrip("/")
    sources = [s for s in apt_sources(apt_dir) if _is_debian_main(s)]
    # Prefer an entry signed by the Debian archive keyring, then the first Debian suite.
    sources.sort(key=lambda s: "debian-archive-keyring" not in s.signed_by)
    for src in sources:
        for uri in src.uris:
            if uri.startswith(("http://", "https://", "file:")):
                return uri.rstrip("/")
    raise ProvisionError(
        f"no Debian main mirror in {apt_dir}/sources.list or {apt_dir}/sources.list.d/; "
        f"set {ENV_VAR}=<archive URI>"
    )
