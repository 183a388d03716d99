"""pytest plugin: one test per matrix cell, asserting its outcome.

A test module asks for the ``ldmatrix_result`` fixture; ``pytest_generate_tests`` turns it into
one test per cell of ``--ldmatrix MATRIX``, with the cell id as the test id. Known upstream bugs
are ``xfail(strict=True)`` with their reference: the test fails with ``KnownBugReproduced`` while
the bug shows (xfailed), and an XPASS — the bug is gone — fails the run so the matrix is updated.

With pytest-xdist (``-n auto``) each worker provisions from the shared cache (every cache entry is
made under its own lock, so workers wait for one another instead of building twice) and writes its
cells to ``<out>/<matrix>/.workers/<worker>/``; the controller holds ``<out>/<matrix>/`` for the
whole session and at its end merges the workers' results into it (harness/results/merge.py) and prints
the grid.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from harness import matrix as matrix_mod
from harness.errors import LdmatrixError
from harness.model import Cell, CellResult, Outcome
from harness.progress import StderrProgress
from harness.results import report

MATRIX_ENV = "LDMATRIX_MATRIX"  # tox -e matrix sets it to matrices/seed.yaml


class KnownBugReproduced(AssertionError):
    """The cell shows the known upstream bug its matrix names."""


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("ldmatrix")
    group.addoption("--ldmatrix", metavar="MATRIX", default=os.environ.get(MATRIX_ENV) or None,
                    help=f"the matrix YAML whose cells become tests (default ${MATRIX_ENV}; a MATRIX.yaml given "
                         "as an argument names it too)")
    group.addoption("--ldmatrix-runner", default=None, help="sandbox (default), docker or nixos-vm")
    group.addoption("--nix-ld", action="append", default=[], metavar="SPEC", dest="ldmatrix_nix_ld",
                    help="a real nix-ld (repeatable; also $LDMATRIX_NIX_LD): VERSION=PATH of a build, "
                         "src:ARCHIVE-OR-TREE or src:REPO#REV (built here)")
    group.addoption("--nix-ld-archives", action="append", default=[], metavar="DIR", dest="ldmatrix_nix_ld_archives",
                    help="a directory of nix-ld release archives (repeatable; also $LDMATRIX_NIX_LD_ARCHIVES)")
    group.addoption("--ldmatrix-out", default=".ldmatrix/results", help="where results.jsonl goes")


def pytest_configure(config: pytest.Config) -> None:
    """``pytest tests/test_matrix.py matrices/glibc.yaml`` (``tox -e matrix -- matrices/glibc.yaml -n auto``):
    a matrix given as an argument is the matrix, not a file to collect tests from."""
    given = [arg for arg in config.args if arg.endswith((".yaml", ".yml"))]
    if not given:
        return
    if len(given) > 1:
        raise pytest.UsageError(f"one matrix at a time, not {' '.join(given)}")
    config.option.ldmatrix = given[0]
    config.args[:] = [arg for arg in config.args if arg not in given]


def _matrix(config: pytest.Config) -> matrix_mod.Matrix | None:
    path = config.getoption("--ldmatrix")
    if not path:
        return None
    cached = getattr(config, "_ldmatrix_matrix", None)
    if cached is None:
        try:
            cached = matrix_mod.load(Path(path), extra_nix_ld=_nix_ld_supply(config).labels,
                                     nixpkgs=_nixpkgs_supply(config).glibc_columns())
        except LdmatrixError as err:
            raise pytest.UsageError(str(err)) from None
        config._ldmatrix_matrix = cached  # type: ignore[attr-defined]
    return cached


def _nix_ld_supply(config: pytest.Config):
    """The --nix-ld items, resolved once (sources are read: that is how their labels are known)."""
    from harness import nixld
    from harness.cache import Cache

    supply = getattr(config, "_ldmatrix_nix_ld", None)
    if supply is None:
        archives = [Path(p) for p in config.getoption("ldmatrix_nix_ld_archives")]
        supply = nixld.supply(config.getoption("ldmatrix_nix_ld"), archives, Cache.default(), StderrProgress())
        config._ldmatrix_nix_ld = supply  # type: ignore[attr-defined]
    return supply


def _nixpkgs_supply(config: pytest.Config):
    """``$LDMATRIX_NIXPKGS`` pins, realised once (their glibc builds are more columns)."""
    from harness import nixpkgs
    from harness.cache import Cache

    supply = getattr(config, "_ldmatrix_nixpkgs", None)
    if supply is None:
        try:
            supply = nixpkgs.supply([], Cache.default(), StderrProgress())
        except LdmatrixError as err:
            raise pytest.UsageError(str(err)) from None
        config._ldmatrix_nixpkgs = supply  # type: ignore[attr-defined]
    return supply


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "ldmatrix_cell" not in metafunc.fixturenames:
        return
    matrix = _matrix(metafunc.config)
    if matrix is None:
        metafunc.parametrize("ldmatrix_cell", [pytest.param(None, marks=pytest.mark.skip(
            reason="no matrix: pass --ldmatrix matrices/seed.yaml (tox -e matrix does)"))], ids=["no-matrix"])
        return
    params = []
    for cell in matrix.cells:
        expectation = matrix.expectation(cell)
        marks = []
        if expectation.bug:
            marks.append(pytest.mark.xfail(strict=True, raises=KnownBugReproduced,
                                           reason=f"known upstream bug {expectation.bug}"))
        params.append(pytest.param(cell, id=cell.id, marks=marks))
    metafunc.parametrize("ldmatrix_cell", params)


class _TerminalProgress:
    """Provisioning steps on pytest's terminal, past output capture: long work shows progress."""

    def __init__(self, config: pytest.Config):
        self.reporter = config.pluginmanager.get_plugin("terminalreporter")
        self.capture = config.pluginmanager.get_plugin("capturemanager")
        self.fallback = StderrProgress()

    def step(self, message: str) -> None:
        if self.reporter is None or self.capture is None:
            self.fallback.step(message)
            return
        with self.capture.global_and_fixture_disabled():
            self.reporter.write_line(f"[ldmatrix] {message}")
            self.reporter.flush()  # on a pipe (a CI log) the line would wait for the buffer to fill


