"""The suites map (harness/data/suites.json): the Debian suites, and for each store glibc build the
suite it is built in and the suite whose packages stand beside it."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import ProvisionError

SUITES_PATH = Path(__file__).resolve().parent.parent / "data" / "suites.json"


@dataclass(frozen=True)
class GlibcBuildSpec:
    """One store glibc build: upstream ``version`` built in ``build``'s root (its source listed in
    that suite's Sources index), with ``packages``' libraries and system programs beside it."""

    version: str
    packages: str
    build: str


@dataclass(frozen=True)
class SuitesConfig:
    architecture: str
    glibc: dict[str, str]  # store glibc "2.40" -> the suite whose packages stand beside it ("bookworm")
    packages: dict[str, str]  # Debian package -> store path name ("libc6" -> "glibc")
    shell_package: str  # "busybox-static"
    shell_name: str  # "busybox"
    shell_suite: str  # "bookworm"
    buildroot_include: tuple[str, ...]
    buildroot_variant: str
    nix_ld_suite: str  # the build root nix-ld is built in: gcc and meson (1.x), rustc and cargo (2.x)
    nix_ld_include: tuple[str, ...]
    store_packages: dict[str, tuple[str, tuple[str, ...]]] = field(default_factory=dict)  # name -> (suite, debs)
    suite_glibc: dict[str, str] = field(default_factory=dict)  # suite -> the glibc of its own libc6
    glibc_builds: dict[str, GlibcBuildSpec] = field(default_factory=dict)  # store glibc -> how it is built
    glibc_build_include: tuple[str, ...] = ()  # what a glibc build root holds

    @property
    def suites(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys((*self.suite_glibc, *self.glibc.values())))

    def glibc_build(self, glibc_version: str) -> GlibcBuildSpec:
        self.suite_for(glibc_version)  # one error for an unknown version
        return self.glibc_builds[glibc_version]

    def wanted(self) -> dict[str, tuple[str, ...]]:
        """suite -> the Debian packages the lock must pin for it."""
        out: dict[str, list[str]] = {suite: sorted(self.packages) for suite in self.suites}
        out.setdefault(self.shell_suite, []).append(self.shell_package)
        for suite, debs in self.store_packages.values():
            out.setdefault(suite, []).extend(debs)
        return {suite: tuple(sorted(set(pkgs))) for suite, pkgs in sorted(out.items())}

    def suite_for(self, glibc_version: str) -> str:
        try:
            return self.glibc[glibc_version]
        except KeyError:
            raise ProvisionError(
                f"{SUITES_PATH.name}: glibc: unknown version {glibc_version!r} "
                f"(allowed: {', '.join(self.glibc)})"
            ) from None


def load_suites(path: Path = SUITES_PATH) -> SuitesConfig:
    try:
        raw = json.loads(path.read_text())
        shell = raw["shell"]
        builds = {version: GlibcBuildSpec(version, entry["packages"], entry["build"])
                  for version, entry in raw["glibc"].items()}
        return SuitesConfig(
            architecture=raw["architecture"],
            glibc={version: b.packages for version, b in builds.items()},
            packages=dict(raw["packages"]),
            shell_package=shell["package"],
            shell_name=shell["store_name"],
            shell_suite=shell["suite"],
            buildroot_include=tuple(raw["buildroot"]["include"]),
            buildroot_variant=raw["buildroot"]["variant"],
            nix_ld_suite=raw["nix_ld_build"]["suite"],
            nix_ld_include=tuple(raw["nix_ld_build"]["include"]),
            store_packages={name: (entry["suite"], tuple(entry["debs"]))
                            for name, entry in raw.get("store_packages", {}).items()},
            suite_glibc=dict(raw["suites"]),
            glibc_builds=builds,
            glibc_build_include=tuple(raw["glibc_build"]["include"]),
        )
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ProvisionError(f"{path}: cannot read the suites map: {err!r}") from None


CONFIG = load_suites()
SUITES: dict[str, str] = dict(CONFIG.glibc)  # store glibc -> the suite of the packages beside it
SUITE_GLIBC: dict[str, str] = dict(CONFIG.suite_glibc)  # suite -> its own glibc
