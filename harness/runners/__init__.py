"""Runners: sandbox (bubblewrap, the default), docker, nixos-vm. One contract: harness.runners.base.Runner."""

from __future__ import annotations

from harness.errors import LdmatrixError
from harness.runners.base import Runner


def get_runner(name: str) -> Runner:
    if name == "sandbox":
        from harness.runners.sandbox import SandboxRunner

        return SandboxRunner()
    if name == "docker":
        from harness.runners.docker import DockerRunner

        return DockerRunner()
    if name == "nixos-vm":
        from harness.runners.nixos_vm import NixosVmRunner

        return NixosVmRunner()
    raise LdmatrixError(f"unknown runner {name!r} (allowed: sandbox, docker, nixos-vm)")
