"""Docker images of the harness's roots, tagged by content, built offline with ``docker import``.

- ``ldmatrix/nixos-root:<tag>``: the NixOS-like root of a GlibcSet: its store paths under
  /nix/store, /bin/sh -> busybox, empty /tmp, /home, /run, and no /lib, /lib64, /usr/lib.
- ``ldmatrix/fhs-<suite>:<tag>``: a Debian build root (the FHS root of the ``container`` strategy,
  and the image reproducers are compiled in).

The tag is a digest of the image's inputs (recipe, root kind, RootSpec.digest, links, store
basenames): an existing tag is reused, so a second run imports nothing. Every image carries the
label ``ldmatrix=1``, which is what ``list_images`` and ``prune`` look for. The tar stream is
written with ``tarfile`` straight from the directories (symbolic links stay links) through a pipe.

Registry images (``FROM gcc:<version>``, images/gcc/Dockerfile) are pinned by digest in
images/pins.json; ``refresh_pins`` asks the registry for the current digests.
"""

from __future__ import annotations

import hashlib
import json
import os
import tarfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from harness.cache import REPO_ROOT
from harness.docker import engine as docker_engine
from harness.errors import LdmatrixError
from harness.model import RootKind, RootSpec
from harness.progress import NullProgress, Progress

IMAGE_RECIPE = "1"  # bump when the layout of an image changes
NIXOS_REPOSITORY = "ldmatrix/nixos-root"
FHS_PREFIX = "ldmatrix/fhs-"
PINS_FILE = REPO_ROOT / "images" / "pins.json"
CHUNK = 1 << 20
# Top-level entries of a build root the container provides itself (or that stay empty).
FHS_EMPTY = ("home", "tmp", "run", "root")
FHS_SKIP = frozenset({"proc", "dev", "sys", "mnt", "media", *FHS_EMPTY})
NIXOS_EMPTY = ("tmp", "home", "run")


class ImageError(LdmatrixError):
    """An image cannot be found, imported or pinned; the message says what to do."""


# -- names ---------------------------------------------------------------------------------------

def suite_of(root: RootSpec) -> str:
    """The suite of an FHS root: build roots are cached as ``<suite>-<digest>``."""
    assert root.fhs_root is not None
    return root.fhs_root.name.rsplit("-", 1)[0]


def repository(root: RootSpec) -> str:
    return NIXOS_REPOSITORY if root.kind is RootKind.NIXOS else f"{FHS_PREFIX}{suite_of(root)}"


def image_tag(root: RootSpec) -> str:
    """24 hex chars over everything the image is made from."""
    parts = [IMAGE_RECIPE, root.kind.value, root.digest]
    parts += [p.basename for p in root.store_paths]
    parts += [f"{link.path}->{link.target}" for link in root.links]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:24]


def image_ref(root: RootSpec) -> str:
    return f"{repository(root)}:{image_tag(root)}"


# -- the tar stream ------------------------------------------------------------------------------

def _dir_info(name: str, mode: int = 0o755) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.mtime = tarfile.DIRTYPE, mode, 1
    return info


