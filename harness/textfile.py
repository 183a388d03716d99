"""Read a text file a person hands ldmatrix (a matrix, the package lock) without trusting it.

The size is bounded *before* anything is read into memory or parsed; a directory, a device, a
binary file or bytes that are not UTF-8 are refused with the reason (and the line, where there
is one), never a traceback or an endless read.
"""

from __future__ import annotations

import stat
from pathlib import Path


class UnreadableText(Exception):
    """Why a file is not usable text; ``line`` is 1-based, or None when the whole file is the problem."""

    def __init__(self, line: int | None, reason: str):
        super().__init__(reason)
        self.line, self.reason = line, reason


def read_text(path: Path, max_bytes: int) -> str:
    try:
        info = path.stat()
    except FileNotFoundError:
        raise UnreadableText(None, "no such file") from None
    except OSError as err:
        raise UnreadableText(None, f"cannot read: {err.strerror}") from None
    if stat.S_ISDIR(info.st_mode):
        raise UnreadableText(None, "is a directory, not a file")
    if not stat.S_ISREG(info.st_mode):
        raise UnreadableText(None, "is not a regular file (a device, a pipe or a socket)")
    if info.st_size > max_bytes:
        raise UnreadableText(None, f"is {info.st_size} bytes; at most {max_bytes} are read")
    try:
        with path.open("rb") as fh:
            data = fh.read(max_bytes + 1)  # the file may have grown since stat()
    except OSError as err:
        raise UnreadableText(None, f"cannot read: {err.strerror}") from None
    if len(data) > max_bytes:
        raise UnreadableText(None, f"is more than {max_bytes} bytes")
    if b"\0" in data:
        line = data.count(b"\n", 0, data.index(b"\0")) + 1
        raise UnreadableText(line, "is a binary file (a NUL byte), not text")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise UnreadableText(line, f"is not UTF-8 text (byte 0x{data[err.start]:02x})") from None
