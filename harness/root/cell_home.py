"""A cell's HOME as the runners lay it out: a fresh, bounded tmpfs owned by the cell user, holding
what the harness prepared for it on the host (a launcher's scripts, a start-up record), bound
read-only. What the cell writes in HOME never reaches the host, and goes when the cell ends.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath


@dataclass(frozen=True)
class HomeLayout:
    """The host directory's tree, relative: its directories (parents first) and its files."""

    dirs: tuple[str, ...]
    files: tuple[str, ...]

    def targets(self, target: str) -> tuple[str, ...]:
        """The directories to make in the tmpfs at ``target``, with ``target`` itself first."""
        return (target, *(str(PurePosixPath(target) / d) for d in self.dirs))


def layout(host: Path) -> HomeLayout:
    dirs: list[str] = []
    files: list[str] = []
    for parent, subdirs, names in os.walk(host):
        subdirs.sort()
        rel = Path(parent).relative_to(host)
        dirs += [str(rel / d) for d in subdirs if not (Path(parent) / d).is_symlink()]
        files += [str(rel / n) for n in sorted(names) if (Path(parent) / n).is_file()
                  and not (Path(parent) / n).is_symlink()]
    return HomeLayout(tuple(dirs), tuple(files))
