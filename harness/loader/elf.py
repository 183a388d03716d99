"""What an ELF file asks of the loader, read with pyelftools: interpreter, NEEDED, RUNPATH/RPATH,
the symbol versions it requires of each library and the ones it defines.

``read(path)`` gives an ``ElfInfo``; a file that is not a readable ELF is one line (LdmatrixError).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from elftools.common.exceptions import ELFError
from elftools.elf.dynamic import DynamicSection
from elftools.elf.elffile import ELFFile
from elftools.elf.gnuversions import GNUVerDefSection, GNUVerNeedSection
from elftools.elf.segments import InterpSegment

from harness.errors import LdmatrixError

PF_X = 0x1
PT_GNU_STACK = "PT_GNU_STACK"
_VERSION = re.compile(r"^([A-Z_]+?)_?(\d+(?:\.\d+)*)$")


def version_key(name: str) -> tuple[str, tuple[int, ...]]:
    """``GLIBC_2.38`` -> ("GLIBC", (2, 38)); ``GLIBCXX_3.4.30`` -> ("GLIBCXX", (3, 4, 30))."""
    match = _VERSION.match(name)
    if not match:
        return name, ()
    return match.group(1), tuple(int(p) for p in match.group(2).split("."))


@dataclass(frozen=True)
class ElfInfo:
    path: Path
    machine: str  # "EM_X86_64"
    kind: str  # "ET_EXEC", "ET_DYN"
    interpreter: str | None  # PT_INTERP, None for a static program or a library
    needed: tuple[str, ...] = ()  # DT_NEEDED in order
    soname: str | None = None
    runpath: tuple[str, ...] = ()
    rpath: tuple[str, ...] = ()
    requires: dict[str, tuple[str, ...]] = field(default_factory=dict)  # soname -> versions needed of it
    defines: tuple[str, ...] = ()  # version names this object defines (a library's GLIBC_2.34, ...)
    dynamic: bool = True  # has a PT_DYNAMIC: the loader has work to do
    execstack: bool = False  # PT_GNU_STACK asks for an executable stack

    def newest(self, prefix: str) -> str | None:
        """The newest version named ``prefix``_x.y this object requires of any library (GLIBC_2.38)."""
        names = [v for versions in self.requires.values() for v in versions if version_key(v)[0] == prefix]
        return max(names, key=lambda v: version_key(v)[1]) if names else None

    def newest_requirements(self) -> dict[str, str]:
        """Per version family (GLIBC, GLIBCXX, CXXABI, GCC, ...), the newest version required."""
        families = sorted({version_key(v)[0] for vs in self.requires.values() for v in vs if version_key(v)[1]})
        return {family: self.newest(family) or "" for family in families}


def read(path: Path | str) -> ElfInfo:
    """``path``'s ElfInfo, read once per file content: every cell of a run predicts from the same store
    files, and reading them is most of what preparing a cell costs. A file is known by its inode,
    size and mtime, so one that changes is read again."""
    path = Path(path)
    try:
        st = path.stat()
    except OSError as err:
        raise LdmatrixError(f"{path}: cannot read: {err.strerror or err}") from None
    return _read_once(str(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=4096)
def _read_once(path_text: str, dev: int, ino: int, size: int, mtime_ns: int) -> ElfInfo:
    path = Path(path_text)
    try:
        with path.open("rb") as fh:
            if fh.read(4) != b"\x7fELF":
                raise LdmatrixError(f"{path}: not an ELF file")
            fh.seek(0)
            return _read(path, ELFFile(fh))
    except OSError as err:
        raise LdmatrixError(f"{path}: cannot read: {err.strerror or err}") from None
    except (ELFError, ValueError, KeyError, IndexError, AssertionError) as err:
        raise LdmatrixError(f"{path}: a damaged ELF file ({type(err).__name__}: {err})") from None


def _read(path: Path, elf: ELFFile) -> ElfInfo:
    interpreter = None
    execstack = False
    for segment in elf.iter_segments():
        if isinstance(segment, InterpSegment):
            interpreter = segment.get_interp_name()
        elif segment["p_type"] == PT_GNU_STACK:
            execstack = bool(segment["p_flags"] & PF_X)
    needed: list[str] = []
    soname = None
    runpath: list[str] = []
    rpath: list[str] = []
    dynamic = False
    requires: dict[str, tuple[str, ...]] = {}
    defines: list[str] = []
    for section in elf.iter_sections():
        if isinstance(section, DynamicSection):
            dynamic = True
            for dynamic_tag in section.iter_tags():
                tag: Any = dynamic_tag  # pyelftools sets needed, soname, runpath, rpath by the tag's kind
                if tag.entry.d_tag == "DT_NEEDED":
                    needed.append(tag.needed)
                elif tag.entry.d_tag == "DT_SONAME":
                    soname = tag.soname
                elif tag.entry.d_tag == "DT_RUNPATH":
                    runpath += [p for p in tag.runpath.split(":") if p]
                elif tag.entry.d_tag == "DT_RPATH":
                    rpath += [p for p in tag.rpath.split(":") if p]
        elif isinstance(section, GNUVerNeedSection):
            for verneed, auxiliaries in section.iter_versions():
                requires[str(verneed.name)] = tuple(str(aux.name) for aux in auxiliaries)
        elif isinstance(section, GNUVerDefSection):
            for verdef, auxiliaries in section.iter_versions():
                if verdef["vd_flags"] & 0x1:  # VER_FLG_BASE: the file's own name, not a version
                    continue
                defines += [aux.name for aux in auxiliaries][:1]
    return ElfInfo(path, elf["e_machine"], elf["e_type"], interpreter, tuple(needed), soname, tuple(runpath),
                   tuple(rpath), requires, tuple(defines), dynamic, execstack)


def read_interpreter(path: Path | str) -> str | None:
    """The PT_INTERP of the ELF file at ``path``, or None if it has none (static or a library)."""
    return read(path).interpreter


@functools.lru_cache(maxsize=64)
def loader_search_path(path: Path, lib_dir: str) -> tuple[str, ...] | None:
    """The system search path compiled into the loader at ``path`` whose own library directory (in
    its root) is ``lib_dir``: glibc keeps it as consecutive NUL-terminated strings, its own ``lib/``
    first, then any ``user-defined-trusted-dirs`` (nixpkgs: libgcc's lib/). None when it is not
    there (not such a loader). The e2e tests compare it with what each loader says of itself."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    start = data.find(b"\0" + lib_dir.rstrip("/").encode() + b"/\0")
    if start < 0:
        return None
    dirs: list[str] = []
    at = start + 1
    while at < len(data) and data[at:at + 1] == b"/":
        end = data.index(b"\0", at)
        entry = data[at:end].decode("utf-8", "replace")
        if not entry.endswith("/"):
            break
        dirs.append(entry.rstrip("/"))
        at = end + 1
    return tuple(dirs)
