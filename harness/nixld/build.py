"""Build nix-ld from a verified source tree inside the nix-ld build root, offline, cached.

1.x: ``meson setup --buildtype=plain -Dnix-system=x86_64-linux`` and ``meson compile nix-ld``
with ``CFLAGS=-O2`` (what nixpkgs' meson hook and its fortify hardening amount to).
2.x: ``cargo build --release --offline --locked`` against the vendored crates, with
``RUSTC_BOOTSTRAP=1`` (its .cargo/config.toml passes ``-Z plt=yes``) and ``NIX_SYSTEM``, as
upstream's package.nix sets them.

A build is cached under a key over the source's NAR hash, the recipe and the exact toolchain,
so a second run builds nothing and a new compiler builds again. The network is never shared
with a build.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from pathlib import Path

from harness.cache import Cache
from harness.cache import entry as cache_entry
from harness.errors import LdmatrixError
from harness.progress import Progress
from harness.provision import nixbase32
from harness.provision.buildrun import failure, run_logged
from harness.reproducers import bwrap_argv

from .source import Generation, SourceTree
from .toolchain import Toolchain, toolchain
from .vendor import vendored

RECIPE = "1"  # bump to rebuild every cached nix-ld
NIX_SYSTEM = "x86_64-linux"
BUILD_TIMEOUT = 900.0
_PROGRESS_LINE = re.compile(r"^\s*(Compiling|Finished|\[\d+/\d+\])")

COMMANDS: dict[Generation, str] = {
    Generation.C: (f"meson setup --buildtype=plain -Dnix-system={NIX_SYSTEM} /tmp/build /src\n"
                   "meson compile -C /tmp/build nix-ld\n"
                   "cp /tmp/build/nix-ld /out/nix-ld"),
    Generation.RUST: ("cargo build --release --offline --locked "
                      "--config 'source.crates-io.replace-with=\"vendored\"' "
                      "--config 'source.vendored.directory=\"/vendor\"'\n"
                      "cp /tmp/target/release/nix-ld /out/nix-ld"),
}
ENVIRONMENT: dict[Generation, tuple[tuple[str, str], ...]] = {
    Generation.C: (("CFLAGS", "-O2"),),
    Generation.RUST: (("RUSTC_BOOTSTRAP", "1"), ("NIX_SYSTEM", NIX_SYSTEM), ("CARGO_TARGET_DIR", "/tmp/target"),
                      ("CARGO_HOME", "/tmp/cargo-home")),
}


class BuildFailed(LdmatrixError):
    """The source did not build; the message names the log and its last lines."""


@dataclass(frozen=True)
class NixLdBuild:
    executable: Path
    log: Path
    version: str
    nar_hash: str
    toolchain: str  # "rustc 1.97.1+dfsg1-1, cargo …, gcc … (Debian sid build root …)"


def build_key(nar_hash: str, generation: Generation, tc: Toolchain) -> str:
    tools = ";".join(f"{p}={v}" for p, v in tc.of(generation))
    return nixbase32.digest("nix-ld-build", RECIPE, nar_hash, COMMANDS[generation],
                            repr(ENVIRONMENT[generation]), tc.root.digest, tools)


AREA = "nix-ld/builds"


def _entry(cache: Cache, key: str, version: str) -> cache_entry.Entry:
    return cache_entry.Entry(cache, AREA, f"{key}-nix-ld-{version}")


def _made_from(nar_hash: str, generation: Generation, tc: Toolchain) -> dict:
    return {"kind": "nix-ld-build", "recipe": RECIPE, "nar_hash": nar_hash, "generation": int(generation),
            "command": COMMANDS[generation], "environment": [list(kv) for kv in ENVIRONMENT[generation]],
            "build_root": tc.root.digest, "toolchain": dict(tc.of(generation))}


def cached(nar_hash: str, generation: Generation, version: str, tc: Toolchain, cache: Cache) -> NixLdBuild | None:
    """The build of this source with this toolchain, if one was made before and still matches its manifest."""
    entry = _entry(cache, build_key(nar_hash, generation, tc), version)
    if not entry.path.is_dir() or cache_entry.check(entry, _made_from(nar_hash, generation, tc)) is not None:
        return None
    return NixLdBuild(entry.path / "nix-ld", entry.path / "build.log", version, nar_hash, tc.describe(generation))


def _notable(line: str) -> str | None:
    return line.strip() if _PROGRESS_LINE.match(line) else None


def build(tree: SourceTree, cache: Cache, progress: Progress, tc: Toolchain | None = None) -> NixLdBuild:
    """nix-ld from ``tree``: the cached build, or a new one made offline in the nix-ld build root."""
    tc = tc or toolchain(cache, progress)
    found = cached(tree.nar_hash, tree.generation, tree.version, tc, cache)
    if found is not None:
        progress.step(f"nix-ld {tree.version}: reusing the build of {tree.nar_hash[:19]}… ({found.toolchain})")
        return found
    binds: tuple[tuple[Path, str, bool], ...] = ()
    if tree.generation is Generation.RUST:
        binds = ((vendored(tree, tc, cache, progress), "/vendor", False),)
    entry = _entry(cache, build_key(tree.nar_hash, tree.generation, tc), tree.version)
    what = f"nix-ld {tree.version}"
    started = time.monotonic()

    def fill(out: Path, scratch: Path) -> None:
        progress.step(f"{what}: building {tree.origin} with {tc.describe(tree.generation)}")
        log = out / "build.log"
        log.write_text(f"# nix-ld {tree.version} from {tree.origin} ({tree.nar_hash}), generation "
                       f"{int(tree.generation)}\n# toolchain: {tc.describe(tree.generation)}\n"
                       f"$ {COMMANDS[tree.generation]}\n")
        argv = bwrap_argv(tc.root.path, tree.path, out, ("sh", "-ec", COMMANDS[tree.generation]),
                          binds=binds, env=ENVIRONMENT[tree.generation], chdir="/src")
        rc = run_logged(argv, log, progress, what, BUILD_TIMEOUT, _notable)
        if rc != 0 or not (out / "nix-ld").is_file():
            raise BuildFailed(f"building {what} ({tree.origin}) failed {failure(log, entry.path, rc, BUILD_TIMEOUT)}")
        (out / "build.json").write_text(json.dumps({
            "version": tree.version, "origin": tree.origin, "commit": tree.commit, "nar_hash": tree.nar_hash,
            "generation": int(tree.generation), "toolchain": dict(tc.of(tree.generation)),
            "build_root": {"suite": tc.root.suite, "digest": tc.root.digest},
            "seconds": round(time.monotonic() - started, 1)}, indent=2) + "\n")
        progress.step(f"{what}: built in {time.monotonic() - started:.1f} s")

    final = cache_entry.ensure(entry, _made_from(tree.nar_hash, tree.generation, tc), fill, progress,
                               f"{what} build")
    return NixLdBuild(final / "nix-ld", final / "build.log", tree.version, tree.nar_hash,
                      tc.describe(tree.generation))
