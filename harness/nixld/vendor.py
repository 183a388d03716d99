"""Crates for nix-ld 2.x, fetched once per Cargo.lock so that every build runs offline.

The build root's own cargo runs ``cargo vendor --locked`` with the host's network and its
certificate settings (a Debian root has no CA store of its own); the registry it uses is cargo's
built-in default. Crate downloads are kept in a cargo home in the cache, so a bisect over many
commits fetches each crate version once.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from harness.cache import Cache
from harness.cache import entry as cache_entry
from harness.errors import LdmatrixError
from harness.progress import Progress
from harness.reproducers import bwrap_argv

from .source import SourceError, SourceTree
from .toolchain import Toolchain

VENDOR_TIMEOUT = 900.0
CA_TARGET = "/tmp/ldmatrix-ca-certificates.crt"
_CA_CANDIDATES = ("/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt")
_PROXY_VARS = ("HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY", "https_proxy", "http_proxy", "no_proxy")


class CratesUnreachable(LdmatrixError):
    """``cargo vendor`` could not fetch the crates of a Cargo.lock."""


def host_ca_file() -> Path | None:
    """The host's CA bundle, as its own TLS settings name it."""
    for var in ("CARGO_HTTP_CAINFO", "SSL_CERT_FILE", "CURL_CA_BUNDLE"):
        value = os.environ.get(var)
        if value and Path(value).is_file():
            return Path(value)
    return next((Path(c) for c in _CA_CANDIDATES if Path(c).is_file()), None)


AREA = "nix-ld/crates"


def _lock_sha256(tree: SourceTree) -> str:
    lock = tree.path / "Cargo.lock"
    if not lock.is_file():
        raise SourceError(f"{tree.origin}: no Cargo.lock, so its crates cannot be locked and fetched once")
    return cache_entry.file_sha256(lock)


def vendored(tree: SourceTree, tc: Toolchain, cache: Cache, progress: Progress) -> Path:
    """The vendor directory of ``tree``'s Cargo.lock: made once, with the network, then reused."""
    lock_sha = _lock_sha256(tree)
    entry = cache_entry.Entry(cache, AREA, lock_sha[:32])
    log = entry.path.parent / f"{entry.name}.log"

    def fill(out: Path, scratch: Path) -> None:
        progress.step(f"nix-ld {tree.version}: fetching its crates once (cargo vendor --locked)")
        cargo_home = cache.dir("nix-ld/cargo-home")
        binds: list[tuple[Path, str, bool]] = [(cargo_home, "/cargo-home", True)]
        env = [("CARGO_HOME", "/cargo-home")]
        ca = host_ca_file()
        if ca is not None:
            binds.append((ca, CA_TARGET, False))
            env += [("CARGO_HTTP_CAINFO", CA_TARGET), ("SSL_CERT_FILE", CA_TARGET)]
        env += [(var, os.environ[var]) for var in _PROXY_VARS if os.environ.get(var)]
        argv = bwrap_argv(tc.root.path, tree.path, out, ("cargo", "vendor", "--locked", "--versioned-dirs",
                                                         "/out/vendor"),
                          binds=tuple(binds), env=tuple(env), network=True, chdir="/src")
        with log.open("w") as output:
            try:
                rc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
                                    timeout=VENDOR_TIMEOUT).returncode
            except subprocess.TimeoutExpired:
                rc = None
        if rc != 0 or not (out / "vendor").is_dir():
            lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
            why = "timed out" if rc is None else (lines[-1] if lines else f"exit {rc}")
            raise CratesUnreachable(
                f"nix-ld {tree.version}: its crates could not be fetched ({why}); crates.io must be reachable "
                f"once, after which builds are offline; log: {log}")

    path = cache_entry.ensure(entry, {"kind": "nix-ld-crates", "cargo_lock_sha256": lock_sha}, fill, progress,
                              f"crates of nix-ld {tree.version}")
    return path / "vendor"