def _link_info(name: str, target: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode, info.mtime = tarfile.SYMTYPE, target, 0o777, 1
    return info


def _as_store(info: tarfile.TarInfo) -> tarfile.TarInfo:
    """Store paths belong to root and are read-only, as in a real /nix/store."""
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    info.mode &= ~0o222
    return info


def _write_nixos(tar: tarfile.TarFile, root: RootSpec) -> None:
    made: set[str] = set()

    def mkdirs(path: str) -> None:
        parts = path.strip("/").split("/")
        for i in range(1, len(parts) + 1):
            name = "/".join(parts[:i])
            if name not in made:
                made.add(name)
                tar.addfile(_dir_info(name, 0o1777 if name == "tmp" else 0o755))

    for name in (*NIXOS_EMPTY, "nix/store"):
        mkdirs(name)
    for path in root.store_paths:
        tar.add(path.host_path, arcname=path.store_path.lstrip("/"), filter=_as_store)
    for link in root.links:
        mkdirs(os.path.dirname(link.path))
        tar.addfile(_link_info(link.path.lstrip("/"), link.target))


def _write_fhs(tar: tarfile.TarFile, root: RootSpec) -> None:
    assert root.fhs_root is not None
    for name in FHS_EMPTY:
        tar.addfile(_dir_info(name, 0o1777 if name == "tmp" else 0o755))
    for entry in sorted(root.fhs_root.iterdir()):
        if entry.name not in FHS_SKIP:
            tar.add(entry, arcname=entry.name)


def write_root_tar(root: RootSpec, fileobj) -> None:
    """Write the root's file system as an uncompressed tar stream to ``fileobj``."""
    with tarfile.open(fileobj=fileobj, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        (_write_nixos if root.kind is RootKind.NIXOS else _write_fhs)(tar, root)


def tar_chunks(root: RootSpec) -> Iterator[bytes]:
    """The root's tar stream in chunks, written by a thread into a pipe (constant memory)."""
    read_fd, write_fd = os.pipe()
    failure: list[BaseException] = []

    def produce() -> None:
        try:
            with os.fdopen(write_fd, "wb") as out:
                write_root_tar(root, out)
        except BaseException as err:  # noqa: BLE001 - reported by the consumer, whatever it was
            failure.append(err)

    thread = threading.Thread(target=produce, name="ldmatrix-tar", daemon=True)
    thread.start()
    with os.fdopen(read_fd, "rb") as source:
        while chunk := source.read(CHUNK):
            yield chunk
    thread.join()
    if failure:
        raise ImageError(f"cannot write the image tar of {root.fhs_root or root.digest}: {failure[0]}")


# -- import, list, prune -------------------------------------------------------------------------

_import_lock = threading.Lock()


def find_image(ref: str):
    import docker.errors

    try:
        return docker_engine.client().images.get(ref)
    except docker.errors.ImageNotFound:
        return None


def _changes(root: RootSpec) -> list[str]:
    labels = {**docker_engine.LABELS, "ldmatrix.kind": root.kind.value, "ldmatrix.root-digest": root.digest}
    if root.kind is RootKind.FHS:
        labels["ldmatrix.suite"] = suite_of(root)
    return [f"LABEL {key}={value}" for key, value in labels.items()]


def ensure_image(root: RootSpec, progress: Progress | None = None) -> str:
    """The image of ``root`` (imported now if its content tag is not there yet); returns its ref."""
    progress = progress or NullProgress()
    ref = image_ref(root)
    with _import_lock:  # cells run in threads; import each image once
        if find_image(ref) is not None:
            return ref
        source = root.fhs_root if root.kind is RootKind.FHS else ", ".join(p.basename for p in root.store_paths)
        progress.step(f"docker import {ref} from {source}")
        started = time.monotonic()
        client = docker_engine.client()
        try:
            client.api.import_image_from_stream(tar_chunks(root), repository=repository(root),
                                                tag=image_tag(root), changes=_changes(root))
        except ImageError:
            raise
        except Exception as err:  # noqa: BLE001 - the SDK raises docker's and requests' errors: one line
            raise ImageError(f"docker import of {ref} failed: {err}") from None
        if find_image(ref) is None:
            raise ImageError(f"docker import of {ref} reported success but the image is missing; "
                             f"check `docker images {repository(root)}`")
        progress.step(f"imported {ref} in {time.monotonic() - started:.1f}s")
    return ref


@dataclass(frozen=True)
class ImageInfo:
    ref: str
    id: str
    size: int
    created: str
    kind: str


def list_images() -> list[ImageInfo]:
    images = docker_engine.client().images.list(filters={"label": f"{docker_engine.LABEL}=1"})
    out = []
    for image in images:
        labels = image.labels or {}
        for ref in image.tags or [f"<untagged>@{image.short_id}"]:
            out.append(ImageInfo(ref, image.short_id, image.attrs.get("Size", 0), image.attrs.get("Created", ""),
                                 labels.get("ldmatrix.kind", "?")))
    return sorted(out, key=lambda i: i.ref)


def prune(keep: set[str] = frozenset()) -> list[str]:  # type: ignore[assignment]
    """Remove every ldmatrix image whose ref is not in ``keep``; returns the removed refs."""
    client = docker_engine.client()
    removed = []
    for info in list_images():
        if info.ref in keep:
            continue
        client.images.remove(info.ref if not info.ref.startswith("<untagged>") else info.id, force=False)
        removed.append(info.ref)
    return removed


# -- registry pins ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Pin:
    image: str  # "gcc:12"
    suite: str  # the Debian suite the image is based on
    digest: str | None  # "sha256:..."; None until `ldmatrix images pin` ran where a registry is reachable

    @property
    def pinned_ref(self) -> str:
        if self.digest is None:
            raise ImageError(f"{PINS_FILE}: {self.image} has no digest; run `ldmatrix images pin` "
                             f"on a machine that can reach the registry")
        return f"{self.image.split(':', 1)[0]}@{self.digest}"


def load_pins(path: Path = PINS_FILE) -> dict[str, Pin]:
    """suite -> Pin, from images/pins.json."""
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ImageError(f"{path}: cannot read the image pins: {err}") from None
    return {suite: Pin(entry["image"], suite, entry.get("digest")) for suite, entry in data["pins"].items()}


def refresh_pins(path: Path = PINS_FILE, progress: Progress | None = None) -> dict[str, Pin]:
    """Ask the registry for each pinned image's current digest and rewrite the pins file."""
    progress = progress or NullProgress()
    client = docker_engine.client()
    data = json.loads(path.read_text())
    for entry in data["pins"].values():
        progress.step(f"registry digest of {entry['image']}")
        try:
            entry["digest"] = client.images.get_registry_data(entry["image"]).id
        except Exception as err:  # noqa: BLE001 - the SDK raises docker's and requests' errors: one line
            raise ImageError(f"cannot reach the registry for {entry['image']} ({err}); pins left unchanged, "
                             f"offline runs use `docker import` of the build roots instead") from None
    data["refreshed"] = time.strftime("%Y-%m-%d")
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    return load_pins(path)


def build_registry_image(suite: str, progress: Progress | None = None) -> str:
    """``ldmatrix/gcc-<suite>:<digest>`` from images/gcc/Dockerfile on the pinned gcc image (needs a registry)."""
    progress = progress or NullProgress()
    pin = load_pins()[suite]
    dockerfile = REPO_ROOT / "images" / "gcc"
    tag = hashlib.sha256(f"{pin.pinned_ref}\0{(dockerfile / 'Dockerfile').read_text()}".encode()).hexdigest()[:24]
    ref = f"ldmatrix/gcc-{suite}:{tag}"
    if find_image(ref) is None:
        progress.step(f"docker build {ref} FROM {pin.pinned_ref}")
        try:
            docker_engine.client().images.build(path=str(dockerfile), tag=ref, buildargs={"BASE": pin.pinned_ref},
                                                labels=dict(docker_engine.LABELS), rm=True, pull=False)
        except Exception as err:  # noqa: BLE001 - the SDK raises docker's and requests' errors: one line
            raise ImageError(f"docker build {ref} failed ({err}); offline, the build roots are imported instead "
                             f"(`ldmatrix images build`)") from None
    return ref
