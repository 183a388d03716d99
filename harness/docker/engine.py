"""Reaching the Docker engine: one client per process, and one-line reasons when it cannot be reached."""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING

from harness.errors import RunnerUnavailable

if TYPE_CHECKING:
    import docker

LABEL = "ldmatrix"  # every image and container of ours carries ldmatrix=1
LABELS = {LABEL: "1"}
DEFAULT_URL = "unix:///var/run/docker.sock"

_lock = threading.Lock()
_client: docker.DockerClient | None = None


def engine_url() -> str:
    return os.environ.get("DOCKER_HOST") or DEFAULT_URL


def explain(err: BaseException) -> str:
    """One line saying what to do about a failed connection to the engine."""
    text = str(err)
    url = engine_url()
    if isinstance(err, PermissionError) or "Permission denied" in text or "EACCES" in text:
        return (f"permission denied on the Docker socket {url}: add this user to the docker group "
                f"(usermod -aG docker $USER, then log in again) or run as root")
    if "No module named" in text:
        return "the Python docker SDK is missing: pip install 'docker>=7'"
    return f"cannot reach the Docker engine at {url}: start it (systemctl start docker) or set DOCKER_HOST"


def _connect() -> docker.DockerClient:
    try:
        import docker
    except ImportError as err:
        raise RunnerUnavailable(explain(err)) from None
    try:
        client = docker.from_env(timeout=600)
        client.ping()
    except Exception as err:  # noqa: BLE001 - DockerException wraps socket errors; the cause says which
        cause = err.__cause__ or err.__context__ or err
        raise RunnerUnavailable(explain(cause if "Permission" in str(cause) else err)) from None
    return client


def client() -> docker.DockerClient:
    """The shared client; raises RunnerUnavailable with a one-line reason."""
    global _client  # noqa: PLW0603 - one client per process, made on first use
    with _lock:
        if _client is None:
            _client = _connect()
        return _client


def unavailable() -> str | None:
    try:
        client()
    except RunnerUnavailable as err:
        return str(err)
    return None
