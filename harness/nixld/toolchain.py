"""The build root nix-ld is built in, and the exact toolchain it holds (read from its dpkg status).

One Debian root (the suites map's ``nix_ld_build``: sid, for a rustc new enough for 2.x's
edition 2024 and locked crates) builds both generations, so every build can say which compiler
made it, and a new compiler means a new cache key.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.cache import Cache
from harness.model import BuildRoot
from harness.progress import Progress
from harness.provision import build_root
from harness.provision.buildroot import dpkg_version, tool_package
from harness.provision.suites import CONFIG

from .source import Generation

PACKAGES: dict[Generation, tuple[str, ...]] = {
    Generation.C: ("gcc", "meson", "ninja-build"),
    Generation.RUST: ("rustc", "cargo", "gcc"),
}


@dataclass(frozen=True)
class Toolchain:
    root: BuildRoot
    versions: tuple[tuple[str, str], ...]  # (Debian package, its version), every package of PACKAGES

    def of(self, generation: Generation) -> tuple[tuple[str, str], ...]:
        wanted = {_package(self.root, p) for p in PACKAGES[generation]}
        return tuple((p, v) for p, v in self.versions if p in wanted)

    def describe(self, generation: Generation) -> str:
        tools = ", ".join(f"{p} {v}" for p, v in self.of(generation))
        return f"{tools} (Debian {self.root.suite} build root {self.root.digest[:12]})"


def _package(root: BuildRoot, name: str) -> str:
    return tool_package(root.path, name)


def toolchain(cache: Cache, progress: Progress) -> Toolchain:
    root = build_root(CONFIG.nix_ld_suite, cache, progress, include=CONFIG.nix_ld_include)
    packages = sorted({_package(root, p) for group in PACKAGES.values() for p in group})
    return Toolchain(root, tuple((p, dpkg_version(root.path, p)) for p in packages))
