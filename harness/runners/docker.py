"""The docker runner: each cell in a fresh container of its root's image (see harness/docker/images.py).

As a NixOS user (uid 1000, gid 100) without capabilities, no network, the root file system
read-only, the cell's mounts bound (read-only unless writable), a bounded tmpfs at /tmp and one
at HOME (owned by the cell user, as each directory in it, the harness's files bound read-only:
harness/root/cell_home.py), the memory, pid and output limits of harness.root.limits, a timeout. stdout and stderr are read apart as
they come (attached before the start, no daemon log), each kept up to the same bound as in the
sandbox, so both runners agree on a cell with huge output; the container is always removed
(also on failure and Ctrl-C), and one left by a killed run is removed by the next
(harness/docker/containers.py).

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

from harness import interrupt
from harness.results import command_script
from harness.docker import images
from harness.docker import engine as docker_engine
from harness.root.cell_home import layout
from harness.root.environments import with_pwd
from harness.root.limits import CELL, CELL_GID, CELL_UID, Limits, give_to_cell_user
from harness.model import CommandResult, Mount, PreparedCell, RootKind, RootSpec
from harness.runners.output import Bounded

TMPFS_OPTIONS = "rw,nosuid,nodev"
FHS_ENV = "/usr/bin/env"
HOSTNAME = "ldmatrix"
READ_GRACE = 30.0  # seconds to finish reading output once the container has ended


@dataclass(frozen=True)
class ContainerSpec:
    """One command in one container: what run_container needs, and the one place its limits are set.

    Every container of ours (cells, builds, testinfra hosts) is made from one: uid 1000 / gid 100,
    no capabilities, no new privileges, no network, a read-only root, a bounded /tmp, memory and
    pid limits, and no log kept by the daemon (output is read as it comes, bounded).
    """

    image: str
    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...]
    cwd: str
    mounts: tuple[Mount, ...]
    timeout: float
    labels: dict[str, str] = field(default_factory=dict)
    limits: Limits = CELL
    user: str = f"{CELL_UID}:{CELL_GID}"


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


def laid_out(spec: ContainerSpec) -> tuple[list[Mount], dict[str, str]]:
    """The spec's mounts as the engine takes them: binds, and tmpfs mounts by target with their
    options: /tmp, and for a cell's HOME (``Mount.tmpfs``) HOME and each directory in it, owned by
    the cell user, with the host's files bound read-only into them."""
    limits = spec.limits
    uid, _, gid = spec.user.partition(":")
    binds: list[Mount] = []
    tmpfs = {"/tmp": f"{TMPFS_OPTIONS},size={limits.tmp}"}
    for mount in spec.mounts:
        if not mount.tmpfs:
            binds.append(mount)
            continue
        tree = layout(mount.host)
        for i, directory in enumerate(tree.targets(mount.target)):
            tmpfs[directory] = (f"{TMPFS_OPTIONS},size={limits.home},uid={uid},gid={gid or uid},"
                                "mode=0755")
        binds += [Mount(mount.host / rel, f"{mount.target}/{rel}") for rel in tree.files]
    return binds, tmpfs


def docker_cli_argv(spec: ContainerSpec) -> list[str]:
    """The ``docker run`` command line that makes the container ``create_container`` makes, for ``command.sh``."""
    limits = spec.limits
    binds, tmpfs = laid_out(spec)
    argv = ["docker", "run", "--rm", "--init", "--network", "none", "--read-only", "--hostname", HOSTNAME,
            "--user", spec.user, "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
            "--memory", str(limits.memory), "--memory-swap", str(limits.memory), "--pids-limit", str(limits.pids),
            "--ulimit", f"fsize={limits.file_size}", "--ulimit", "core=0", "--log-driver", "none",
            *(a for target, options in tmpfs.items() for a in ("--tmpfs", f"{target}:{options}")),
            "--workdir", spec.cwd]
    for mount in binds:
        argv += ["--mount", f"type=bind,source={mount.host},target={mount.target}"
                 + ("" if mount.writable else ",readonly")]
    for key, value in {**docker_engine.LABELS, **spec.labels}.items():
        argv += ["--label", f"{key}={value}"]
    for key, value in spec.env:
        argv += ["--env", f"{key}={value}"]
    return [*argv, spec.image, *spec.argv]


