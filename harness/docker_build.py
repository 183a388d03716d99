"""Compile a reproducer inside the docker image of its build suite (``--runner docker``).

Same command, same inputs and same digest as harness/reproducers.py's bubblewrap build: the
sources read-only at /src, the output at /out, a clean environment, no network. The result is
cached next to the sandbox builds under ``<name>-<suite>-<digest>-docker/`` with its build.log.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

from harness import images, reproducers
from harness.cache import Cache
from harness.errors import LdmatrixError
from harness.model import BuildRoot, BuiltBinary, Mount
from harness.prepare import fhs_root
from harness.progress import Progress
from harness.runners.docker import ContainerSpec, run_container

BUILD_ENV = (("PATH", reproducers.BUILD_PATH), ("HOME", "/tmp"), ("TMPDIR", "/tmp"), ("LC_ALL", "C"))
SUFFIX = "-docker"


def docker_build_dir(name: str, root: BuildRoot, cache: Cache) -> Path:
    sandbox_dir = reproducers.build_dir(name, root, cache)
    return sandbox_dir.with_name(sandbox_dir.name + SUFFIX)


def _compile(spec: reproducers.ReproducerSpec, image: str, out_dir: Path) -> tuple[int | None, str]:
    """Run the compiler in a container; (exit status or None on timeout, combined log text)."""
    command = spec.compile_command()
    container = ContainerSpec(
        image=image, argv=command, env=BUILD_ENV, cwd="/tmp",
        mounts=(Mount(spec.project_dir, "/src"), Mount(out_dir, "/out", writable=True)),
        timeout=reproducers.BUILD_TIMEOUT, labels={"ldmatrix.build": spec.name},
    )
    result = run_container(container)
    return (None if result.timed_out else result.rc), result.stdout + result.stderr


def _write_log(log: Path, spec: reproducers.ReproducerSpec, root: BuildRoot, image: str,
               rc: int | None, output: str) -> None:
    log.write_text(
        f"# reproducer {spec.name}, suite {root.suite}, build root {root.path} ({root.digest})\n"
        f"# docker image: {image}\n"
        f"$ {' '.join(spec.compile_command())}\n"
        f"{output}"
        f"# exit status: {'timeout' if rc is None else rc}\n",
        encoding="utf-8",
    )


def build_in_container(name: str, root: BuildRoot, cache: Cache, progress: Progress) -> BuiltBinary:
    """Like harness.reproducers.build, but the compiler runs in the suite's docker image."""
    spec = reproducers.spec(name)
    if spec.min_glibc and reproducers._version_tuple(root.glibc_version) < reproducers._version_tuple(spec.min_glibc):
        raise LdmatrixError(f"{spec.name} needs a build root with glibc >= {spec.min_glibc}; "
                            f"{root.suite} has {root.glibc_version} (use trixie or newer)")
    final = docker_build_dir(name, root, cache)
    if (final / spec.name).is_file():
        progress.step(f"reusing {spec.name} for {root.suite} ({final.name})")
        return reproducers._built(spec, root, final)
    image = images.ensure_image(fhs_root(root), progress)
    progress.step(f"building {spec.name} in {image} (glibc {root.glibc_version})")
    started = time.monotonic()
    temp = Path(tempfile.mkdtemp(prefix=f".tmp-{final.name}-", dir=cache.builds))
    try:
        rc, output = _compile(spec, image, temp)
        _write_log(temp / reproducers.LOG_NAME, spec, root, image, rc, output)
        if rc != 0 or not (temp / spec.name).is_file():
            failed_log = cache.builds / f"{final.name}.failed.log"
            os.replace(temp / reproducers.LOG_NAME, failed_log)
            why = f"timed out after {reproducers.BUILD_TIMEOUT:.0f}s" if rc is None else f"exit status {rc}"
            raise LdmatrixError(f"building {spec.name} in {image} failed ({why}); log: {failed_log}")
        try:
            os.rename(temp, final)
        except OSError:
            if not (final / spec.name).is_file():  # not a concurrent build that won the race
                raise
    finally:
        shutil.rmtree(temp, ignore_errors=True)
    progress.step(f"built {spec.name} for {root.suite} in a container in {time.monotonic() - started:.1f}s")
    return reproducers._built(spec, root, final)
