"""One run of a matrix, as a pipeline of small steps: hold the output directory, provision, build,
prepare, run, record.

Results are appended to ``results.jsonl`` as each cell finishes, so a killed run loses nothing
it had finished; the cell's command (``command.sh``), output and verdict go to ``cells/<id>/``
(see harness/results/outdir.py for the lock and how both are written). Ctrl-C stops the running cells at
once (harness/interrupt.py): each is recorded as an ``error`` saying it was interrupted, with no
folder, the cells not started are not run, and ``execute`` raises ``Interrupted`` with the results.
"""

from __future__ import annotations

import concurrent.futures
import json
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Self

from harness import interrupt, nixld, nixpkgs, provision
from harness import shard as shard_mod
from harness.artifacts import provide as artifacts_provide
from harness.artifacts.spec import Kind
from harness.cache import Cache, installed
from harness.cache import entry as cache_entry
from harness.errors import LdmatrixError
from harness.matrix import BinarySpec, Matrix, subject
from harness.model import (
    Cell,
    CellResult,
    CommandResult,
    GlibcSet,
    LibrarySet,
    NotRun,
    Outcome,
    OutputCheck,
    PreparedCell,
    StorePath,
    Strategy,
    Verdict,
)
from harness.nixpkgs.release import pin_release
from harness.outcome import classify
from harness.prepare import Provisioned, library_attributes, prepare
from harness.progress import NullProgress, Progress
from harness.provision import Lock, own_libraries, stub_ld
from harness.provision.package_root import package_root
from harness.provision.packages import PackageStore
from harness.results import command_script
from harness.results.outdir import CELL_FILE, RunDirectory
from harness.root.launch import Tools
from harness.root.release import CURRENT, RELEASES, NixosRelease
from harness.root.system import SystemPaths
from harness.runners import get_runner
from harness.runners.base import Runner
from harness.shard import Shard


@dataclass
class RunOptions:
    runner: str | None = None  # None: the matrix's own
    select: str | None = None  # -k
    jobs: int = 2
    out: Path = Path(".ldmatrix/results")
    nix_ld: nixld.Supply = field(default_factory=nixld.Supply)  # --nix-ld items and archive directories
    cache: Cache = field(default_factory=Cache.default)
    lock: Lock | None = None  # the package lock; None: matrices/packages.lock.json
    nixpkgs: nixpkgs.NixpkgsSupply = field(default_factory=nixpkgs.NixpkgsSupply)  # --nixpkgs pins, realised
    shard: Shard | None = None  # --shard K/N: this slice of the selected cells (harness/shard.py)

    def cells(self, matrix: Matrix) -> tuple[Cell, ...]:
        """The cells this run runs: those ``-k`` selects, then this shard's slice of them."""
        cells = matrix.select(self.select)
        return shard_mod.select(matrix, cells, self.shard) if self.shard else cells


def needed(matrix: Matrix, cells: Iterable[Cell]) -> tuple[set[str], set[tuple[str, str]]]:
    """The glibc builds (Cell.glibc_key) and (reproducer, suite) builds the cells use."""
    glibcs: set[str] = set()
    builds: set[tuple[str, str]] = set()
    for cell in cells:
        glibcs.add(cell.glibc_key)
        spec = matrix.binaries[cell.binary]
        for binary in (spec, matrix.binaries[spec.child]) if spec.child else (spec,):
            if binary.artifact is None and binary.nix_ld_test is None:  # fetched (harness/artifacts/), or
                builds.add(binary.key)  # nix-ld's tests' fixture (harness/own_libraries.py)
    return glibcs, builds


