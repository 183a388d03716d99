"""Debian build roots (gcc, libc6-dev, libcrypt-dev, rustc) made by mmdebstrap, one per suite."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

from harness.cache import Cache
from harness.cache import entry as cache_entry
from harness.errors import ProvisionError
from harness.model import BuildRoot
from harness.progress import Progress

from . import debversion, nixbase32
from .mirror import ENV_VAR
from .suites import CONFIG, SuitesConfig

FORMAT = "1"


def root_digest(suite: str, config: SuitesConfig = CONFIG, mirror: str | None = None,
                include: tuple[str, ...] | None = None, aptopts: tuple[str, ...] = ()) -> str:
    """Content id of a build root: what it is built from (suite, variant, packages, mirror, apt's options)."""
    fields = {"format": FORMAT, "suite": suite, "variant": config.buildroot_variant,
              "include": sorted(config.buildroot_include if include is None else include), "mirror": mirror or ""}
    if aptopts:
        fields["aptopts"] = list(aptopts)
    spec = json.dumps(fields, sort_keys=True)
    return nixbase32.digest("buildroot", spec)


def dpkg_version(root: Path, package: str) -> str:
    """The installed version of ``package`` from the root's dpkg status."""
    status = root / "var/lib/dpkg/status"
    try:
        text = status.read_text(errors="replace")
    except OSError as err:
        raise ProvisionError(f"{status}: cannot read: {err.strerror}") from None
    for stanza in text.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in stanza.splitlines() if ": " in line and line[0] != " ")
        if (fields.get("Package") == package and fields.get("Status", "").endswith(" installed")
                and fields.get("Architecture") in ("amd64", "all")):
            return fields["Version"]
    raise ProvisionError(f"{status}: {package} is not installed")


def tool_package(root: Path, name: str) -> str:
    """The Debian package that holds a build root's ``name``: ``gcc`` is a metapackage, so the compiler
    package it points at (``gcc-14``); any other name as it is."""
    if name == "gcc":
        link = root / "usr" / "bin" / "gcc"
        if link.is_symlink() and os.readlink(link).startswith("gcc-"):
            return os.readlink(link)
    return name


def dpkg_md5sums_problem(root: Path) -> str | None:
    """Check every installed file against dpkg's md5sums: the check of a root made before manifests."""
    info = root / "var/lib/dpkg/info"
    try:
        lists = sorted(info.glob("*.md5sums"))
    except OSError as err:
        return f"/var/lib/dpkg/info cannot be read ({err.strerror})"
    if not lists:
        return "/var/lib/dpkg/info has no *.md5sums to check it against"
    for md5sums in lists:
        for line in md5sums.read_text(errors="replace").splitlines():
            digest, _, rel = line.partition("  ")
            path = root / rel
            try:
                h = hashlib.md5()
                with path.open("rb") as f:
                    for chunk in iter(lambda: f.read(1 << 20), b""):
                        h.update(chunk)
            except FileNotFoundError:
                return f"/{rel} (of {md5sums.stem}) is missing"
            except OSError as err:
                return f"/{rel} cannot be read ({err.strerror})"
            if h.hexdigest() != digest:
                return f"/{rel} (of {md5sums.stem}) does not match dpkg's md5sum"
    return None


def made_from(suite: str, digest: str, config: SuitesConfig, mirror: str | None, include: tuple[str, ...],
              aptopts: tuple[str, ...] = ()) -> dict:
    made = {"kind": "buildroot", "format": FORMAT, "suite": suite, "digest": digest,
            "variant": config.buildroot_variant, "include": sorted(include), "mirror": mirror or ""}
    return {**made, "aptopts": list(aptopts)} if aptopts else made


def _mmdebstrap(suite: str, target: Path, log: Path, config: SuitesConfig, mirror: str | None,
                include: tuple[str, ...], progress: Progress, aptopts: tuple[str, ...] = ()) -> None:
    exe = shutil.which("mmdebstrap")
    if exe is None:
        raise ProvisionError("mmdebstrap not found; install it: apt-get install -y mmdebstrap")
    argv = [exe, f"--variant={config.buildroot_variant}", f"--include={','.join(include)}",
            "--format=directory",
            # an archive snapshot past its Valid-Until (sid's is a week) must not stop the build
            '--aptopt=Acquire::Check-Valid-Until "false"', *(f"--aptopt={o}" for o in aptopts),
            suite, str(target)]
    if mirror:
        argv.append(mirror)
    progress.step(f"build root {suite}: mmdebstrap (about a minute; log: {log})")
    with log.open("w") as out:
        out.write("$ " + " ".join(argv) + "\n")
        out.flush()
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                stdin=subprocess.DEVNULL)
        assert proc.stdout is not None
        try:
            for line in proc.stdout:
                out.write(line)
                out.flush()
                if line.startswith(("I: ", "E: ", "W: ")):
                    progress.step(f"build root {suite}: {line[3:].strip()}")
            rc = proc.wait()
        except BaseException:
            if proc.poll() is None:
                proc.terminate()
                proc.wait()
            raise
    if rc != 0:
        raise ProvisionError(f"build root {suite}: mmdebstrap failed (exit {rc}); see {log}")


def build_root(suite: str, cache: Cache, progress: Progress, *, config: SuitesConfig = CONFIG,
               include: tuple[str, ...] | None = None, aptopts: tuple[str, ...] = ()) -> BuildRoot:
    """The build root of ``suite``: reused when it matches its manifest, otherwise mmdebstrap'ed into place.

    ``include``: the packages to install instead of the suites map's build-root list (the nix-ld
    build root has its own); the root's digest covers them, and ``aptopts`` (more of apt's options).
    A damaged root is named in one line and not used (rebuilding one takes a minute and the network).
    """
    if suite not in config.suites:
        raise ProvisionError(f"build root: unknown suite {suite!r} (allowed: {', '.join(config.suites)})")
    include = config.buildroot_include if include is None else include
    mirror = os.environ.get(ENV_VAR, "").strip() or None
    digest = root_digest(suite, config, mirror, include, aptopts)
    name = f"{suite}-{digest}"
    entry = cache_entry.Entry(cache, "buildroots", name)
    log = cache.buildroots / f"{name}.log"
    started = time.monotonic()
    built: list[str] = []

    def fill(out: Path, scratch: Path) -> None:
        os.rmdir(out)  # mmdebstrap makes the directory itself
        _mmdebstrap(suite, out, log, config, mirror, include, progress, aptopts)
        built.append(dpkg_version(out, "libc6"))

    def adopt(entry: cache_entry.Entry) -> str | None:
        dpkg_version(entry.path, "libc6")
        return dpkg_md5sums_problem(entry.path)

    final = cache_entry.ensure(entry, made_from(suite, digest, config, mirror, include, aptopts), fill, progress,
                               f"build root {suite}", adopt=adopt, rebuild=False)
    glibc_full = dpkg_version(final, "libc6")
    if built:
        seconds = round(time.monotonic() - started, 1)
        info = cache.buildroots / f"{name}.json"
        info.write_text(json.dumps({"suite": suite, "digest": digest, "libc6": glibc_full,
                                    "include": list(include), "seconds": seconds}, indent=2) + "\n")
        progress.step(f"build root {suite}: ready, libc6 {glibc_full} ({seconds:.0f} s)")
    return BuildRoot(suite=suite, path=final, glibc_version=debversion.upstream(glibc_full), digest=digest)
