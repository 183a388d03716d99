"""``ldmatrix merge``: the results of a run spread over machines, put back together as one run.

    ldmatrix merge shard-1/seed/results.jsonl ... shard-4/seed/results.jsonl --out merged \\
        [--html grid.html] [--summary "$GITHUB_STEP_SUMMARY"]

Each file is one ``ldmatrix run --shard K/N`` (harness/shard.py), with its own ``-k`` and
``--nixpkgs`` (a nightly runs Debian's builds and each pin's column as shards of their own). The
merge refuses, in one line, what would not be the whole run: files of different matrices or
runners, a shard missing or given twice, a shard cut short (fewer results than its header's
``cells``), a damaged line, a cell in two files. The merged ``results.jsonl`` lists the cells in
the matrix's order, its header says which files it was made from, and each cell's folder is copied
from beside its shard's results (``cells/<id>/``), so ``ldmatrix show`` and ``command.sh`` work as
after a run on one machine.
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import matrix as matrix_mod
from harness.errors import LdmatrixError
from harness.model import CellResult
from harness.progress import Progress
from harness.results import file as results_file
from harness.results.outdir import CELLS_NAME, RESULTS_NAME, RunDirectory, safe_id


@dataclass(frozen=True)
class Merged:
    name: str
    header: Mapping[str, Any]
    results: tuple[CellResult, ...]
    folders: Mapping[str, Path]  # cell id -> its folder beside a shard's results, where there is one


def _group(header: Mapping[str, Any]) -> tuple[str, tuple[str, ...]]:
    """Shards of one run share their selection and pins: (-k words, pin names)."""
    return str(header.get("select") or ""), tuple(sorted(header.get("nixpkgs") or {}))


def _describe(group: tuple[str, tuple[str, ...]]) -> str:
    select, pins = group
    parts = ([f"-k {select!r}"] if select else []) + ([f"--nixpkgs {' '.join(pins)}"] if pins else [])
    return f" ({', '.join(parts)})" if parts else ""


def _shard_of(loaded: results_file.ResultsFile) -> tuple[int, int]:
    text = str((loaded.header or {}).get("shard") or "1/1")
    index, _, count = text.partition("/")
    if not (index.isdigit() and count.isdigit()):
        raise LdmatrixError(f"merge: {loaded.path}: line 1: shard: {text!r} is not K/N")
    return int(index), int(count)


def check(files: list[results_file.ResultsFile], shards: bool = True) -> None:
    """One line and no merge unless the files are exactly the shards of whole runs of one matrix
    (``shards=False``: parts of one run whose cells were handed out as they went, as xdist does)."""
    for loaded in files:
        if loaded.header is None:
            raise LdmatrixError(f"merge: {loaded.path}: no header line: not a whole results file")
        if loaded.damaged:
            raise LdmatrixError(f"merge: {loaded.damaged[0]}: a damaged result; run that shard again")
        expected = loaded.header.get("cells")
        if isinstance(expected, int) and expected != len(loaded.results):
            raise LdmatrixError(f"merge: {loaded.path}: {len(loaded.results)} of its {expected} cells: the run was cut "
                                "short; run that shard again")
    for key, what in (("name", "matrices"), ("runner", "runners")):
        values = {str((f.header or {}).get(key)) for f in files}
        if len(values) > 1:
            listing = ", ".join(f"{f.path}: {(f.header or {}).get(key)}" for f in files)
            raise LdmatrixError(f"merge: the files are runs of different {what} ({listing}); merge the shards of one")
    groups: dict[tuple[str, tuple[str, ...]], dict[int, Path]] = {}
    counts: dict[tuple[str, tuple[str, ...]], int] = {}
    for loaded in files if shards else ():
        group = _group(loaded.header or {})
        index, count = _shard_of(loaded)
        if counts.setdefault(group, count) != count:
            raise LdmatrixError(f"merge: {loaded.path} is shard {index}/{count}, the other shards of its run"
                                f"{_describe(group)} are of {counts[group]}")
        seen = groups.setdefault(group, {})
        if index in seen:
            raise LdmatrixError(f"merge: shard {index}/{count}{_describe(group)} given twice: {seen[index]} and "
                                f"{loaded.path}")
        seen[index] = loaded.path
    for group, seen in groups.items():
        missing = [f"{k}/{counts[group]}" for k in range(1, counts[group] + 1) if k not in seen]
        if missing:
            raise LdmatrixError(f"merge: shard {', '.join(missing)}{_describe(group)} missing: give its "
                                f"{RESULTS_NAME} too")
    where: dict[str, Path] = {}
    for loaded in files:
        for r in loaded.results:
            if r.cell_id in where:
                raise LdmatrixError(f"merge: cell {r.cell_id} in both {where[r.cell_id]} and {loaded.path}: "
                                    "shards of one run never share a cell")
            where[r.cell_id] = loaded.path


def _order(files: list[results_file.ResultsFile], matrix_path: Path | None) -> dict[str, int]:
    """Each cell's place in the matrix (with the runs' pins as columns), as an unsharded run lists them."""
    header = files[0].header or {}
    path = matrix_path or Path(str(header.get("matrix", "")))
    if not path.is_file():
        raise LdmatrixError(f"merge: {path}: no such matrix (the shards' header names it; give --matrix PATH)")
    pins: dict[str, tuple[str, str | None]] = {}
    for loaded in files:
        for name, pin in ((loaded.header or {}).get("nixpkgs") or {}).items():
            if isinstance(pin, dict) and pin.get("glibc"):  # else its cells come last, in the files' order
                pins[name] = (str(pin["glibc"]), pin.get("nix_ld"))
    labels = sorted({r.axes["nix_ld"] for f in files for r in f.results if r.axes.get("nix_ld")})
    matrix = matrix_mod.load(path, extra_nix_ld=labels, nixpkgs=pins)
    return {cell.id: i for i, cell in enumerate(matrix.cells)}


def merge(paths: Iterable[Path], matrix_path: Path | None = None, shards: bool = True) -> Merged:
    files = [results_file.read(p) for p in paths]
    if not files:
        raise LdmatrixError("merge: give the results.jsonl of every shard")
    check(files, shards)
    order = _order(files, matrix_path)
    results = [r for f in files for r in f.results]
    later = len(order)
    results.sort(key=lambda r: order.get(r.cell_id, later))
    folders = {}
    for loaded in files:
        for r in loaded.results:
            folder = loaded.path.parent / CELLS_NAME / safe_id(r.cell_id)
            if folder.is_dir():
                folders[r.cell_id] = folder
    first = files[0].header or {}
    pins: dict[str, Any] = {}
    for loaded in files:
        pins.update((loaded.header or {}).get("nixpkgs") or {})
    header: dict[str, Any] = {"matrix": first.get("matrix"), "name": first.get("name"), "runner": first.get("runner"),
                              "started": min(float((f.header or {}).get("started", 0)) for f in files),
                              "cells": len(results), "merged": [str(f.path) for f in files]}
    selects = {_group(f.header or {})[0] for f in files}
    if len(selects) == 1 and selects != {""}:
        header["select"] = selects.pop()
    if pins:
        header["nixpkgs"] = pins
    return Merged(str(first.get("name")), header, tuple(results), folders)


def write(merged: Merged, rundir: RunDirectory, progress: Progress | None = None) -> list[CellResult]:
    """The merged run into ``rundir`` (held): its results.jsonl, and each cell's folder copied in."""
    from harness.session import result_record

    log = rundir.begin(dict(merged.header))
    out: list[CellResult] = []
    try:
        for r in merged.results:
            folder = merged.folders.get(r.cell_id)
            if folder is not None:
                staging = rundir.staging(r.cell_id)
                shutil.copytree(folder, staging, symlinks=True, dirs_exist_ok=True)
                published = rundir.publish(staging, r.cell_id)
                r = dataclasses.replace(r, extra={**r.extra, "workdir": str(published)})
            log.write(result_record(r))
            out.append(r)
    finally:
        log.close()
    if progress is not None:
        progress.step(f"merged {len(out)} cells into {rundir.results_file}")
    return out