def provision_all(matrix: Matrix, cells: tuple[Cell, ...], options: RunOptions, progress: Progress,
                  runner: Runner | None = None) -> Provisioned:
    """What ``cells`` need, each made once in the cache or found there; the reproducers compiled by
    ``runner`` (default: the one the options or the matrix name)."""
    glibcs, builds = needed(matrix, cells)
    cache_entry.sweep_cache(options.cache, progress)  # half-built entries of killed runs
    programs = artifacts_provide.for_cells(matrix, cells, options.cache, progress)  # first: a wrong pin stops early
    glibc_sets = options.nixpkgs.glibc_sets()  # a pin's own, realised; the unrealised ones' cells skip
    glibc_missing = {key: why for key, why in options.nixpkgs.missing().items() if key in glibcs}
    for version in sorted(glibcs - glibc_sets.keys() - glibc_missing.keys()):
        progress.step(f"store paths for glibc {version}")
        glibc_sets[version] = provision.provision_glibc(version, options.cache, progress, lock=options.lock)
    in_container = {subject(matrix.binaries, c.binary) for c in cells if Strategy.CONTAINER in c.strategy}
    packages = {s for s in in_container if s.artifact is not None and s.artifact.kind is Kind.DEB}
    suites = sorted({suite for _, suite in builds} | {str(s.built_in) for s in in_container - packages})
    roots = {}
    for suite in suites:
        progress.step(f"build root {suite}")
        roots[suite] = provision.build_root(suite, options.cache, progress)
    package_roots = {s.name: package_root(str(s.built_in), programs[s.key], options.cache, progress)
                     for s in sorted(packages, key=lambda s: s.name)}
    compiler = runner or get_runner(options.runner or matrix.runner)  # docker: inside the gcc image of the suite
    binaries = dict(programs)
    for name, suite in sorted(builds):
        progress.step(f"build {name} in {suite}")
        binaries[(name, suite)] = compiler.build_reproducer(name, roots[suite], options.cache, progress)
    own = own_libraries.provide(matrix, cells, options.nix_ld, roots,
                                lambda suite: provision.build_root(suite, options.cache, progress), options.cache,
                                progress)
    binaries.update(own.binaries)
    here = [c for c in cells if c.glibc_key in glibc_sets]
    systems, libraries, tools = nixos_systems(matrix, here, glibc_sets, options, progress, own.libraries)
    # A pin's own nix-ld serves its version on the pin's column; every other cell's comes from nixld.
    labels = {c.nix_ld for c in cells if c.nix_ld is not None and c.glibc_key in glibc_sets
              and not glibc_sets[c.glibc_key].own_nix_ld_for(c.nix_ld)}
    nix_ld = nixld.provide(labels, options.nix_ld, matrix.nix_ld_sources, options.cache, progress)
    nix_built = nix_built_programs(matrix, here, glibc_sets, options, progress)
    stub = None
    if any(_has_stub_ld(matrix, c, glibc_sets) for c in here if Strategy.CONTAINER not in c.strategy):
        progress.step("stub-ld (NixOS 24.05+'s /lib64/ld-linux-x86-64.so.2)")
        stub = stub_ld.store_path(options.cache, progress)
    return Provisioned(glibc=glibc_sets, roots=roots, binaries=binaries, nix_ld=nix_ld.store_paths,
                     nix_ld_missing=nix_ld.missing, nix_ld_origins=nix_ld.origins, tools=tools, systems=systems,
                     libraries=libraries, cache=options.cache, glibc_missing=glibc_missing,
                     library_sets=dict(matrix.library_sets), stub_ld=stub, nix_built=nix_built,
                     package_roots=package_roots, own_libraries=own.libraries, missing=own.missing)


