"""The program inside an artifact: a member of a wheel or zip, a tarball or a Debian package, or the
downloaded file itself; symbolic links inside the artifact are followed (``usr/bin/x -> ../lib/x/x``).

The artifact is installed whole (harness/artifacts/tree.py); its program must be a dynamically
linked x86_64 ELF program: a path that is not there names the artifact's nearest paths, a file that
is not such a program says what it is instead.

What an archive unpacks to is bounded: at most ``MAX_PROGRAM_BYTES`` in all, and beyond
``RATIO_FLOOR`` at most ``MAX_RATIO`` times the archive's own size (a zip bomb: 3 MB of zip that
unpacks to 3 GiB of zeros). Each member's declared size is checked before a byte of it is written,
and the copy counts what it writes all the same.
"""

from __future__ import annotations

import difflib
import os
import posixpath
import stat
import tarfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

from harness.errors import LdmatrixError
from harness.loader import elf

from .spec import Artifact, Kind, Where

ELF_MAGIC = b"\x7fELF"
MAX_LINKS = 16
SHOWN = 4  # near paths named in an error
MAX_PROGRAM_BYTES = 1 << 30  # the largest program taken out of an archive
MAX_RATIO = 100  # beyond RATIO_FLOOR, a program at most this many times its archive's size
RATIO_FLOOR = 16 << 20
COPY_CHUNK = 1 << 20


@dataclass(frozen=True)
class Member:
    kind: str  # "f" file, "l" symbolic link, "h" hard link (target relative to the archive's top)
    target: str = ""
    size: int = 0  # a file's size as the archive declares it
    mode: int = 0o644  # permission bits as the archive gives them (a tree installed whole keeps x)


@dataclass
class Tree:
    """An artifact's paths (normalized, relative) and how to read a file's bytes."""

    label: str  # for messages: "uv-0.1.17-py3-none-....whl"
    members: dict[str, Member]
    open: Callable[[str], IO[bytes]]


def _norm(name: str) -> str:
    parts = [p for p in PurePosixPath(name.lstrip("/")).parts if p not in (".", "")]
    return str(PurePosixPath(*parts)) if parts else ""


def zip_tree(path: Path, label: str) -> Tree:
    archive = zipfile.ZipFile(path)
    members: dict[str, Member] = {}
    by_name: dict[str, zipfile.ZipInfo] = {}
    for info in archive.infolist():
        name = _norm(info.filename)
        if not name or info.is_dir():
            continue
        by_name[name] = info
        if stat.S_ISLNK(info.external_attr >> 16):
            members[name] = Member("l", archive.read(info).decode("utf-8", "replace"))
        else:
            members[name] = Member("f", size=info.file_size, mode=(info.external_attr >> 16) & 0o777 or 0o644)
    return Tree(label, members, lambda name: archive.open(by_name[name]))


def tar_tree(path: Path, label: str) -> Tree:
    archive = tarfile.open(path, "r:*")  # noqa: SIM115 - kept open while the tree is read
    members: dict[str, Member] = {}
    by_name: dict[str, tarfile.TarInfo] = {}
    for info in archive.getmembers():
        name = _norm(info.name)
        if not name:
            continue
        if info.issym():
            members[name] = Member("l", info.linkname)
        elif info.islnk():
            members[name] = Member("h", _norm(info.linkname))
        elif info.isfile():
            members[name] = Member("f", size=info.size, mode=info.mode & 0o777)
        else:
            continue
        by_name[name] = info

    def open_member(name: str) -> IO[bytes]:
        fh = archive.extractfile(by_name[name])
        if fh is None:
            raise LdmatrixError(f"{label}: {name} cannot be read")
        return fh

    return Tree(label, members, open_member)


def dir_tree(top: Path, label: str) -> Tree:
    """An unpacked Debian package."""
    members: dict[str, Member] = {}
    for dirpath, dirnames, filenames in os.walk(top):
        for name in [*dirnames, *filenames]:
            full = Path(dirpath) / name
            rel = str(full.relative_to(top))
            if full.is_symlink():
                members[rel] = Member("l", os.readlink(full))
            elif full.is_file():
                members[rel] = Member("f", size=full.stat().st_size, mode=full.stat().st_mode & 0o777)
    return Tree(label, members, lambda name: (top / name).open("rb"))


