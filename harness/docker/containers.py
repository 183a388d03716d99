"""Containers of ours: one ``ContainerSpec`` per command, made, run, read and removed; and the
containers left by a killed run, found and removed.

A spec is rendered once (``arguments``), as the SDK's keywords for ``create_container`` and as the
``docker run`` command line ``command.sh`` holds (``docker_cli_argv``): the two cannot drift apart
(tests/test_docker.py parses the command line back and compares it with what the SDK was handed).

Every container of ours names the run that made it, and any whose run is gone is removed (at the
start of every docker run, and by ``ldmatrix images prune``). A run is named by its host, pid and
the pid's start time (so a reused pid is not taken for the run). A container of this host whose
run is gone is removed at once; one of another host, or one made before containers were labelled,
only when older than ``STALE_AGE``.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from harness import interrupt
from harness.docker import engine as docker_engine
from harness.model import CommandResult, Mount
from harness.root.cell_home import layout
from harness.root.limits import CELL, CELL_GID, CELL_UID, Limits, give_to_cell_user
from harness.root.processes import process_start
from harness.runners.output import Bounded

TMPFS_OPTIONS = "rw,nosuid,nodev"
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
        for _i, directory in enumerate(tree.targets(mount.target)):
            tmpfs[directory] = (f"{TMPFS_OPTIONS},size={limits.home},uid={uid},gid={gid or uid},"
                                "mode=0755")
        binds += [Mount(mount.host / rel, f"{mount.target}/{rel}") for rel in tree.files]
    return binds, tmpfs


def arguments(spec: ContainerSpec) -> dict[str, Any]:
    """The container's every option once, as plain values, in ``docker run``'s order: what
    ``create_container`` hands the SDK and ``docker_cli_argv`` writes for ``command.sh``."""
    limits = spec.limits
    binds, tmpfs = laid_out(spec)
    return {
        "init": True,
        "network_mode": "none",
        "read_only": True,
        "hostname": HOSTNAME,
        "user": spec.user,
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges"],
        "mem_limit": limits.memory,
        "memswap_limit": limits.memory,
        "pids_limit": limits.pids,
        "ulimits": [("fsize", limits.file_size), ("core", 0)],
        "log_driver": "none",
        "tmpfs": tmpfs,
        "working_dir": spec.cwd,
        "mounts": binds,
        "labels": {**docker_engine.LABELS, **spec.labels},
        "environment": [f"{k}={v}" for k, v in spec.env],
    }


def _pairs(flag: str, values: Iterable[str]) -> list[str]:
    return [part for value in values for part in (flag, value)]


# each SDK keyword as ``docker run`` flags: an argument without a flag here cannot be rendered
CLI_FLAGS: dict[str, Callable[[Any], list[str]]] = {
    "init": lambda on: ["--init"] if on else [],
    "network_mode": lambda mode: ["--network", mode],
    "read_only": lambda on: ["--read-only"] if on else [],
    "hostname": lambda name: ["--hostname", name],
    "user": lambda user: ["--user", user],
    "cap_drop": lambda caps: _pairs("--cap-drop", caps),
    "security_opt": lambda opts: _pairs("--security-opt", opts),
    "mem_limit": lambda n: ["--memory", str(n)],
    "memswap_limit": lambda n: ["--memory-swap", str(n)],
    "pids_limit": lambda n: ["--pids-limit", str(n)],
    "ulimits": lambda limits: _pairs("--ulimit", (f"{name}={value}" for name, value in limits)),
    "log_driver": lambda driver: ["--log-driver", driver],
    "tmpfs": lambda tmpfs: _pairs("--tmpfs", (f"{target}:{options}" for target, options in tmpfs.items())),
    "working_dir": lambda cwd: ["--workdir", cwd],
    "mounts": lambda binds: _pairs("--mount", (f"type=bind,source={m.host},target={m.target}"
                                               + ("" if m.writable else ",readonly") for m in binds)),
    "labels": lambda labels: _pairs("--label", (f"{k}={v}" for k, v in labels.items())),
    "environment": lambda env: _pairs("--env", env),
}


def docker_cli_argv(spec: ContainerSpec) -> list[str]:
    """The ``docker run`` command line that makes the container ``create_container`` makes, for ``command.sh``."""
    argv = ["docker", "run", "--rm"]  # --rm: run_container removes it itself
    for keyword, value in arguments(spec).items():
        argv += CLI_FLAGS[keyword](value)
    return [*argv, spec.image, *spec.argv]


def sdk_arguments(spec: ContainerSpec) -> dict[str, Any]:
    """``arguments(spec)`` as ``client.containers.create`` takes them (docker's own types), labelled
    with this run (``owner_labels``) so that a run that is gone can be told."""
    from docker.types import LogConfig, Ulimit

    given = arguments(spec)
    sdk = {k: v for k, v in given.items() if k not in ("mounts", "ulimits", "log_driver")}
    sdk["mounts"] = docker_mounts(tuple(given["mounts"]))
    sdk["ulimits"] = [Ulimit(name=name, soft=value, hard=value) for name, value in given["ulimits"]]
    sdk["log_config"] = LogConfig(type=given["log_driver"])
    sdk["labels"] = {**given["labels"], **owner_labels()}
    return sdk


def create_container(spec: ContainerSpec):
    """The container of ``spec``, created (not started), labelled with this run (``owner_labels``)."""
    for mount in spec.mounts:
        if mount.writable:
            give_to_cell_user(mount.host)
    return docker_engine.client().containers.create(spec.image, command=list(spec.argv), detach=True,
                                                    **sdk_arguments(spec))


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



STALE_AGE = 6 * 3600.0
HOST, PID, STARTED = "ldmatrix.run-host", "ldmatrix.run-pid", "ldmatrix.run-started"


def owner_labels() -> dict[str, str]:
    pid = os.getpid()
    return {HOST: socket.gethostname(), PID: str(pid), STARTED: process_start(pid) or "?"}


def run_alive(labels: dict[str, str]) -> bool | None:
    """Whether the run that made a container still exists; None when that cannot be told here."""
    if labels.get(HOST) != socket.gethostname() or not labels.get(PID, "").isdigit():
        return None
    return process_start(int(labels[PID])) == labels.get(STARTED)


def _age(container) -> float:
    created = container.attrs.get("Created", "")
    try:
        stamp = datetime.fromisoformat(created[:26].rstrip("Z") + "+00:00" if "." in created else
                                       created.replace("Z", "+00:00"))
    except ValueError:
        return 0.0
    return time.time() - stamp.timestamp()


def leftovers(now_alive=run_alive) -> list:
    """Our containers whose run is gone. Listed sparse, then inspected one by one: a container that
    another run removes in between (its own cells ending, its own pruning) is no leftover."""
    import docker.errors

    client = docker_engine.client()
    out = []
    for listed in client.containers.list(all=True, sparse=True, filters={"label": f"{docker_engine.LABEL}=1"}):
        if listed.id is None:
            continue
        try:
            container = client.containers.get(listed.id)
        except docker.errors.NotFound:
            continue
        alive = now_alive(container.labels or {})
        if alive is False or (alive is None and _age(container) > STALE_AGE):
            out.append(container)
    return out


def prune_containers() -> list[str]:
    """Remove the containers of runs that are gone; returns their names."""
    removed = []
    for container in leftovers():
        remove_container(container)
        removed.append(container.name)
    return removed