def nix_built_programs(matrix: Matrix, cells: Iterable[Cell], glibc_sets: Mapping[str, GlibcSet], options: RunOptions,
                       progress: Progress) -> dict[str, tuple[GlibcSet, LibrarySet]]:
    """For each Nix-built child the cells start (``nix_built``): the glibc build and the libraries Nix
    built it against, whatever the cells' own glibc is (a user profile of a newer channel)."""

    names = {matrix.binaries[c.binary].child for c in cells} - {None}
    out: dict[str, tuple[GlibcSet, LibrarySet]] = {}
    for name in sorted(n for n in names if n is not None and matrix.binaries[n].nix_built is not None):
        built = matrix.binaries[name].nix_built
        assert built is not None
        glibc = glibc_sets.get(built.glibc)
        if glibc is None:
            progress.step(f"store paths for glibc {built.glibc} ({name} is Nix-built against it)")
            glibc = provision.provision_glibc(built.glibc, options.cache, progress, lock=options.lock)
        libraries = LibrarySet()
        if built.libs:
            progress.step(f"library set [{' '.join(built.libs)}] for glibc {built.glibc} ({name})")
            store = PackageStore(glibc, options.lock or provision.load_lock(), options.cache, progress)
            libraries = store.libraries(built.libs)
        out[name] = (glibc, libraries)
    return out


def _has_stub_ld(matrix: Matrix, cell: Cell, glibc_sets: Mapping[str, GlibcSet]) -> bool:
    try:
        return release_of(matrix, cell, glibc_sets).stub_ld
    except LdmatrixError:  # a pin whose modules were not read: its cells say so when they are prepared
        return False


def release_of(matrix: Matrix, cell: Cell, glibc_sets: Mapping[str, GlibcSet]) -> NixosRelease:
    """The NixOS release whose behaviour a cell's root has: a pin's own (read from its tree), or the
    matrix's for Debian's builds."""
    glibc = glibc_sets.get(cell.glibc_key)
    if glibc is not None and glibc.nixpkgs is not None:
        return pin_release(glibc.nixpkgs)
    return RELEASES[matrix.release(cell) or CURRENT]


def nixos_systems(matrix: Matrix, cells: Iterable[Cell], glibc_sets: dict[str, GlibcSet], options: RunOptions,
                  progress: Progress, own: Mapping[str, StorePath] | None = None
                  ) -> tuple[dict[str, SystemPaths], dict[tuple[str, tuple[str, ...]], LibrarySet], dict[str, Tools]]:
    """Per store glibc the cells run on in the NixOS-like root: the system's store paths (coreutils,
    bash, ldd, python3, tzdata, certificates) and the library sets the cells name."""
    nixos = [c for c in cells if Strategy.CONTAINER not in c.strategy]
    if not nixos:
        return {}, {}, {}
    lock = options.lock or provision.load_lock()
    systems: dict[str, SystemPaths] = {}
    libraries: dict[tuple[str, tuple[str, ...]], LibrarySet] = {}
    tools: dict[str, Tools] = {}
    for key in sorted({c.glibc_key for c in nixos}):
        glibc = glibc_sets[key]
        if glibc.nixpkgs:  # a pin's own store: its bash and ldd (harness/nixpkgs), its nix-ld defaults
            tools[key] = Tools(busybox=glibc.shell, bash=glibc.bash)
            continue
        store = PackageStore(glibc, lock, options.cache, progress)
        progress.step(f"NixOS system for glibc {key}: coreutils, grep, sed, findutils, bash, ldd, python3, "
                      "tzdata, certificates")
        systems[key] = SystemPaths(coreutils=store.closure("coreutils"), tools=store.closure("tools"),
                                   ldd=store.glibc_bin(),
                                   tzdata=store.closure("tzdata")[0], cacert=store.closure("cacert")[0],
                                   bash=store.closure("bash"), python=store.python_closure())
        wanted: set[tuple[str, ...]] = set()
        for cell in (c for c in nixos if c.glibc_key == key):
            wanted.update(library_attributes(cell.libs, matrix.library_sets, release_of(matrix, cell, glibc_sets),
                                             matrix.own_libraries))
        for attrs in sorted(wanted - {()}):
            progress.step(f"library set [{' '.join(attrs)}] for glibc {key}")
            libraries[(key, attrs)] = with_own(store, attrs, matrix.own_libraries, own or {})
        tools[key] = Tools(busybox=glibc.shell)
    return systems, libraries, tools


