"""pytest-testinfra hosts for the roots a cell runs in, under either runner.

- ``sandbox_host(prepared)``: our testinfra backend ``ldmatrix-sandbox://<key>``; every command
  runs as ``/bin/sh -c`` in a fresh bubblewrap tree (harness.runners.sandbox.run_cell),
  the very tree the cell runs in (root, mounts, environment).
- ``docker_host(prepared)``: testinfra's own docker backend against a long-running container of
  the root's image (the cell's mounts bound, ``busybox sleep`` in the NixOS-like root, which has
  no sleep of its own); the container is removed when the ``with`` block ends.

The backend is registered in ``testinfra.backend.BACKENDS`` under its URL scheme, so
``testinfra.get_host("ldmatrix-sandbox://<key>")`` works once a root is registered under ``key``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import testinfra
import testinfra.backend
from testinfra.backend import base

from harness.root.environments import HOME, login_environment
from harness.model import Cell, Mount, PreparedCell, RootKind, RootSpec, Strategy
from harness.runners.sandbox import run_cell

SCHEME = "ldmatrix-sandbox"
COMMAND_TIMEOUT = 60.0

_roots: dict[str, PreparedCell] = {}
_roots_lock = threading.Lock()


class SandboxBackend(base.BaseBackend):
    """Runs each command through bubblewrap in the tree of a registered PreparedCell."""

    NAME = SCHEME

    def __init__(self, name: str, *args: Any, **kwargs: Any):
        with _roots_lock:
            if name not in _roots:
                raise RuntimeError(f"{SCHEME}://{name}: no root registered under {name!r}; "
                                   f"use testinfra_backend.sandbox_host(prepared)")
            self.prepared = _roots[name]
        super().__init__(name, *args, **kwargs)

    def run(self, command: str, *args: str, **kwargs: Any) -> base.CommandResult:
        cmd = self.get_command(command, *args)
        cell = dataclasses.replace(self.prepared, argv=("/bin/sh", "-c", cmd))
        result = run_cell(dataclasses.replace(cell, timeout=COMMAND_TIMEOUT))  # the cell's own sandbox and limits
        return self.result(result.rc, self.encode(cmd), result.stdout.encode(), result.stderr.encode())


def register_backend() -> None:
    """Make ``ldmatrix-sandbox://`` known to testinfra.backend.get_backend (idempotent)."""
    testinfra.backend.BACKENDS.setdefault(SCHEME, f"{__name__}.SandboxBackend")


def register_root(prepared: PreparedCell) -> str:
    """Register ``prepared`` and return its host spec, ``ldmatrix-sandbox://<key>``."""
    key = hashlib.sha256(repr(prepared).encode()).hexdigest()[:16]
    with _roots_lock:
        _roots[key] = prepared
    return f"{SCHEME}://{key}"


def sandbox_host(prepared: PreparedCell) -> testinfra.host.Host:
    register_backend()
    return testinfra.get_host(register_root(prepared))


def bare_root(root: RootSpec, workdir: Path, mounts: tuple[Mount, ...] = ()) -> PreparedCell:
    """A PreparedCell for the root alone (no binary, no strategy): a host for the root's own state."""
    home = workdir / "home"
    home.mkdir(parents=True, exist_ok=True)
    fhs = root.kind is RootKind.FHS
    cell = Cell(binary="root", strategy=(Strategy.CONTAINER if fhs else Strategy.NONE,), glibc="-")
    return PreparedCell(cell=cell, root=root, mounts=(Mount(home, HOME, writable=True, tmpfs=True), *mounts),
                        argv=("/bin/sh",), env=login_environment("nixos-login", fhs=fhs), cwd=HOME,
                        timeout=COMMAND_TIMEOUT, workdir=workdir)


def sleep_argv(prepared: PreparedCell) -> list[str]:
    """A command that keeps the container alive, from the root's own programs."""
    if prepared.root.kind is RootKind.FHS:
        return ["/bin/sleep", "infinity"]
    shell = next(p for p in prepared.root.store_paths if p.name == "busybox")
    return [f"{shell.store_path}/bin/busybox", "sleep", "2147483647"]


@contextmanager
def docker_host(prepared: PreparedCell) -> Iterator[testinfra.host.Host]:
    """A testinfra host for a running container of the cell's root (removed at the end)."""
    from harness.docker import images
    from harness.docker.containers import ContainerSpec, create_container, remove_container

    container = create_container(ContainerSpec(
        image=images.ensure_image(prepared.root), argv=tuple(sleep_argv(prepared)), env=prepared.env,
        cwd=prepared.cwd, mounts=prepared.mounts, timeout=COMMAND_TIMEOUT,
        labels={"ldmatrix.testinfra": prepared.cell.id}))  # the cells' own limits, user and capabilities
    try:
        container.start()
        yield testinfra.get_host(f"docker://{container.id}")
    finally:
        remove_container(container)
