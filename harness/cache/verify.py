"""``ldmatrix cache verify``: every entry of the cache against its manifest, sha256 of everything.

One line per entry that is not fine (damaged, without a manifest, half-built, a download whose
content is not its name); a summary line; exit status 1 when anything is damaged. The patched
binaries and root overlays cells share (harness/cache/installed.py) are verified too, each file hashed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from harness.cache import Cache, installed
from harness.cache import entry as cache_entry
from harness.progress import Progress


@dataclass(frozen=True)
class Finding:
    status: str  # "damaged", "unchecked", "half-built"
    path: Path
    detail: str

    def line(self, root: Path) -> str:
        return f"{self.status:10} {self.path.relative_to(root)}: {self.detail}"


def verify_cache(cache: Cache, progress: Progress) -> tuple[int, list[Finding]]:
    """(number of entries looked at, findings)."""
    findings: list[Finding] = []
    total = 0
    for area in cache_entry.AREAS:
        entries = cache_entry.entries(cache, area)
        progress.step(f"verifying {len(entries)} entries of {cache.dir(area)}")
        for entry in entries:
            total += 1
            try:
                manifest = cache_entry.read_manifest(entry)
            except cache_entry.Damaged as err:
                findings.append(Finding("damaged", entry.path, str(err).split(": ", 1)[1]))
                continue
            if manifest is None:
                findings.append(Finding("unchecked", entry.path, "no manifest, not checked (made before manifests, "
                                                                 "or by code that writes none)"))
                continue
            problem = cache_entry.verify(entry)
            if problem is not None:
                findings.append(Finding("damaged", entry.path, problem))
        for path in sorted(cache.dir(area).glob(".tmp-*")):
            gone = cache_entry.stale(path)
            findings.append(Finding("half-built", path, "its run is gone; the next run removes it" if gone
                                    else "a run is making it now"))
    for area, problem_of in (("patched", installed.binary_problem), ("overlays", installed.overlay_problem)):
        directory = cache.dir(area)
        shared = sorted(p for p in directory.iterdir() if p.is_dir() and not p.name.startswith("."))
        progress.step(f"verifying {len(shared)} entries of {directory}")
        for path in shared:
            total += 1
            recorded = installed.read_manifest(path)
            wrong = "its entry.json is missing or cannot be read" if recorded is None else \
                problem_of(path, recorded, fresh=True)
            if wrong is not None:
                findings.append(Finding("damaged", path, f"{wrong}; the next run that uses it makes it again"))
        for path in sorted(directory.glob(".tmp-*")):
            findings.append(Finding("half-built", path, "its run is gone; the next run removes it"
                                    if cache_entry.stale(path) else "a run is making it now"))
    downloads = sorted(p for p in cache.downloads.iterdir()  # .deb, .whl, .download: named by their sha256
                       if p.is_file() and not p.name.startswith(".") and len(p.stem) == 64)
    progress.step(f"verifying {len(downloads)} downloads in {cache.downloads}")
    for path in downloads:
        total += 1
        if cache_entry.file_sha256(path) != path.stem:
            findings.append(Finding("damaged", path, "its sha256 is not its name; it is downloaded again "
                                                     "when needed"))
    return total, findings
