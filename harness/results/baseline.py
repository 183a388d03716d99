"""Baselines the guard compares against: one results file per glibc build and matrix, in the repository.

    baselines/<build>/<matrix>.jsonl

``<build>`` is ``debian`` for Debian's glibc builds (and the container strategy), else the nixpkgs
pin (``nixos-24.11``, ``nixos-unstable``): a pin's cells are compared with what that pin gave when
its baseline was blessed, whatever its revision and glibc are tonight. A baseline is a results file
(harness/results/file.py reads it) kept lean for a repository: per cell its id, axes, outcome,
proving line, expectation and skip reason; no output, no environment, no host paths, no timings,
so two runs that agree write the same bytes. Its header names the build and, for a pin, the
revision and glibc it was made with.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from harness.errors import LdmatrixError
from harness.model import CellResult
from harness.results import file as results_file
from harness.results import guard
from harness.results.file import ResultsFile

DEBIAN = "debian"
LEAN_FIELDS = ("cell_id", "axes", "outcome", "evidence", "expected", "bug", "fixed_outcome", "skip_reason", "rc",
               "runner")


def build_of(result: CellResult) -> str:
    return result.axes.get("nixpkgs") or DEBIAN


def path_of(root: Path, build: str, matrix: str) -> Path:
    return root / build / f"{matrix}.jsonl"


def check_root(root: Path) -> None:
    """The baselines directory: a directory, or not there yet (every baseline then is missing)."""
    if (root.exists() or root.is_symlink()) and not root.is_dir():
        raise LdmatrixError(f"--baselines {root}: not a directory (it holds <build>/<matrix>.jsonl)")


def load(path: Path) -> ResultsFile | None:
    """The baseline at ``path``; None when there is none. One that is there and cannot be read (a
    directory, a FIFO, a device, too big) is an error, never "no baseline"."""
    try:
        path.lstat()
    except FileNotFoundError:
        return None
    except NotADirectoryError:
        raise LdmatrixError(f"{path}: cannot be a baseline: {path.parent} is not a directory") from None
    return results_file.read(path)


def check_readable(root: Path, matrix: str, builds: Iterable[str]) -> None:
    """Before anything runs: each baseline the run will be compared with is missing or a file to read."""
    for build in builds:
        path = path_of(root, build, matrix)
        try:
            path.lstat()
        except FileNotFoundError:
            continue
        except NotADirectoryError:
            raise LdmatrixError(f"{path}: cannot be a baseline: {path.parent} is not a directory") from None
        results_file.open_regular(path, "results file", results_file.MAX_BYTES).close()


def lean_record(result: CellResult) -> dict:
    record = {key: getattr(result, key) for key in LEAN_FIELDS}
    for key in ("outcome", "expected", "fixed_outcome"):
        record[key] = record[key].value if record[key] is not None else None
    record["duration"] = 0.0
    return record


def split(results: Iterable[CellResult]) -> dict[str, list[CellResult]]:
    out: dict[str, list[CellResult]] = {}
    for result in results:
        out.setdefault(build_of(result), []).append(result)
    return out


def header(matrix: str, build: str, runner: str, pins: Mapping[str, Mapping] | None) -> dict:
    out: dict = {"matrix": f"matrices/{matrix}.yaml", "name": matrix, "runner": runner, "build": build}
    if pins and build in pins:
        out["nixpkgs"] = {build: dict(pins[build])}
    return out


def write(path: Path, head: dict, results: Iterable[CellResult]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps(head, sort_keys=True)]
    lines += [json.dumps(lean_record(r), sort_keys=True) for r in sorted(results, key=lambda r: r.cell_id)]
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    tmp.replace(path)


@dataclass(frozen=True)
class Check:
    """One (build, matrix) of a run against its baseline."""

    matrix: str
    build: str
    path: Path
    comparison: guard.Comparison
    baseline: ResultsFile | None  # None: there is no baseline yet
    tonight: Mapping | None  # the pin's revision and glibc in this run

    @property
    def clean(self) -> bool:
        return self.baseline is not None and self.comparison.clean

    def moved(self) -> str | None:
        """What moved of the pin itself, when it did: ``rev abc -> def, glibc 2.40 -> 2.42``."""
        before = ((self.baseline.header or {}).get("nixpkgs") or {}).get(self.build) if self.baseline else None
        if not before or not self.tonight:
            return None
        parts = [f"{key} {str(before.get(key))[:12]} -> {str(self.tonight.get(key))[:12]}"
                 for key in ("rev", "glibc", "nix_ld") if before.get(key) != self.tonight.get(key)]
        return ", ".join(parts) or None


def check(results: Iterable[CellResult], root: Path, matrix: str, pins: Mapping[str, Mapping] | None) -> list[Check]:
    """Each build of the run against ``root/<build>/<matrix>.jsonl``; no baseline: every cell appeared."""
    out = []
    for build, cells in sorted(split(results).items()):
        path = path_of(root, build, matrix)
        baseline = load(path)
        old = baseline.results if baseline else ()
        comparison = guard.compare(old, cells, old_name=str(path) if baseline else f"{path} (missing)",
                                   new_name=f"tonight's {matrix} on {build}",
                                   damaged=baseline.damaged if baseline else ())
        out.append(Check(matrix, build, path, comparison, baseline, (pins or {}).get(build)))
    return out


def bless(results: Iterable[CellResult], root: Path, matrix: str, runner: str,
          pins: Mapping[str, Mapping] | None) -> list[Path]:
    """Write this run as the baselines of its builds."""
    written = []
    for build, cells in sorted(split(results).items()):
        path = path_of(root, build, matrix)
        write(path, header(matrix, build, runner, pins), cells)
        written.append(path)
    return written
