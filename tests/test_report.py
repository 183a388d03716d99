"""The grid, the failure list with its `ldmatrix show` line, and the baseline diff."""

from __future__ import annotations

from pathlib import Path

from harness.results import html_grid, report
from harness.results import guard
from harness.results import file as results_file
from harness.model import Cell, CellResult, Outcome, Strategy
from harness.pytest_plugin import KnownBugReproduced, assert_expected
from harness.session import result_record

import json
import pytest


def result(cell: Cell, outcome: Outcome | None, expected: Outcome, bug: str | None = None,
           evidence: str = "the line") -> CellResult:
    return CellResult(cell_id=cell.id, outcome=outcome, evidence=evidence, expected=expected, bug=bug,
                      skip_reason=None if outcome else "no nix-ld", rc=0, duration=0.01, runner="sandbox",
                      axes=cell.axes)


HELLO_NONE = Cell("c-hello", (Strategy.NONE,), "2.31")
HELLO_PATCHED = Cell("c-hello", (Strategy.PATCHELF,), "2.36")
SPAWN = Cell("rust-spawn-env", (Strategy.NIX_LD,), "2.36", nix_ld="1.2.2")


def test_cell_ids_are_readable() -> None:
    assert SPAWN.id == "rust-spawn-env.nix-ld-1.2.2.glibc-2.36"
    assert Cell("c", (Strategy.PATCHELF, Strategy.LD_LIBRARY_PATH), "2.41", env="cargo-run").id == \
        "c.patchelf+LD_LIBRARY_PATH.glibc-2.41.cargo-run"


def test_grid_rows_and_columns() -> None:
    results = [
        result(HELLO_NONE, Outcome.MISSING_INTERPRETER, Outcome.MISSING_INTERPRETER),
        result(HELLO_PATCHED, Outcome.MISSING_LIBRARY, Outcome.OK),
        result(SPAWN, Outcome.ENV_CORRUPTED, Outcome.ENV_CORRUPTED, bug="https://x"),
    ]
    text = report.grid(results)
    lines = text.splitlines()
    assert "glibc 2.31" in lines[0] and "glibc 2.36" in lines[0]
    assert any(line.startswith("c-hello  none") and "missing-interpreter" in line for line in lines)
    assert "!missing-library (want ok)" in text
    assert "env-corrupted ~bug" in text
    assert report.grid(results, markdown=True).startswith("| binary  strategy |")


def test_every_cell_has_its_own_place_in_the_grid() -> None:
    """Library sets are rows of their own; two cells that would still share a place both show."""
    plain = Cell("uv", (Strategy.PATCHELF,), "2.36")
    with_libs = Cell("uv", (Strategy.PATCHELF,), "2.36", libs="default")
    text = report.grid([result(plain, Outcome.MISSING_LIBRARY, Outcome.MISSING_LIBRARY),
                        result(with_libs, Outcome.OK, Outcome.OK)])
    rows = [line for line in text.splitlines() if line.startswith("uv")]
    assert len(rows) == 2 and "libs default" in rows[1] and "missing-library" in rows[0]
    twin = result(plain, Outcome.OK, Outcome.MISSING_LIBRARY)
    twice = report.grid([result(plain, Outcome.MISSING_LIBRARY, Outcome.MISSING_LIBRARY), twin])
    assert "uv.patchelf.glibc-2.36" in twice and "!ok (want missing-library)" in twice


def test_failures_point_to_show() -> None:
    text = report.failures([result(HELLO_PATCHED, Outcome.MISSING_LIBRARY, Outcome.OK, evidence="libcrypt.so.1")])
    assert "ldmatrix show c-hello.patchelf.glibc-2.36" in text and "libcrypt.so.1" in text