class _Session:
    """Provisioned once per pytest session; runs cells as their tests ask and logs each result.

    It is a ``Run`` (harness/session.py) as ``ldmatrix run``'s: it holds ``<out>/<matrix>/`` (a
    second session or run with the same output directory stops at once, saying which one holds
    it). A runner that batches (the nixos-vm runner: one VM per pin) is handed, with the first cell
    of a pin that a test asks for, every selected cell of that pin not run yet; each result is
    recorded when its own test asks for it.
    """

    def __init__(self, config: pytest.Config, matrix: matrix_mod.Matrix):
        from harness.session import Run, RunOptions

        self.matrix = matrix
        out = Path(config.getoption("--ldmatrix-out"))
        worker = _worker(config)
        if worker is not None:  # the controller holds <out>/<matrix>/ and merges the workers' runs into it
            out = out / matrix.name / WORKERS / worker
        options = RunOptions(runner=config.getoption("--ldmatrix-runner"), out=out,
                             nix_ld=_nix_ld_supply(config), nixpkgs=_nixpkgs_supply(config))
        self.run = Run(matrix, options, _TerminalProgress(config), cells=matrix.cells, whole=False,
                       option="--ldmatrix-out").__enter__()
        self.selected: list[Cell] = getattr(config, "_ldmatrix_selected", None) or list(matrix.cells)
        self.answers: dict[str, CellResult] = {}  # run in a batch, not yet asked for
        self.asked: set[str] = set()

    @property
    def results(self) -> list[CellResult]:
        return self.run.results

    def result(self, cell: Cell) -> CellResult:
        if self.run.unavailable is not None:
            pytest.skip(f"runner {self.run.runner.name} unavailable: {self.run.unavailable}")
        if cell.id not in self.answers:
            batch = [cell]
            if self.run.runner.batches:  # the rest of its pin's cells with it: one VM per pin
                batch += [c for c in self.selected
                          if c.glibc_key == cell.glibc_key and c.id != cell.id and c.id not in self.answers
                          and c.id not in self.asked]
            for result in self.run.results_of(batch):
                self.answers[result.cell_id] = result
        result = self.answers.pop(cell.id)
        self.asked.add(cell.id)
        self.run.record(result)
        return result

    def close(self) -> None:
        self.run.__exit__(None, None, None)


@pytest.hookimpl(wrapper=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]):
    """The cells whose tests are selected (after -k and marks): a batching runner's batches."""
    yield
    params = [getattr(item, "callspec", None) for item in items]
    cells = [p.params["ldmatrix_cell"] for p in params if p is not None and "ldmatrix_cell" in p.params]
    config._ldmatrix_selected = [c for c in cells if c is not None]  # type: ignore[attr-defined]


