"""The docker runner: each cell in a fresh container of its root's image (see harness/images.py).

No network, the root file system read-only, the cell's mounts bound (read-only unless writable),
a fresh tmpfs at /tmp, memory and pid limits, a timeout. The container runs detached; stdout and
stderr are read apart from its logs; it is always removed (also on failure and Ctrl-C).

Two things Docker does that the sandbox does not, and what is done about them:
- Docker rewrites the environment: PATH is moved first, HOSTNAME inserted second. nix-ld 1.x's
  bug depends on envp order, so the command is wrapped in the root's own ``env -i K=V ... argv``
  (busybox in the NixOS-like root, /usr/bin/env in an FHS root), which hands the program exactly
  ``prepared.env`` in order, plus PWD as bubblewrap sets it (its --chdir sets PWD: in place if
  present, else appended last), so both runners hand over the same envp. ``env`` execs the program: no process in between.
- Without an init the program would be pid 1, which the kernel shields from default-action
  signals; ``init=True`` (docker-init) makes it pid 2, like under bubblewrap, and reports a
  signal death as 128+n, which is what bwrap returns too.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from harness import command_script, docker_engine, images
from harness.environments import with_pwd
from harness.model import CommandResult, Mount, PreparedCell, RootKind, RootSpec

MEM_LIMIT = "1g"
PIDS_LIMIT = 512
TMPFS_OPTIONS = "rw,nosuid,nodev,size=256m"
FHS_ENV = "/usr/bin/env"
HOSTNAME = "ldmatrix"


@dataclass(frozen=True)
class ContainerSpec:
    """One command in one container: what run_container needs."""

    image: str
    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...]
    cwd: str
    mounts: tuple[Mount, ...]
    timeout: float
    labels: dict[str, str] = field(default_factory=dict)


def env_wrapper(root: RootSpec) -> tuple[str, ...]:
    """The root's own ``env`` program, to set the environment exactly and in order."""
    if root.kind is RootKind.FHS:
        return (FHS_ENV,)
    shell = next(p for p in root.store_paths if p.name == "busybox")
    return (f"{shell.store_path}/bin/busybox", "env")


def exact_env_argv(root: RootSpec, argv: tuple[str, ...], env: tuple[tuple[str, str], ...]) -> list[str]:
    return [*env_wrapper(root), "-i", *(f"{key}={value}" for key, value in env), *argv]


def docker_mounts(mounts: tuple[Mount, ...]) -> list:
    from docker.types import Mount as DockerMount

    return [DockerMount(m.target, str(m.host), type="bind", read_only=not m.writable) for m in mounts]


def docker_cli_argv(spec: ContainerSpec) -> list[str]:
    """The ``docker run`` command line that makes the container ``_create`` makes, for ``command.sh``."""
    argv = ["docker", "run", "--rm", "--init", "--network", "none", "--read-only", "--hostname", HOSTNAME,
            "--memory", MEM_LIMIT, "--pids-limit", str(PIDS_LIMIT), "--tmpfs", f"/tmp:{TMPFS_OPTIONS}",
            "--workdir", spec.cwd]
    for mount in spec.mounts:
        argv += ["--mount", f"type=bind,source={mount.host},target={mount.target}"
                 + ("" if mount.writable else ",readonly")]
    for key, value in {**docker_engine.LABELS, **spec.labels}.items():
        argv += ["--label", f"{key}={value}"]
    for key, value in spec.env:
        argv += ["--env", f"{key}={value}"]
    return [*argv, spec.image, *spec.argv]


def _create(spec: ContainerSpec):
    return docker_engine.client().containers.create(
        spec.image,
        command=list(spec.argv),
        environment=[f"{k}={v}" for k, v in spec.env],
        working_dir=spec.cwd,
        hostname=HOSTNAME,
        network_mode="none",
        mounts=docker_mounts(spec.mounts),
        tmpfs={"/tmp": TMPFS_OPTIONS},
        read_only=True,
        mem_limit=MEM_LIMIT,
        pids_limit=PIDS_LIMIT,
        init=True,
        labels={**docker_engine.LABELS, **spec.labels},
        detach=True,
    )


def _wait(container, timeout: float) -> tuple[int, bool]:
    """(exit status, timed out); kills the container when the timeout passes."""
    import requests

    try:
        return int(container.wait(timeout=timeout)["StatusCode"]), False
    except (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError):
        container.kill()
        return int(container.wait(timeout=30)["StatusCode"]), True


def _logs(container) -> tuple[str, str]:
    """stdout and stderr, apart; a container removed meanwhile (runner closed) says so."""
    import docker.errors

    try:
        out = container.logs(stdout=True, stderr=False).decode(errors="replace")
        err = container.logs(stdout=False, stderr=True).decode(errors="replace")
    except (docker.errors.NotFound, docker.errors.APIError):  # 404 gone, 409 dead or being removed
        return "", "ldmatrix: the container was removed before it finished (run interrupted)\n"
    return out, err


def remove_container(container) -> None:
    import docker.errors

    try:
        container.remove(force=True)
    except docker.errors.NotFound:
        pass
    except docker.errors.APIError as err:
        if err.status_code != 409:  # 409: a removal already in progress (close() from another thread)
            raise


def run_container(spec: ContainerSpec, on_create=None, on_remove=None) -> CommandResult:
    """Run ``spec`` detached, wait, read stdout and stderr apart, always remove the container.

    A failure at start (OCI runtime create failed: the command cannot be executed) becomes
    rc 127 with the engine's message as stderr, as a shell reports a command it cannot run.
    """
    import docker.errors

    start = time.monotonic()
    container = _create(spec)
    if on_create:
        on_create(container)
    try:
        try:
            container.start()
        except docker.errors.APIError as err:
            return CommandResult(127, "", f"{err.explanation or err}\n", time.monotonic() - start)
        rc, timed_out = _wait(container, spec.timeout)
        duration = time.monotonic() - start
        out, err_text = _logs(container)
        return CommandResult(rc, out, err_text, duration, timed_out)
    finally:
        remove_container(container)
        if on_remove:
            on_remove(container)


class DockerRunner:
    name = "docker"

    def __init__(self) -> None:
        self._live: dict[str, object] = {}
        self._lock = threading.Lock()

    def unavailable(self) -> str | None:
        return docker_engine.unavailable()

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
