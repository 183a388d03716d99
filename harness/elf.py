"""A tiny pure-Python ELF reader: just enough to find a binary's program interpreter."""

from __future__ import annotations

import struct
from pathlib import Path

from harness.errors import LdmatrixError

PT_INTERP = 3
PN_XNUM = 0xFFFF


def read_interpreter(path: Path | str) -> str | None:
    """The PT_INTERP of the ELF file at ``path`` ("/lib64/ld-linux-x86-64.so.2"), or None if it
    has none (static or a shared library). Raises LdmatrixError if the file is not a readable ELF."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            ident = f.read(16)
            if len(ident) < 16 or ident[:4] != b"\x7fELF":
                raise LdmatrixError(f"{path}: not an ELF file")
            is64 = {1: False, 2: True}.get(ident[4])
            endian = {1: "<", 2: ">"}.get(ident[5])
            if is64 is None or endian is None:
                raise LdmatrixError(f"{path}: unknown ELF class {ident[4]} or data encoding {ident[5]}")
            # e_type .. e_shstrndx, after e_ident
            header = endian + ("HHIQQQIHHHHHH" if is64 else "HHIIIIIHHHHHH")
            raw = f.read(struct.calcsize(header))
            if len(raw) < struct.calcsize(header):
                raise LdmatrixError(f"{path}: truncated ELF header")
            fields = struct.unpack(header, raw)
            phoff, shoff, phentsize, phnum = fields[4], fields[5], fields[8], fields[9]
            if phnum == PN_XNUM:  # the real count lives in section 0's sh_info
                f.seek(shoff + (44 if is64 else 28))
                (phnum,) = struct.unpack(endian + "I", f.read(4))
            phdr = endian + ("IIQQQQQQ" if is64 else "IIIIIIII")
            for index in range(phnum):
                f.seek(phoff + index * phentsize)
                raw = f.read(struct.calcsize(phdr))
                if len(raw) < struct.calcsize(phdr):
                    raise LdmatrixError(f"{path}: truncated program header {index}")
                values = struct.unpack(phdr, raw)
                if values[0] != PT_INTERP:
                    continue
                # 64-bit: type, flags, offset, vaddr, paddr, filesz; 32-bit: type, offset, vaddr, paddr, filesz
                offset, filesz = (values[2], values[5]) if is64 else (values[1], values[4])
                f.seek(offset)
                return f.read(filesz).split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
            return None
    except OSError as err:
        raise LdmatrixError(f"{path}: cannot read: {err.strerror or err}") from err
