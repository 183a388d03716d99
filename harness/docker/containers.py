"""Containers left by a killed run: every container of ours names the run that made it, and any
whose run is gone is removed (at the start of every docker run, and by ``ldmatrix images prune``).

A run is named by its host, pid and the pid's start time (so a reused pid is not taken for the
run). A container of this host whose run is gone is removed at once; one of another host, or one
made before containers were labelled, only when older than ``STALE_AGE``.
"""

from __future__ import annotations

import os
import socket
import time
from datetime import datetime

from harness.docker import engine as docker_engine
from harness.root.processes import process_start

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
    from harness.runners.docker import remove_container

    removed = []
    for container in leftovers():
        remove_container(container)
        removed.append(container.name)
    return removed
