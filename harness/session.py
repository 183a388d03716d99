"""One run of a matrix, as a pipeline of small steps: select, provision, build, prepare, run, record.

Results are appended to ``results.jsonl`` as each cell finishes, so a killed run loses nothing
it had finished; the cell's command, environment and output go to ``cells/<id>/``.
"""

from __future__ import annotations

import concurrent.futures
import json
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from harness import cache_entry, provision, reproducers
from harness.cache import Cache
from harness.matrix import Matrix
from harness.errors import LdmatrixError
from harness.model import Cell, CellResult, NotRun, Outcome, Skip
from harness.nix_ld_provider import providers
from harness.outcome import classify
from harness.prepare import Artefacts, prepare
from harness.progress import NullProgress, Progress
from harness.runners import get_runner
from harness.runners.base import Runner


@dataclass
class RunOptions:
    runner: str | None = None  # None: the matrix's own
    select: str | None = None  # -k
    jobs: int = 2
    out: Path = Path(".ldmatrix/results")
    nix_ld: list[str] = field(default_factory=list)  # LABEL=PATH
    cache: Cache = field(default_factory=Cache.default)


def needed(matrix: Matrix, cells: Iterable[Cell]) -> tuple[set[str], set[tuple[str, str]]]:
    """The glibc versions and (reproducer, suite) builds the cells use."""
    glibcs: set[str] = set()
    builds: set[tuple[str, str]] = set()
    for cell in cells:
        glibcs.add(cell.glibc)
        spec = matrix.binaries[cell.binary]
        builds.add((spec.reproducer, spec.built_in))
        if spec.child:
            child = matrix.binaries[spec.child]
            builds.add((child.reproducer, child.built_in))
    return glibcs, builds


def provision_all(matrix: Matrix, cells: tuple[Cell, ...], options: RunOptions, progress: Progress) -> Artefacts:
    glibcs, builds = needed(matrix, cells)
    cache_entry.sweep_cache(options.cache, progress)  # half-built entries of killed runs
    glibc_sets = {}
    for version in sorted(glibcs):
        progress.step(f"store paths for glibc {version}")
        glibc_sets[version] = provision.provision_glibc(version, options.cache, progress)
    suites = sorted({suite for _, suite in builds} | {matrix.binaries[c.binary].built_in for c in cells})
    roots = {}
    for suite in suites:
        progress.step(f"build root {suite}")
        roots[suite] = provision.build_root(suite, options.cache, progress)
    build = reproducers.build
    if (options.runner or matrix.runner) == "docker":  # compiled inside the gcc image of the suite
        from harness.docker_build import build_in_container as build
    binaries = {}
    for name, suite in sorted(builds):
        progress.step(f"build {name} in {suite}")
        binaries[(name, suite)] = build(name, roots[suite], options.cache, progress)
    specs = options.nix_ld or []
    return Artefacts(glibc_sets, roots, binaries, providers(specs, options.cache))


def safe_id(cell_id: str) -> str:
    return cell_id.replace("/", "_")