def with_own(store: PackageStore, attrs: tuple[str, ...], names: Collection[str],
             own: Mapping[str, StorePath]) -> LibrarySet:
    """A library set as Nix builds it (harness/provision/packages.py), with the directories of ours it
    names (``names``; ``own``: those built) among its own store paths (a RUNPATH or LD_LIBRARY_PATH
    names them as it names packages)."""
    packages = tuple(a for a in attrs if a not in names)
    built = store.libraries(packages) if packages else LibrarySet()
    ours = tuple(own[a] for a in attrs if a in own)
    return LibrarySet(attrs, built.own + ours, built.closure + ours)


def run_one(matrix: Matrix, cell: Cell, art: Provisioned, runner: Runner, rundir: RunDirectory) -> CellResult | None:
    """Prepare and run one cell; its folder is published whole (``cells/<id>/``) once it has run.

    Whatever goes wrong for this cell becomes its result, not the run's end: a runner's NotRun is
    a skip or an ``error`` with its reason, a harness failure an ``error`` saying what failed,
    never a made-up exit status. None: the run was interrupted before this cell started."""
    if interrupt.requested():
        return None
    staged = _stage(matrix, cell, art, runner, rundir)
    if staged.prepared is None:
        return staged.done()
    if interrupt.requested():
        staged.done_without_result()
        return None
    try:
        result: CommandResult | NotRun | Exception = runner.run(staged.prepared)
    except Exception as err:  # noqa: BLE001 - one cell's failure, told in one line
        result = err
    return staged.finish(result, runner, rundir, art)


def run_batch(matrix: Matrix, cells: Iterable[Cell], art: Provisioned, runner: Runner,
              rundir: RunDirectory) -> list[CellResult]:
    """Prepare every cell, then hand the prepared ones to the runner at once (``runner.run_batch``:
    the nixos-vm runner boots one VM per pin for all of its cells), then record each as run_one does."""
    staged = [_stage(matrix, cell, art, runner, rundir) for cell in cells]
    ready = [s for s in staged if s.prepared is not None]
    results: list[CommandResult | NotRun | Exception]
    try:
        results = list(runner.run_batch([s.prepared for s in ready if s.prepared is not None]))
        if len(results) != len(ready):
            raise RuntimeError(f"{runner.name} answered {len(results)} of {len(ready)} cells")
    except Exception as err:  # noqa: BLE001 - the batch failed as a whole: each of its cells says so
        results = [err] * len(ready)
    done = {id(s): s.finish(r, runner, rundir, art) for s, r in zip(ready, results)}
    return [done[id(s)] if id(s) in done else s.done() for s in staged]


