"""Runners: sandbox (bubblewrap, the default), docker, nixos-vm. One contract: harness.runners.base.Runner.

``RUNNERS`` names them (a matrix's ``runner:`` and ``--runner`` are checked against it);
``get_runner(name)`` makes one, importing its module only then.
"""

from __future__ import annotations

import importlib

from harness.errors import LdmatrixError
from harness.runners.base import Runner

# name -> (module, class), in the order they are offered
REGISTRY: dict[str, tuple[str, str]] = {
    "sandbox": ("harness.runners.sandbox", "SandboxRunner"),
    "docker": ("harness.runners.docker", "DockerRunner"),
    "nixos-vm": ("harness.runners.nixos_vm", "NixosVmRunner"),
}
RUNNERS = tuple(REGISTRY)


def get_runner(name: str) -> Runner:
    if name not in REGISTRY:
        raise LdmatrixError(f"unknown runner {name!r} (allowed: {', '.join(RUNNERS)})")
    module, cls = REGISTRY[name]
    runner: Runner = getattr(importlib.import_module(module), cls)()
    return runner