def _follow(tree: Tree, name: str, where: Where) -> str:
    """The file ``name`` is, after the artifact's own links; an error names the nearest paths."""
    seen: list[str] = []
    current = name
    for _ in range(MAX_LINKS):
        member = tree.members.get(current)
        if member is None:
            if seen:
                raise where.error(f"{name} in {tree.label} is a link to {current}, which is not in it")
            if any(n.startswith(f"{current}/") for n in tree.members):
                raise where.error(f"{name} is a directory in {tree.label}, not a program{_near(tree, name)}")
            raise where.error(f"{name} is not in {tree.label}{_near(tree, name)}")
        if member.kind == "f":
            return current
        seen.append(current)
        if member.kind == "h":
            current = member.target
            continue
        target = member.target
        joined = target if target.startswith("/") else posixpath.join(posixpath.dirname(current), target)
        normalized = posixpath.normpath("/" + joined.lstrip("/")) if target.startswith("/") \
            else posixpath.normpath(joined)
        if normalized.startswith(".."):
            raise where.error(f"{name} in {tree.label} is a link that leaves it ({current} -> {target})")
        current = _norm(normalized)
    raise where.error(f"{name} in {tree.label}: more than {MAX_LINKS} links in a row")


def _near(tree: Tree, name: str) -> str:
    files = sorted(n for n, m in tree.members.items() if m.kind != "d")
    base = PurePosixPath(name).name
    same_name = [n for n in files if PurePosixPath(n).name == base]
    close = difflib.get_close_matches(name, files, n=SHOWN, cutoff=0.5)
    near = list(dict.fromkeys([*same_name, *close]))[:SHOWN]
    if not near:
        near = [n for n in files if "/bin/" in f"/{n}" or "/scripts/" in n][:SHOWN]
    return f"; near: {', '.join(near)} ({len(files)} files in all)" if near else f" ({len(files)} files in all)"


def open_tree(artifact: Artifact, file: Path, label: str, scratch: Path, where: Where) -> Tree | None:
    """The artifact as a tree of paths, or None when the file is the program itself."""
    if artifact.kind is Kind.DEB:
        from harness.provision.store import unpack

        top = scratch / "deb"
        unpack(file, top)
        return dir_tree(top, label)
    with file.open("rb") as fh:
        head = fh.read(4)
    if head == ELF_MAGIC:
        return None
    if zipfile.is_zipfile(file):
        return zip_tree(file, label)
    try:
        if tarfile.is_tarfile(file):
            return tar_tree(file, label)
    except (OSError, tarfile.TarError):
        pass
    if artifact.kind is Kind.WHEEL:
        raise where.error(f"{label} is not a wheel (not a zip file)")
    what = "a script" if head[:2] == b"#!" else "neither an ELF file nor a zip or tar archive"
    raise where.error(f"{label} is {what}: name an ELF program, or an archive and the path: of the program in it")


def extract_limit(archive_size: int) -> int:
    """The most bytes a program taken out of an archive of ``archive_size`` bytes may have."""
    return min(MAX_PROGRAM_BYTES, max(RATIO_FLOOR, MAX_RATIO * archive_size))


def _too_big(what: str, archive_size: int, limit: int, where: Where) -> Callable[[int], Exception]:
    def error(size: int) -> Exception:
        return where.error(f"{what} is {size} bytes unpacked, from an archive of {archive_size}: ldmatrix "
                           f"extracts at most {limit} bytes ({MAX_PROGRAM_BYTES >> 20} MiB, and beyond "
                           f"{RATIO_FLOOR >> 20} MiB at most {MAX_RATIO} times the archive's size)")
    return error


def _copy_bounded(src: IO[bytes], out: IO[bytes], limit: int, too_big: Callable[[int], Exception]) -> None:
    """Copy, counting: more than ``limit`` bytes (an archive that lied about a size) is an error."""
    written = 0
    while chunk := src.read(COPY_CHUNK):
        written += len(chunk)
        if written > limit:
            raise too_big(written)
        out.write(chunk)


def check_program(path: Path, what: str, where: Where) -> elf.ElfInfo:
    """A dynamically linked x86_64 ELF program, or one line saying what ``what`` is instead."""
    with path.open("rb") as fh:
        head = fh.read(64)
    if head[:4] != ELF_MAGIC:
        kind = f"a script ({head.splitlines()[0][:40].decode('utf-8', 'replace')})" if head[:2] == b"#!" \
            else "a text file" if _texty(head) else "not an ELF file"
        raise where.error(f"{what} is {kind}, not an ELF program")
    try:
        info = elf.read(path)
    except LdmatrixError as err:
        raise where.error(f"{what} is {str(err).split(': ', 1)[-1]}") from None
    if info.machine != "EM_X86_64":
        raise where.error(f"{what} is an ELF file for {info.machine}, not x86_64")
    if info.interpreter is None:
        kind = "a shared library" if info.kind == "ET_DYN" and info.soname else "statically linked (no PT_INTERP)"
        raise where.error(f"{what} is {kind}: ldmatrix tests programs that the loader starts")
    return info


def _texty(head: bytes) -> bool:
    return bool(head) and all(32 <= b < 127 or b in (9, 10, 13) for b in head)