@pytest.fixture(scope="session")
def ldmatrix_session(request: pytest.FixtureRequest):
    matrix = _matrix(request.config)
    if matrix is None:
        pytest.skip("no matrix: pass --ldmatrix MATRIX")
    from harness.results.outdir import DirectoryInUse

    try:
        session = _Session(request.config, matrix)
    except DirectoryInUse as err:
        pytest.exit(f"ldmatrix: {err}", returncode=2)  # every cell would fail the same way: stop now
    except LdmatrixError as err:
        pytest.fail(f"provisioning failed: {err}", pytrace=False)
    request.config._ldmatrix_session = session  # type: ignore[attr-defined]
    yield session
    session.close()


@pytest.fixture
def ldmatrix_result(ldmatrix_cell: Cell, ldmatrix_session: _Session) -> CellResult:
    result = ldmatrix_session.result(ldmatrix_cell)
    if result.skip_reason:
        pytest.skip(result.skip_reason)
    return result


def assert_expected(result: CellResult) -> None:
    """The cell's outcome is what its matrix expects; a known bug raises KnownBugReproduced."""
    got = result.outcome.value if result.outcome else "skipped"
    detail = f"{result.cell_id}: {got} (evidence: {result.evidence}); see: ldmatrix show {result.cell_id}"
    if result.bug and result.outcome == result.expected:
        raise KnownBugReproduced(f"{detail}; upstream bug {result.bug}")
    if result.bug:
        # Not the bug: the fixed outcome passes, so the strict xfail turns into a failing XPASS.
        fixed = result.fixed_outcome or Outcome.OK
        assert result.outcome == fixed, (
            f"expected the known bug's {result.expected.value if result.expected else '?'} or {fixed.value}; "
            f"got {detail}")
        return
    assert result.outcome == result.expected, (
        f"expected {result.expected.value if result.expected else '?'}, got {detail}")


WORKERS = ".workers"  # <out>/<matrix>/.workers/<worker>/: each xdist worker's own run


def _worker(config: pytest.Config) -> str | None:
    """This process's xdist worker id (gw0, ...), or None in the controller or without xdist."""
    workerinput = getattr(config, "workerinput", None)
    return str(workerinput["workerid"]) if workerinput else None


def _distributed(config: pytest.Config) -> bool:
    """Whether this is the controller of xdist workers (``-n N`` with N >= 1)."""
    return _worker(config) is None and getattr(config.option, "dist", "no") != "no" and \
        bool(getattr(config.option, "numprocesses", None))


class _Controller:
    """The xdist controller's hold on ``<out>/<matrix>/``: no cell runs here; the workers' results
    are merged into it at the end."""

    def __init__(self, config: pytest.Config, matrix: matrix_mod.Matrix):
        import shutil

        from harness.results.outdir import RunDirectory

        self.matrix = matrix
        self.rundir = RunDirectory(Path(config.getoption("--ldmatrix-out")), matrix.name,
                                   option="--ldmatrix-out").acquire()
        shutil.rmtree(self.rundir.path / WORKERS, ignore_errors=True)  # a previous session's
        self.results: list[CellResult] = []

    def finish(self) -> None:
        import shutil

        from harness.results import merge

        try:
            files = sorted((self.rundir.path / WORKERS).glob(f"*/{self.matrix.name}/results.jsonl"))
            if files:
                merged = merge.merge(files, self.matrix.path, shards=False)
                self.results = merge.write(merged, self.rundir)
            else:  # no worker ran a cell: an empty run, not the previous one's results
                from harness.session import header_record

                self.rundir.begin(header_record(self.matrix, self.matrix.runner)).close()
            shutil.rmtree(self.rundir.path / WORKERS, ignore_errors=True)
        finally:
            self.rundir.release()


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    config = session.config
    if not _distributed(config):
        return
    matrix = _matrix(config)
    if matrix is None:
        return
    from harness.results.outdir import DirectoryInUse

    try:
        config._ldmatrix_session = _Controller(config, matrix)  # type: ignore[attr-defined]
    except DirectoryInUse as err:
        pytest.exit(f"ldmatrix: {err}", returncode=2)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    controller = getattr(session.config, "_ldmatrix_session", None)
    if isinstance(controller, _Controller):
        controller.finish()


def pytest_terminal_summary(terminalreporter, exitstatus, config: pytest.Config) -> None:
    session = getattr(config, "_ldmatrix_session", None)
    if session is None or not session.results:
        return
    order = {c.id: i for i, c in enumerate(session.matrix.cells)}
    results = sorted(session.results, key=lambda r: order.get(r.cell_id, 0))
    terminalreporter.section(f"ldmatrix grid: {session.matrix.name}")
    terminalreporter.write_line(report.grid(results))
    terminalreporter.write_line(report.legend())
    terminalreporter.write_line(report.summary(results))