def run_one(matrix: Matrix, cell: Cell, art: Artefacts, runner: Runner, out: Path) -> CellResult:
    """Prepare and run one cell. Whatever goes wrong for this cell becomes its result, not the run's end:
    a runner's NotRun is a skip or an ``error`` with its reason, a harness failure an ``error`` saying
    what failed, never a made-up exit status."""
    spec = matrix.binaries[cell.binary]
    child = matrix.binaries[spec.child] if spec.child else None
    workdir = (out / "cells" / safe_id(cell.id)).absolute()
    base = _result_base(matrix, cell, runner.name)
    stage = "preparing"
    try:
        prepared = prepare(cell, spec, child, art, workdir, matrix.timeout)
        if isinstance(prepared, Skip):
            return CellResult(outcome=None, evidence="", skip_reason=prepared.reason, rc=None, duration=0.0, **base)
        stage = f"running it ({runner.name})"
        result = runner.run(prepared)
    except Exception as err:  # noqa: BLE001 - one cell's failure, told in one line
        return _harness_error(base, f"ldmatrix could not run this cell: {stage} failed: {_one_line(err)}")
    if isinstance(result, NotRun):
        if not result.error:
            return CellResult(outcome=None, evidence="", skip_reason=result.reason, rc=None, duration=0.0, **base)
        return _harness_error(base, f"{runner.name} did not run this cell: {result.reason}")
    verdict = classify(result)
    (workdir / "stdout").write_text(result.stdout)
    (workdir / "stderr").write_text(result.stderr)
    return CellResult(outcome=verdict.outcome, evidence=verdict.evidence, skip_reason=None, rc=result.rc,
                      duration=result.duration, argv=prepared.argv, env=prepared.env, stdout=result.stdout,
                      stderr=result.stderr, **base, output_cut=result.stdout_cut + result.stderr_cut,
                      extra={"root": prepared.root.kind.value, "workdir": str(workdir)})


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    return text if isinstance(err, LdmatrixError) else f"{type(err).__name__}: {text}"


def _harness_error(base: dict, reason: str) -> CellResult:
    return CellResult(outcome=Outcome.ERROR, evidence=reason, skip_reason=None, rc=None, duration=0.0, **base)


def result_record(result: CellResult) -> dict:
    record = asdict(result)
    record["argv"] = list(result.argv)
    record["env"] = [list(kv) for kv in result.env]
    return record


class ResultLog:
    """Appends one JSON line per finished cell, flushed at once."""

    def __init__(self, path: Path, matrix: Matrix, runner: str):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.lock = threading.Lock()
        self.fh = path.open("w", encoding="utf-8")
        self.write({"matrix": str(matrix.path), "name": matrix.name, "runner": runner, "started": time.time()})

    def write(self, record: dict) -> None:
        with self.lock:
            self.fh.write(json.dumps(record, sort_keys=True) + "\n")
            self.fh.flush()

    def close(self) -> None:
        self.fh.close()


def execute(matrix: Matrix, options: RunOptions, progress: Progress | None = None,
            on_result: Callable[[CellResult], None] | None = None) -> list[CellResult]:
    progress = progress or NullProgress()
    cells = matrix.select(options.select)
    runner = get_runner(options.runner or matrix.runner)
    out = options.out / matrix.name
    reason = runner.unavailable()
    art = provision_all(matrix, cells, options, progress) if reason is None else None
    log = ResultLog(out / "results.jsonl", matrix, runner.name)
    results: list[CellResult] = []
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=max(1, options.jobs))
    try:
        if reason is not None:
            done: Iterable = [_skipped(matrix, c, runner.name, f"runner {runner.name} unavailable: {reason}")
                              for c in cells]
        else:
            futures = [pool.submit(run_one, matrix, c, art, runner, out) for c in cells]
            done = (f.result() for f in concurrent.futures.as_completed(futures))
        for result in done:
            log.write(result_record(result))
            results.append(result)
            if on_result:
                on_result(result)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)  # Ctrl-C: queued cells are dropped, running ones end
        log.close()
        runner.close()
    order = {c.id: i for i, c in enumerate(cells)}
    return sorted(results, key=lambda r: order[r.cell_id])


def _result_base(matrix: Matrix, cell: Cell, runner: str) -> dict:
    """What every CellResult of ``cell`` carries, run or skipped: its id, axes and expectation."""
    expectation = matrix.expectation(cell)
    return dict(cell_id=cell.id, expected=expectation.outcome, bug=expectation.bug, runner=runner,
                axes=cell.axes, fixed_outcome=expectation.fixed_outcome if expectation.bug else None)


def _skipped(matrix: Matrix, cell: Cell, runner: str, reason: str) -> CellResult:
    return CellResult(outcome=None, evidence="", skip_reason=reason, rc=None, duration=0.0,
                      **_result_base(matrix, cell, runner))