def test_diff_shows_only_changes(tmp_path: Path) -> None:
    old = [result(HELLO_PATCHED, Outcome.OK, Outcome.OK), result(HELLO_NONE, Outcome.MISSING_INTERPRETER,
                                                                 Outcome.MISSING_INTERPRETER)]
    new = [result(HELLO_PATCHED, Outcome.GLIBC_TOO_OLD, Outcome.OK, evidence="GLIBC_2.38"), old[1]]
    lines = guard.text(guard.compare(old, new)).splitlines()
    assert lines[1:] == ["changed outcome:", "  c-hello.patchelf.glibc-2.36: ok -> glibc-too-old    GLIBC_2.38"]
    assert guard.text(guard.compare(old, old)).startswith("no cell changed: 2 cells compared")


def test_results_round_trip(tmp_path: Path) -> None:
    original = result(SPAWN, Outcome.ENV_CORRUPTED, Outcome.ENV_CORRUPTED, bug="https://x")
    path = tmp_path / "results.jsonl"
    path.write_text(json.dumps({"name": "header"}) + "\n" + json.dumps(result_record(original)) + "\n")
    loaded = results_file.read(path)
    assert loaded.results == (original,) and not loaded.damaged


def test_known_bug_raises_the_xfail_exception() -> None:
    with pytest.raises(KnownBugReproduced):
        assert_expected(result(SPAWN, Outcome.ENV_CORRUPTED, Outcome.ENV_CORRUPTED, bug="https://x"))


def test_known_bug_fixed_passes_so_strict_xfail_fails_the_run() -> None:
    assert_expected(result(SPAWN, Outcome.OK, Outcome.ENV_CORRUPTED, bug="https://x"))


def test_other_outcome_under_a_known_bug_is_a_real_failure() -> None:
    with pytest.raises(AssertionError) as info:
        assert_expected(result(SPAWN, Outcome.CRASH, Outcome.ENV_CORRUPTED, bug="https://x"))
    assert not isinstance(info.value, KnownBugReproduced)


def test_mismatch_names_the_cell_and_evidence() -> None:
    with pytest.raises(AssertionError, match="ldmatrix show c-hello.patchelf.glibc-2.36"):
        assert_expected(result(HELLO_PATCHED, Outcome.MISSING_LIBRARY, Outcome.OK))


def test_html_page_escapes_the_proving_line_and_names_show() -> None:
    """The page itself is tests/test_html_grid.py's; what reaches it from a cell is escaped."""
    page = html_grid.page([result(HELLO_PATCHED, Outcome.MISSING_LIBRARY, Outcome.OK, evidence="libcrypt.so.1 <x>")],
                       "t")
    assert "o-missing-library m-unexpected" in page
    assert "libcrypt.so.1 &lt;x&gt;" in page and "ldmatrix show c-hello.patchelf.glibc-2.36" in page


def test_progress_under_pytest_is_flushed_before_capture_resumes() -> None:
    """A CI log is a pipe, where pytest's terminal is block-buffered: a provisioning step left in the
    buffer when output capture resumes shows up minutes later, or never (seen under tox: a 25-minute
    glibc build printed nothing). Each step must be out of the buffer while capture is suspended."""
    from contextlib import contextmanager
    from types import SimpleNamespace

    from harness.pytest_plugin import _TerminalProgress

    written: list[str] = []
    buffered: list[str] = []

    class Reporter:
        def write_line(self, line: str) -> None:
            buffered.append(line)

        def flush(self) -> None:
            written.extend(buffered)
            buffered.clear()

    class Capture:
        @contextmanager
        def global_and_fixture_disabled(self):
            yield
            assert not buffered, f"still in the buffer when capture resumed: {buffered}"

    plugins = {"terminalreporter": Reporter(), "capturemanager": Capture()}
    config = SimpleNamespace(pluginmanager=SimpleNamespace(get_plugin=plugins.get))
    _TerminalProgress(config).step("building glibc 2.31")  # type: ignore[arg-type]
    assert written == ["[ldmatrix] building glibc 2.31"]
