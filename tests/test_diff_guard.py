"""`ldmatrix diff OLD NEW`, the regression guard: every cell of either run, an exit status CI can use.

The results files are written the way a run writes them (``result_record``); what is compared
is what a real run would have recorded.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.cli import main
from harness.model import Cell, CellResult, Outcome, Strategy
from harness.session import result_record

HEADER = {"matrix": "matrices/seed.yaml", "name": "seed", "runner": "sandbox", "started": 0.0}


def cell_result(binary: str, strategy: Strategy, glibc: str, outcome: Outcome | None,
                evidence: str = "LDMATRIX-CHECK: ok") -> CellResult:
    cell = Cell(binary, (strategy,), glibc)
    return CellResult(cell_id=cell.id, outcome=outcome, evidence=evidence if outcome else "",
                      expected=Outcome.OK, bug=None, skip_reason=None if outcome else "no nix-ld 1.2.2 supplied",
                      rc=0 if outcome else None, duration=0.01, runner="sandbox", axes=cell.axes)


def write_results(path: Path, results: list[CellResult]) -> Path:
    lines = [json.dumps(HEADER)] + [json.dumps(result_record(r), sort_keys=True) for r in results]
    path.write_text("\n".join(lines) + "\n")
    return path


RUN = [cell_result("c-hello", Strategy.PATCHELF, glibc, Outcome.OK) for glibc in ("2.31", "2.36", "2.41", "2.43")]


def diff(capsys: pytest.CaptureFixture[str], old: Path, new: Path, *flags: str) -> tuple[int, str]:
    status = main(["diff", str(old), str(new), *flags])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return status, out


def test_diff_reports_disappeared_cells(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Before: a run that lost cells said "no cell changed its outcome" and exited 0."""
    old = write_results(tmp_path / "old.jsonl", RUN)
    new = write_results(tmp_path / "new.jsonl", RUN[:1])
    status, out = diff(capsys, old, new)
    assert status == 1
    assert "3 disappeared" in out.splitlines()[0]
    for lost in RUN[1:]:
        assert f"{lost.cell_id}: ok -> absent" in out


