"""Compile a reproducer inside the docker image of its build suite (``--runner docker``).

Same command, same inputs and same digest as harness/reproducers.py's bubblewrap build: the
sources read-only at /src, the output at /out, a clean environment, no network. The result is
cached next to the sandbox builds under ``<name>-<suite>-<digest>-docker/`` with its build.log, by
harness.reproducers.build itself: only the compiler differs.
"""

from __future__ import annotations

from pathlib import Path
from typing import TextIO

from harness import reproducers
from harness.cache import Cache
from harness.docker import images
from harness.docker.containers import ContainerSpec, run_container
from harness.model import BuildRoot, BuiltBinary, Mount
from harness.prepare import fhs_root
from harness.progress import Progress

BUILD_ENV = reproducers.BUILD_ENV
SUFFIX = "-docker"


def build_in_container(name: str, root: BuildRoot, cache: Cache, progress: Progress) -> BuiltBinary:
    """Like harness.reproducers.build, but the compiler runs in the suite's docker image."""

    def compile_in_container(spec: reproducers.ReproducerSpec, root: BuildRoot, out_dir: Path,
                             log: TextIO) -> int | None:
        image = images.ensure_image(fhs_root(root), progress)
        command = spec.compile_command()
        log.write(f"# docker image: {image}\n$ {' '.join(command)}\n")
        result = run_container(ContainerSpec(
            image=image, argv=command, env=BUILD_ENV, cwd="/tmp",
            mounts=(Mount(spec.project_dir, "/src"), Mount(out_dir, "/out", writable=True)),
            timeout=reproducers.BUILD_TIMEOUT, labels={"ldmatrix.build": spec.name},
        ))
        log.write(result.stdout + result.stderr)
        return None if result.timed_out else result.rc

    return reproducers.build(name, root, cache, progress, compiler=compile_in_container, variant=SUFFIX)