@dataclass
class _Staged:
    """One cell between preparing and recording: its folder, its HOME, and what became of it."""

    cell: Cell
    base: dict
    staging: Path
    home: Path
    rundir: RunDirectory
    check: OutputCheck | None = None  # a real program's success; None: a reproducer's own check line
    prepared: PreparedCell | None = None
    early: CellResult | None = None  # skipped, or a harness error while preparing

    def done(self) -> CellResult:
        self.done_without_result()
        assert self.early is not None
        return self.early

    def done_without_result(self) -> None:
        self.rundir.discard(self.home)
        self.rundir.discard(self.staging)

    def finish(self, result: CommandResult | NotRun | Exception, runner: Runner, rundir: RunDirectory,
               art: Provisioned) -> CellResult:
        base, prepared = self.base, self.prepared
        assert prepared is not None
        try:
            if isinstance(result, Exception):
                return _harness_error(base, f"ldmatrix could not run this cell: running it ({runner.name}) failed: "
                                            f"{_one_line(result)}")
            if isinstance(result, NotRun):
                if not result.error:
                    return CellResult(outcome=None, evidence="", skip_reason=result.reason, rc=None, duration=0.0,
                                      **base)
                return _harness_error(base, f"{runner.name} did not run this cell: {result.reason}")
            if result.interrupted:  # no outcome, and no folder: nothing of it is a result
                verdict = classify(result, self.check)
                return CellResult(outcome=verdict.outcome, evidence=verdict.evidence, skip_reason=None, rc=None,
                                  duration=result.duration, argv=prepared.argv, env=prepared.env, **base)
            changed = installed.unchanged(prepared.binaries)  # cell.json names what ran: it must be so
            verdict = classify(result, self.check) if changed is None else \
                Verdict(Outcome.ERROR, f"ldmatrix: {changed}: what ran is not what was checked; not a result")
            (self.staging / "stdout").write_text(result.stdout)
            (self.staging / "stderr").write_text(result.stderr)
            (self.staging / CELL_FILE).write_text(json.dumps(cell_record(prepared, result, verdict), indent=1) + "\n")
            folder = rundir.publish(self.staging, self.cell.id)
        finally:
            rundir.discard(self.home)
            rundir.discard(self.staging)  # published (gone already), skipped, or a harness error
        return CellResult(outcome=verdict.outcome, evidence=verdict.evidence, skip_reason=None, rc=result.rc,
                          duration=result.duration, argv=prepared.argv, env=prepared.env, stdout=result.stdout,
                          stderr=result.stderr, **base, output_cut=result.stdout_cut + result.stderr_cut,
                          extra=_extra(prepared.root.kind.value, folder, self.cell, art),
                          predicted=prepared.predicted, prediction=prepared.prediction)


def _stage(matrix: Matrix, cell: Cell, art: Provisioned, runner: Runner, rundir: RunDirectory) -> _Staged:
    spec = matrix.binaries[cell.binary]
    child = matrix.binaries[spec.child] if spec.child else None
    staged = _Staged(cell, _result_base(matrix, cell, runner.name), rundir.staging(cell.id), rundir.scratch(cell.id),
                     rundir, verdict_check(spec, child))
    try:
        release = release_of(matrix, cell, art.glibc if art is not None else {})
        prepared = prepare(cell, spec, child, art, staged.staging, matrix.timeout, home=staged.home, release=release)
    except Exception as err:  # noqa: BLE001 - one cell's failure, told in one line
        staged.early = _harness_error(staged.base,
                                      f"ldmatrix could not run this cell: preparing failed: {_one_line(err)}")
        return staged
    if isinstance(prepared, NotRun):
        staged.early = CellResult(outcome=None, evidence="", skip_reason=prepared.reason, rc=None, duration=0.0,
                                  **staged.base) if not prepared.error else \
            _harness_error(staged.base, f"ldmatrix could not run this cell: {prepared.reason}")
    else:
        staged.prepared = prepared
    return staged


def verdict_check(spec: BinarySpec, child: BinarySpec | None) -> OutputCheck | None:
    """What a cell's run is judged by (None: the printer's own check line): the program's check; with a
    child, the child's (a launcher's, or a prebuilt parent's: a printer's line its parent relays as
    its verdict, or a real program's output passed through), unless the parent starts it by itself."""
    if child is None or not spec.passes_child:
        return spec.check
    return child.check


def cell_record(prepared: PreparedCell, result: CommandResult, verdict: Verdict) -> dict:
    """``cells/<id>/cell.json``: the verdict with its proving line, and the binaries by path and digest."""
    return {
        "cell_id": prepared.cell.id,
        "outcome": verdict.outcome.value,
        "evidence": verdict.evidence,
        "rc": result.rc,
        "timed_out": result.timed_out,
        "duration": result.duration,
        "output_cut": result.stdout_cut + result.stderr_cut,
        "command": command_script.NAME,
        "binaries": [{"path": b.path, "host_path": str(b.host_path), "sha256": b.sha256,
                      "built_sha256": b.built_sha256, "interpreter": b.interpreter, "runpath": list(b.runpath)}
                     for b in prepared.binaries],
    }


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