def test_diff_reports_appeared_cells(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old = write_results(tmp_path / "old.jsonl", RUN[:2])
    new = write_results(tmp_path / "new.jsonl", RUN)
    status, out = diff(capsys, old, new)
    assert status == 1 and "2 appeared" in out and f"{RUN[3].cell_id}: absent -> ok" in out


def test_diff_exits_nonzero_when_a_cell_changed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Before: 176 changed cells still exited 0, so the guard could not fail a CI job."""
    changed = cell_result("c-hello", Strategy.PATCHELF, "2.36", Outcome.GLIBC_TOO_OLD, "version `GLIBC_2.38' not found")
    old = write_results(tmp_path / "old.jsonl", RUN)
    new = write_results(tmp_path / "new.jsonl", [RUN[0], changed, *RUN[2:]])
    status, out = diff(capsys, old, new)
    assert status == 1
    assert f"{changed.cell_id}: ok -> glibc-too-old    version `GLIBC_2.38' not found" in out


def test_diff_reports_cells_skipped_in_one_run_and_run_in_the_other(tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    skipped = [cell_result("c-hello", Strategy.PATCHELF, g, None) for g in ("2.31", "2.36")]
    old = write_results(tmp_path / "old.jsonl", [skipped[0], RUN[1]])
    new = write_results(tmp_path / "new.jsonl", [RUN[0], skipped[1]])
    status, out = diff(capsys, old, new)
    assert status == 1
    assert "now run:" in out and f"{RUN[0].cell_id}: skipped -> ok" in out
    assert "now skipped:" in out and f"{RUN[1].cell_id}: ok -> skipped    no nix-ld 1.2.2 supplied" in out


def test_diff_of_equal_runs_exits_zero(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out = diff(capsys, write_results(tmp_path / "a.jsonl", RUN), write_results(tmp_path / "b.jsonl", RUN))
    assert status == 0 and out.startswith("no cell changed: 4 cells compared")


def test_diff_report_only_exits_zero(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old = write_results(tmp_path / "old.jsonl", RUN)
    new = write_results(tmp_path / "new.jsonl", RUN[:1])
    status, out = diff(capsys, old, new, "--report-only")
    assert status == 0 and "3 disappeared" in out


def test_diff_tolerates_a_truncated_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Before: one line cut short by a killed run ended `ldmatrix diff` with a traceback."""
    old = write_results(tmp_path / "old.jsonl", RUN)
    new = write_results(tmp_path / "new.jsonl", RUN)
    text = new.read_text()
    new.write_text(text[: len(text) - 40])  # the last cell's line cut in the middle
    status, out = diff(capsys, old, new)
    assert status == 1
    assert f"{new}:5: not valid JSON (cut short: the line has no end)" in out
    assert f"{RUN[3].cell_id}: ok -> absent" in out  # the cell on the damaged line is not silently equal


@pytest.mark.parametrize("line, reason", [
    ("not json at all", "not valid JSON"),
    ('["a", "list"]', "not a JSON object but a list"),
    ('{"cell_id": "x", "outcome": "fine", "evidence": "", "runner": "s", "duration": 0}', "outcome: unknown outcome 'fine'"),
    ('{"cell_id": "x", "outcome": "ok", "evidence": "", "runner": "s"}', "duration: missing"),
    ('{"cell_id": "x", "outcome": null, "evidence": "", "runner": "s", "duration": 0}', "neither an outcome nor"),
    ('{"cell_id": "x", "outcome": "ok", "evidence": 3, "runner": "s", "duration": 0}', "evidence: must be a string"),
    ('{"cell_id": "x", "outcome": "ok", "evidence": "", "runner": "s", "duration": 0, "rc": true}', "rc: must be"),
    ('{"name": "seed"}', "neither the header (first line) nor a cell's result"),
])
def test_diff_names_file_line_and_reason_of_a_damaged_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                           line: str, reason: str) -> None:
    old = write_results(tmp_path / "old.jsonl", RUN)
    new = write_results(tmp_path / "new.jsonl", RUN)
    new.write_text(new.read_text() + line + "\n")
    status, out = diff(capsys, old, new)
    assert status == 1 and f"{new}:6: {reason}" in out


def test_diff_reports_a_cell_recorded_twice(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old = write_results(tmp_path / "old.jsonl", RUN)
    new = write_results(tmp_path / "new.jsonl", [*RUN, RUN[2]])
    status, out = diff(capsys, old, new)
    assert status == 1 and f"cell {RUN[2].cell_id} again (first at line 4)" in out


def test_diff_non_utf8_line_is_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old = write_results(tmp_path / "old.jsonl", RUN)
    new = write_results(tmp_path / "new.jsonl", RUN)
    new.write_bytes(new.read_bytes() + b'{"cell_id": "\xff"}\n')
    status, out = diff(capsys, old, new)
    assert status == 1 and f"{new}:6: not UTF-8" in out


def test_diff_summary_is_markdown_for_a_job_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old = write_results(tmp_path / "old.jsonl", RUN)
    new = write_results(tmp_path / "new.jsonl", [RUN[0], cell_result("c-hello", Strategy.PATCHELF, "2.36",
                                                                        Outcome.CRASH, "killed by SIGSEGV | core")])
    summary = tmp_path / "summary.md"
    summary.write_text("# earlier step\n")
    status, _ = diff(capsys, old, new, "--summary", str(summary))
    text = summary.read_text()
    assert status == 1
    assert text.startswith("# earlier step\n")  # appended, as $GITHUB_STEP_SUMMARY collects every step
    assert "### ldmatrix diff: seed" in text and "#### 1 changed outcome" in text and "#### 2 disappeared" in text
    assert "| `c-hello.patchelf.glibc-2.36` | ok | crash | killed by SIGSEGV \\| core |" in text


def test_diff_notes_runs_of_different_matrices(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old = write_results(tmp_path / "old.jsonl", RUN)
    new = write_results(tmp_path / "new.jsonl", RUN)
    new.write_text(new.read_text().replace('"name": "seed"', '"name": "glibc"', 1))
    status, out = diff(capsys, old, new)
    assert status == 0 and "is a run of matrix seed" in out and "of glibc" in out
