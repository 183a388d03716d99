"""The docker runner: each cell in a fresh container of its root's image (see harness/docker/images.py).

As a NixOS user (uid 1000, gid 100) without capabilities, no network, the root file system
read-only, the cell's mounts bound (read-only unless writable), a bounded tmpfs at /tmp and one
at HOME (owned by the cell user, as each directory in it, the harness's files bound read-only:
harness/root/cell_home.py), the memory, pid and output limits of harness.root.limits, a timeout.
stdout and stderr are read apart as they come (attached before the start, no daemon log), each kept
up to the same bound as in the
sandbox, so both runners agree on a cell with huge output; the container is always removed
(also on failure and Ctrl-C), and one left by a killed run is removed by the next
(harness/docker/containers.py).

Two things Docker does that the sandbox does not, and what is done about them:
- Docker rewrites the environment: PATH is moved first, HOSTNAME inserted second. nix-ld 1.x's
  bug depends on envp order, so the command is wrapped in the root's own ``env -i K=V ... argv``
  (busybox in the NixOS-like root, /usr/bin/env in an FHS root), which hands the program exactly
  ``prepared.env`` in order, plus PWD as bubblewrap sets it (its --chdir sets PWD: in place if
  present, else appended last), so both runners hand over the same envp. ``env`` execs the program:
  no process in between.
- Without an init the program would be pid 1, which the kernel shields from default-action
  signals; ``init=True`` (docker-init) makes it pid 2, like under bubblewrap, and reports a
  signal death as 128+n, which is what bwrap returns too.
"""

from __future__ import annotations

import threading

from harness.cache import Cache
from harness.docker import engine as docker_engine
from harness.docker import images
from harness.docker.containers import ContainerSpec, docker_cli_argv, remove_container, run_container
from harness.model import BuildRoot, BuiltBinary, CommandResult, PreparedCell, RootKind, RootSpec
from harness.progress import Progress
from harness.results import command_script
from harness.root.environments import with_pwd
from harness.runners.base import Runner

FHS_ENV = "/usr/bin/env"


def env_wrapper(root: RootSpec) -> tuple[str, ...]:
    """The root's own ``env`` program, to set the environment exactly and in order."""
    if root.kind is RootKind.FHS:
        return (FHS_ENV,)
    shell = next(p for p in root.store_paths if p.name == "busybox")
    return (f"{shell.store_path}/bin/busybox", "env")


def exact_env_argv(root: RootSpec, argv: tuple[str, ...], env: tuple[tuple[str, str], ...]) -> list[str]:
    return [*env_wrapper(root), "-i", *(f"{key}={value}" for key, value in env), *argv]


class DockerRunner(Runner):
    name = "docker"

    def __init__(self) -> None:
        self._live: dict[str, object] = {}
        self._lock = threading.Lock()
        self._swept = False

    def unavailable(self) -> str | None:
        reason = docker_engine.unavailable()
        if reason is None and not self._swept:
            from harness.docker.containers import prune_containers

            self._swept = True
            prune_containers()  # containers left by killed runs
        return reason

    def container_spec(self, prepared: PreparedCell) -> ContainerSpec:
        return ContainerSpec(
            image=images.ensure_image(prepared.root),
            argv=tuple(exact_env_argv(prepared.root, prepared.argv, with_pwd(prepared.env, prepared.cwd))),
            env=prepared.env,
            cwd=prepared.cwd,
            mounts=prepared.mounts,
            timeout=prepared.timeout,
            labels={"ldmatrix.cell": prepared.cell.id},
        )

    def run(self, prepared: PreparedCell) -> CommandResult:
        spec = self.container_spec(prepared)
        command_script.write(prepared, docker_cli_argv(spec), runner=self.name)
        return run_container(spec, on_create=self._track, on_remove=self._untrack)

    def build_reproducer(self, name: str, root: BuildRoot, cache: Cache, progress: Progress) -> BuiltBinary:
        """Compiled inside the gcc image of the suite (harness/docker/build.py)."""
        from harness.docker.build import build_in_container

        return build_in_container(name, root, cache, progress)

    def _track(self, container) -> None:
        with self._lock:
            self._live[container.id] = container

    def _untrack(self, container) -> None:
        with self._lock:
            self._live.pop(container.id, None)

    def close(self) -> None:
        """Remove every container this runner still has (a run interrupted mid-way)."""
        with self._lock:
            live = list(self._live.values())
            self._live.clear()
        for container in live:
            remove_container(container)
