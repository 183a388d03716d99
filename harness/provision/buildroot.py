"""Debian build roots (gcc, libc6-dev, libcrypt-dev, rustc) made by mmdebstrap, one per suite."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

from harness.cache import Cache
from harness.errors import ProvisionError
from harness.model import BuildRoot
from harness.progress import Progress

from . import debversion, nixbase32
from .mirror import ENV_VAR
from .suites import CONFIG, SuitesConfig

FORMAT = "1"


def root_digest(suite: str, config: SuitesConfig = CONFIG, mirror: str | None = None,
                include: tuple[str, ...] | None = None) -> str:
    """Content id of a build root: what it is built from (suite, variant, packages, mirror)."""
    spec = json.dumps({"format": FORMAT, "suite": suite, "variant": config.buildroot_variant,
                       "include": sorted(config.buildroot_include if include is None else include),
                       "mirror": mirror or ""},
                      sort_keys=True)
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


def _mounts_under(path: Path) -> list[str]:
    prefix = str(path.resolve()) + "/"
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return []
    return [f.split()[4] for f in lines if (f.split()[4] + "/").startswith(prefix)]


def _discard(path: Path) -> str:
    """Remove a failed root unless something is still mounted in it; say what was done."""
    if not path.exists():
        return ""
    mounts = _mounts_under(path)
    if mounts:
        return f"; left {path} alone: {mounts[0]} is still mounted"
    shutil.rmtree(path, ignore_errors=True)
    return ""


def build_root(suite: str, cache: Cache, progress: Progress, *, config: SuitesConfig = CONFIG,
               include: tuple[str, ...] | None = None) -> BuildRoot:
    """The build root of ``suite``: reused when present, otherwise mmdebstrap'ed and renamed into place.

    ``include``: the packages to install instead of the suites map's build-root list (the nix-ld
    build root has its own); the root's digest covers them.
    """
    if suite not in config.suites:
        raise ProvisionError(f"build root: unknown suite {suite!r} (allowed: {', '.join(config.suites)})")
    include = config.buildroot_include if include is None else include
    mirror = os.environ.get(ENV_VAR, "").strip() or None
    digest = root_digest(suite, config, mirror, include)
    name = f"{suite}-{digest}"
    final = cache.buildroots / name
    info = cache.buildroots / f"{name}.json"
    if final.is_dir():  # only ever created by the rename below: complete
        glibc = debversion.upstream(dpkg_version(final, "libc6"))
        return BuildRoot(suite=suite, path=final, glibc_version=glibc, digest=digest)

    exe = shutil.which("mmdebstrap")
    if exe is None:
        raise ProvisionError("mmdebstrap not found; install it: apt-get install -y mmdebstrap")
    log = cache.buildroots / f"{name}.log"
    tmp = cache.buildroots / f".tmp-{name}-{os.getpid()}"
    hint = _discard(tmp)
    if hint:
        raise ProvisionError(f"build root {suite}: stale temp dir{hint}")
    argv = [exe, f"--variant={config.buildroot_variant}", f"--include={','.join(include)}",
            "--format=directory",
            # an archive snapshot past its Valid-Until (sid's is a week) must not stop the build
            '--aptopt=Acquire::Check-Valid-Until "false"',
            suite, str(tmp)]
    if mirror:
        argv.append(mirror)
    progress.step(f"build root {suite}: mmdebstrap (about a minute; log: {log})")
    start = time.monotonic()
    try:
        with log.open("w") as out:
            out.write("$ " + " ".join(argv) + "\n")
            out.flush()
            proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                    stdin=subprocess.DEVNULL)
            assert proc.stdout is not None
            for line in proc.stdout:
                out.write(line)
                out.flush()
                if line.startswith(("I: ", "E: ", "W: ")):
                    progress.step(f"build root {suite}: {line[3:].strip()}")
            rc = proc.wait()
    except BaseException:
        if "proc" in locals() and proc.poll() is None:
            proc.terminate()
            proc.wait()
        _discard(tmp)
        raise
    if rc != 0:
        hint = _discard(tmp)
        raise ProvisionError(f"build root {suite}: mmdebstrap failed (exit {rc}); see {log}{hint}")
    glibc_full = dpkg_version(tmp, "libc6")
    try:
        os.rename(tmp, final)
    except OSError:
        if not final.is_dir():
            raise
        _discard(tmp)  # a concurrent run finished first
    info.write_text(json.dumps({"suite": suite, "digest": digest, "libc6": glibc_full,
                                "include": list(include),
                                "seconds": round(time.monotonic() - start, 1)}, indent=2) + "\n")
    progress.step(f"build root {suite}: ready, libc6 {glibc_full} ({time.monotonic() - start:.0f} s)")
    return BuildRoot(suite=suite, path=final, glibc_version=debversion.upstream(glibc_full), digest=digest)