def create_container(spec: ContainerSpec):
    """The container of ``spec``, created (not started), labelled with this run (see harness.docker.containers)."""
    from docker.types import LogConfig

    from harness.docker.containers import owner_labels

    for mount in spec.mounts:
        if mount.writable:
            give_to_cell_user(mount.host)
    limits = spec.limits
    binds, tmpfs = laid_out(spec)
    return docker_engine.client().containers.create(
        spec.image,
        command=list(spec.argv),
        environment=[f"{k}={v}" for k, v in spec.env],
        working_dir=spec.cwd,
        hostname=HOSTNAME,
        user=spec.user,
        network_mode="none",
        mounts=docker_mounts(tuple(binds)),
        tmpfs=tmpfs,
        read_only=True,
        cap_drop=["ALL"],
        security_opt=["no-new-privileges"],
        mem_limit=limits.memory,
        memswap_limit=limits.memory,
        pids_limit=limits.pids,
        ulimits=[_ulimit("fsize", limits.file_size), _ulimit("core", 0)],
        log_config=LogConfig(type=LogConfig.types.NONE),
        init=True,
        labels={**docker_engine.LABELS, **owner_labels(), **spec.labels},
        detach=True,
    )


def _ulimit(name: str, value: int):
    from docker.types import Ulimit

    return Ulimit(name=name, soft=value, hard=value)


def _wait(container, timeout: float) -> tuple[int, bool]:
    """(exit status, timed out); kills the container when the timeout passes."""
    import requests

    try:
        return int(container.wait(timeout=timeout)["StatusCode"]), False
    except (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError):
        container.kill()
        return int(container.wait(timeout=30)["StatusCode"]), True


class _Reader:
    """The container's stdout and stderr, attached before it starts and read into bounds by a thread."""

    def __init__(self, container, limits: Limits) -> None:
        self.stdout, self.stderr = Bounded(limits.output, "stdout"), Bounded(limits.output, "stderr")
        self.failed: str | None = None
        self.stream = docker_engine.client().api.attach(container.id, stdout=True, stderr=True, stream=True,
                                                        logs=False, demux=True)
        self.thread = threading.Thread(target=self._read, name="ldmatrix-attach", daemon=True)
        self.thread.start()

    def _read(self) -> None:
        try:
            for out, err in self.stream:
                if out:
                    self.stdout.feed(out)
                if err:
                    self.stderr.feed(err)
        except Exception as err:  # noqa: BLE001 - the container went away under us: said below
            self.failed = f"{type(err).__name__}: {err}"

    def finish(self) -> tuple[str, int, str, int]:
        self.thread.join(READ_GRACE)
        if self.thread.is_alive():
            self.stream.close()
            self.thread.join(5)
        out, out_cut = self.stdout.result()
        err, err_cut = self.stderr.result()
        if self.failed:
            err += f"ldmatrix: reading the container's output failed ({self.failed})\n"
        return out, out_cut, err, err_cut


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
    """Run ``spec``, read stdout and stderr apart and bounded as they come, always remove the container.

    A failure at start (OCI runtime create failed: the command cannot be executed) becomes
    rc 127 with the engine's message as stderr, as a shell reports a command it cannot run.
    """
    import docker.errors

    start = time.monotonic()
    container = create_container(spec)
    if on_create:
        on_create(container)
    try:
        reader = _Reader(container, spec.limits)
        try:
            container.start()
        except docker.errors.APIError as err:
            reader.stream.close()
            return CommandResult(127, "", f"{err.explanation or err}\n", time.monotonic() - start)
        with interrupt.watch(container.kill) as stopped:  # Ctrl-C: killed now, not at the timeout
            rc, timed_out = _wait(container, spec.timeout)
        duration = time.monotonic() - start
        out, out_cut, err_text, err_cut = reader.finish()
        return CommandResult(rc, out, err_text, duration, timed_out, stdout_cut=out_cut, stderr_cut=err_cut,
                             interrupted=stopped())
    finally:
        remove_container(container)
        if on_remove:
            on_remove(container)


class DockerRunner:
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
