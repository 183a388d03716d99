"""An artifact installed whole: every file of its wheel, package or archive under one directory, so
that the program runs from its place in it and finds what it ships beside it (``$ORIGIN/../lib``, a
wheel's ``.libs``, a JRE's ``lib/server/libjvm.so``).

The tree is written as the archive has it (files with their permission bits, less set-id and
write for others; symbolic links as links; a hard link as a copy). A package is made to be
installed at ``/``: its absolute links (``lib/jvm.cfg -> /etc/java-17-openjdk/jvm-amd64.cfg``) are
made relative, so they point inside the tree wherever it is put, as if it were installed under
that prefix. Bounded: at most ``MAX_FILES`` entries, and in all what harness/artifacts/unpack.py
allows an archive of its size to unpack to.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath

from harness.loader.elf import ElfInfo

from .spec import Artifact, Where
from .unpack import Tree, _copy_bounded, _too_big, check_program, extract_limit, open_tree
from .unpack import _follow as follow

MAX_FILES = 200_000


def link_target(name: str, target: str) -> str:
    """Where the link ``name`` points once the tree is a prefix: an absolute target made relative."""
    if not target.startswith("/"):
        return target
    inside = posixpath.normpath(target).lstrip("/") or "."
    return posixpath.relpath(inside, posixpath.dirname(name) or ".")


def write(tree: Tree, dest: Path, where: Where, archive_size: int) -> int:
    """Every member of ``tree`` under ``dest`` (made here); the number of bytes written. What it unpacks
    to is bounded by the archive's size (harness/artifacts/unpack.py ``extract_limit``): a member's
    declared size is checked before a byte of it is written, and each copy counts what it writes."""
    if len(tree.members) > MAX_FILES:
        raise where.error(f"{tree.label} has {len(tree.members)} entries; ldmatrix installs at most {MAX_FILES}")
    limit = extract_limit(archive_size)
    written = 0
    for name, member in sorted(tree.members.items()):
        if ".." in PurePosixPath(name).parts:
            raise where.error(f"{tree.label}: {name} leaves the archive")
        path = dest / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if member.kind == "l":
            path.symlink_to(link_target(name, member.target))
            continue
        source = member.target if member.kind == "h" else name
        if source not in tree.members or tree.members[source].kind != "f":
            raise where.error(f"{tree.label}: {name} is a hard link to {source}, which is not a file in it")
        too_big = _too_big(f"{name} in {tree.label}", archive_size, limit, where)
        if written + tree.members[source].size > limit:
            raise too_big(written + tree.members[source].size)
        with tree.open(source) as src, path.open("wb") as out:
            _copy_bounded(src, out, limit - written, _offset(too_big, written))
        written += path.stat().st_size
        os.chmod(path, (tree.members[source].mode & 0o755) | 0o444)
    return written


def _offset(too_big: Callable[[int], Exception], base: int) -> Callable[[int], Exception]:
    """``too_big`` of the bytes written before this file and ``size`` of it."""
    return lambda size: too_big(base + size)


TOP = "tree"  # the directory of an artifact's cache entry that holds it


def install(artifact: Artifact, file: Path, label: str, entry: Path, scratch: Path) -> tuple[ElfInfo, str]:
    """The artifact whole under ``entry/tree``, and its program checked (a dynamically linked x86_64
    ELF program): what it asks of the loader, and its file's path in the tree (links followed)."""
    path_where = artifact.at("path") if artifact.path else artifact.at(artifact.kind.value)
    top = entry / TOP
    try:
        found = open_tree(artifact, file, label, scratch, path_where)
        if found is None:  # the download is the program itself
            if artifact.path:
                raise artifact.at("path").error(f"{label} is an ELF program itself, not an archive: leave out path:")
            top.mkdir()
            shutil.copyfile(file, top / artifact.name)
            (top / artifact.name).chmod(0o755)
            return check_program(top / artifact.name, label, path_where), artifact.name
        if not artifact.path:
            raise artifact.at(artifact.kind.value).error(f"{label} is an archive: say which file in it is the "
                                                         "program with path:")
        member = follow(found, artifact.path, path_where)
        write(found, top, path_where, file.stat().st_size)
        (top / member).chmod(0o555)  # the program, executable as pip or dpkg would leave it
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as err:
        raise path_where.error(f"{label} cannot be read as an archive: {err}") from None
    return check_program(top / member, f"{artifact.path} in {label}", path_where), member
