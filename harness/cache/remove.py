"""Remove a directory tree that a cell may have made: any depth, any name length, no link followed.

``shutil.rmtree`` recurses once per level (Python 3.11): a cell that makes a 5000-deep tree in
its HOME ended the whole run with a RecursionError. ``remove_tree`` walks down and back up with
one directory open at a time (each found again from its parent's descriptor, never by a path, so
paths longer than PATH_MAX are no matter), checks that ``..`` is the directory it came from, and
unlinks links instead of following them. What cannot be removed is left, as
``rmtree(ignore_errors=True)`` leaves it; ``remove_tree`` never raises for the tree's content.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def _identity(fd: int) -> tuple[int, int]:
    st = os.fstat(fd)
    return st.st_dev, st.st_ino


def _open_dir(parent: int, name: str) -> int | None:
    """``name`` in ``parent`` opened as a directory (made readable first if it was not); None if gone."""
    for attempt in range(2):
        try:
            return os.open(name, _DIR_FLAGS, dir_fd=parent)
        except PermissionError:
            if attempt:
                return None
            try:
                os.chmod(name, 0o700, dir_fd=parent)  # a directory the cell made unreadable (not root)
            except OSError:
                return None
        except OSError:  # gone, or no directory any more
            return None
    return None


def _clear(fd: int) -> list[str]:
    """Unlink everything in the directory ``fd`` but its subdirectories, whose names are returned."""
    try:
        os.fchmod(fd, 0o700)  # unlinking needs write permission on the directory (when not root)
    except OSError:
        pass
    subdirs = []
    try:
        with os.scandir(fd) as entries:
            for entry in entries:
                try:
                    if entry.is_dir(follow_symlinks=False):
                        subdirs.append(entry.name)
                    else:
                        os.unlink(entry.name, dir_fd=fd)
                except OSError:
                    pass
    except OSError:
        pass
    return subdirs


def remove_tree(path: Path) -> None:
    """Remove ``path`` (a directory and all under it, or a file or link) as far as it can be removed."""
    try:
        info = os.lstat(path)
    except OSError:
        return
    if not stat.S_ISDIR(info.st_mode):
        try:
            os.unlink(path)
        except OSError:
            pass
        return
    try:
        top_parent = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        _remove_dir(top_parent, path.name)
    finally:
        os.close(top_parent)


def _remove_dir(top_parent: int, name: str) -> None:
    fd = _open_dir(top_parent, name)
    if fd is None:
        return
    above: list[tuple[list[str], str, tuple[int, int]]] = []  # per level: the parent's pending, this name, parent
    pending = _clear(fd)
    try:
        while True:
            if pending:
                child = pending.pop()
                child_fd = _open_dir(fd, child)
                if child_fd is None:
                    continue
                above.append((pending, child, _identity(fd)))
                os.close(fd)
                fd, pending = child_fd, _clear(child_fd)
                continue
            if not above:
                break
            pending, done, parent = above.pop()
            up = os.open("..", _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = up
            if _identity(fd) != parent:  # moved while we were below it: leave the rest alone
                return
            try:
                os.rmdir(done, dir_fd=fd)
            except OSError:
                pass
    finally:
        os.close(fd)
    try:
        os.rmdir(name, dir_fd=top_parent)
    except OSError:
        pass