def header_record(matrix: Matrix, runner: str, pins: nixpkgs.NixpkgsSupply | None = None,
                  options: RunOptions | None = None, cells: int | None = None) -> dict:
    header: dict = {"matrix": str(matrix.path), "name": matrix.name, "runner": runner, "started": time.time()}
    if pins is not None and pins.columns:
        header["nixpkgs"] = pins.header()  # each pin's revision and glibc: what a diff says moved
    if cells is not None:  # how many results make this run whole (`ldmatrix merge` checks it)
        header["cells"] = cells
    if options is not None and options.select:
        header["select"] = options.select
    if options is not None and options.shard:
        header["shard"] = str(options.shard)
    return header


class Run:
    """One run of a matrix's cells, as a context manager: it holds ``<out>/<matrix>/`` (a second run
    there stops at once, harness/results/outdir.py), makes the runner, provisions what the cells need
    (unless the runner is unavailable here: every cell is then skipped saying why), writes the
    results header; at the end it closes the results log and the runner and lets the directory go.

        with Run(matrix, options, progress) as run:       # ldmatrix run and guard: the whole run
            results = run.execute(on_result)
        with Run(matrix, options, cells=..., whole=False) as run:   # bisect, the pytest plugin
            result = run.cell(cell)                       # prepared, run and recorded

    ``whole``: the run is every cell of ``options`` (its header says how many, -k and --shard, and
    ``ldmatrix merge`` checks them); otherwise cells are run as they are asked for. ``runner``: one
    already made (and found available), else the one the options or the matrix name.
    """

    def __init__(self, matrix: Matrix, options: RunOptions, progress: Progress | None = None, *,
                 cells: tuple[Cell, ...] | None = None, whole: bool = True, option: str = "--out",
                 runner: Runner | None = None) -> None:
        self.matrix, self.options, self.whole, self.option, self.given = matrix, options, whole, option, runner
        self.progress = progress or NullProgress()
        self.cells = options.cells(matrix) if cells is None else cells
        self.results: list[CellResult] = []

    def __enter__(self) -> Self:
        self.rundir = RunDirectory(self.options.out, self.matrix.name, option=self.option).acquire()
        try:
            self.runner = self.given or get_runner(self.options.runner or self.matrix.runner)
            self.unavailable = self.runner.unavailable()
            self.provisioned = provision_all(self.matrix, self.cells, self.options, self.progress, self.runner) \
                if self.unavailable is None else None
            header = header_record(self.matrix, self.runner.name, self.options.nixpkgs,
                                   *((self.options, len(self.cells)) if self.whole else ()))
            self.log = self.rundir.begin(header)
        except BaseException:
            self.rundir.release()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.log.close()
            self.runner.close()
        finally:
            self.rundir.release()

    def record(self, result: CellResult) -> None:
        self.log.write(result_record(result))
        self.results.append(result)

    def results_of(self, cells: Iterable[Cell], provisioned: Provisioned | None = None) -> list[CellResult]:
        """``cells`` prepared and run (all at once for a runner that batches), not yet recorded.
        KeyboardInterrupt: the run was interrupted (harness/interrupt.py)."""
        cells = list(cells)
        art = provisioned or self.provisioned
        if self.unavailable is not None or art is None:
            return [self.skipped(c) for c in cells]
        if self.runner.batches:
            return run_batch(self.matrix, cells, art, self.runner, self.rundir)
        out = []
        for cell in cells:
            result = run_one(self.matrix, cell, art, self.runner, self.rundir)
            if result is None:
                raise KeyboardInterrupt
            out.append(result)
        return out

    def cell(self, cell: Cell, provisioned: Provisioned | None = None) -> CellResult:
        """One cell prepared, run and recorded."""
        result = self.results_of([cell], provisioned)[0]
        self.record(result)
        return result

    def skipped(self, cell: Cell) -> CellResult:
        reason = f"runner {self.runner.name} unavailable: {self.unavailable}"
        return _skipped(self.matrix, cell, self.runner.name, reason)

    def execute(self, on_result: Callable[[CellResult], None] | None = None) -> list[CellResult]:
        """Every cell of the run, ``-j`` at a time (or as one batch), each recorded as it finishes;
        in the order of the matrix. Ctrl-C: ``interrupt.Interrupted`` with what was recorded."""
        art, runner, cells = self.provisioned, self.runner, self.cells
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=max(1, self.options.jobs))
        batch = self.unavailable is None and runner.batches  # runs in this thread: Ctrl-C raises there
        with interrupt.handling(enabled=not batch), interrupt.last_words(self.rundir.discard_staging):
            try:
                done: Iterable[CellResult | None]
                if self.unavailable is not None or art is None:
                    done = [self.skipped(c) for c in cells]
                elif batch:  # one batch: the nixos-vm runner boots one VM per pin
                    done = run_batch(self.matrix, cells, art, runner, self.rundir)
                else:
                    futures = [pool.submit(run_one, self.matrix, c, art, runner, self.rundir) for c in cells]
                    done = (f.result() for f in concurrent.futures.as_completed(futures) if not f.cancelled())
                for result in done:
                    if result is None:  # not started: the run was interrupted
                        continue
                    self.record(result)
                    if on_result:
                        on_result(result)
            finally:
                pool.shutdown(wait=True, cancel_futures=True)  # Ctrl-C: queued cells are dropped, running ones end
            stopped = interrupt.requested()
        order = {c.id: i for i, c in enumerate(cells)}
        results = sorted(self.results, key=lambda r: order[r.cell_id])
        if stopped:
            raise interrupt.Interrupted(results)
        return results


def execute(matrix: Matrix, options: RunOptions, progress: Progress | None = None,
            on_result: Callable[[CellResult], None] | None = None) -> list[CellResult]:
    """The whole run of ``options``' cells (``ldmatrix run``, ``guard``, ``inspect``'s confirmations)."""
    with Run(matrix, options, progress) as run:  # first: a second run here fails at once
        return run.execute(on_result)


def _result_base(matrix: Matrix, cell: Cell, runner: str) -> dict:
    """What every CellResult of ``cell`` carries, run or skipped: its id, axes and expectation."""
    expectation = matrix.expectation(cell)
    axes = cell.axes
    label = matrix.libs_label(cell)
    if label is not None:
        axes["libs_label"] = label  # what a NixOS user of the release writes: the grid's row says it
    return {"cell_id": cell.id, "expected": expectation.outcome, "bug": expectation.bug, "runner": runner,
                "axes": axes, "fixed_outcome": expectation.fixed_outcome if expectation.bug else None}


def _extra(root: str, workdir: Path, cell: Cell, art: Provisioned | None) -> dict[str, str]:
    extra = {"root": root, "workdir": str(workdir)}
    glibc = art.glibc.get(cell.glibc_key) if art is not None else None
    own = glibc.own_nix_ld_for(cell.nix_ld) if glibc is not None else None
    if own is not None and glibc is not None and glibc.nixpkgs is not None:
        extra["nix_ld"] = f"nixpkgs {glibc.nixpkgs.name} (pkgs.nix-ld, {own.store_path})"
    elif art is not None and cell.nix_ld is not None and cell.nix_ld in art.nix_ld_origins:
        extra["nix_ld"] = art.nix_ld_origins[cell.nix_ld]
    return extra


def _skipped(matrix: Matrix, cell: Cell, runner: str, reason: str) -> CellResult:
    return CellResult(outcome=None, evidence="", skip_reason=reason, rc=None, duration=0.0,
                      **_result_base(matrix, cell, runner))
