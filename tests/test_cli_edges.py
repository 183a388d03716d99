"""The command line's edges: a mistyped cell id, a -k that selects nothing, help that says every default."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from harness.results import report
from harness.cli import main, parser
from harness.model import Cell, CellResult, Outcome, Strategy
from harness.session import result_record

REPO = Path(__file__).resolve().parent.parent
SEED = REPO / "matrices" / "seed.yaml"


def _result(cell: Cell, outcome: Outcome = Outcome.OK) -> CellResult:
    return CellResult(cell_id=cell.id, outcome=outcome, evidence="LDMATRIX-CHECK: ok", expected=Outcome.OK, bug=None,
                      skip_reason=None, rc=0, duration=0.01, runner="sandbox", axes=cell.axes)


def _results_file(tmp_path: Path, cells: list[Cell]) -> Path:
    path = tmp_path / "results.jsonl"
    lines = [json.dumps({"name": "seed", "runner": "sandbox"})]
    lines += [json.dumps(result_record(_result(c))) for c in cells]
    path.write_text("\n".join(lines) + "\n")
    return path


CELLS = [Cell("c-hello", (Strategy.PATCHELF,), "2.36"), Cell("c-hello", (Strategy.PATCHELF,), "2.41"),
         Cell("c-hello", (Strategy.NONE,), "2.36"), Cell("rust-spawn-env", (Strategy.NIX_LD,), "2.36", nix_ld="1.2.2")]


def test_show_with_a_mistyped_cell_names_the_nearest_ids(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    results = _results_file(tmp_path, CELLS)
    assert main(["show", "c-helo.patchelf.glibc-2.36", "--results", str(results)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert f"no result for cell 'c-helo.patchelf.glibc-2.36' in {results}; did you mean " in err[0]
    assert "c-hello.patchelf.glibc-2.36" in err[0] and "c-hello.patchelf.glibc-2.41" in err[0]
    assert "rust-spawn-env" not in err[0]


def test_show_finds_the_cell_from_another_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    results = _results_file(tmp_path, CELLS)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert main(["show", CELLS[0].id, "--results", str(results)]) == 0
    assert "LDMATRIX-CHECK: ok" in capsys.readouterr().out


def test_show_without_any_results_file_says_how_to_name_one(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["show", "c-hello.none.glibc-2.36"]) == 2
    err = capsys.readouterr().err
    assert "--results FILE" in err and err.count("\n") == 1


def test_failures_name_the_results_file_so_show_works_from_anywhere() -> None:
    bad = CellResult(cell_id=CELLS[0].id, outcome=Outcome.MISSING_LIBRARY, evidence="libz.so.1", expected=Outcome.OK,
                     bug=None, skip_reason=None, rc=127, duration=0.01, runner="sandbox", axes=CELLS[0].axes)
    text = report.failures([bad], Path("/abs/out/seed/results.jsonl"))
    assert f"ldmatrix show {CELLS[0].id} --results /abs/out/seed/results.jsonl" in text


def test_list_with_k_matching_nothing_exits_2_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", str(SEED), "-k", "no-such-cell"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("ldmatrix: -k 'no-such-cell' selects no cell of seed (") and \
        captured.err.count("\n") == 1
    assert main(["list", str(SEED), "-k", "c-hello glibc-2.36"]) == 0
    assert "c-hello.patchelf.glibc-2.36" in capsys.readouterr().out


def _options(p: argparse.ArgumentParser, command: str):
    for action in p._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _options(sub, f"{command} {name}")
        elif not isinstance(action, argparse._HelpAction):
            yield command, action


def test_every_argument_has_help_and_says_its_default() -> None:
    missing = []
    for command, action in _options(parser(), "ldmatrix"):
        name = "/".join(action.option_strings) or action.dest
        has_default = action.default not in (None, False, [], argparse.SUPPRESS) and \
            not isinstance(action, argparse._StoreTrueAction)
        if not action.help or (has_default and "default" not in action.help):
            missing.append(f"{command} {name} (default {action.default!r}): {action.help!r}")
    assert not missing, "\n".join(missing)


def test_jobs_help_says_its_default(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--help"]) == 0
    assert "cells run at once (default 2)" in " ".join(capsys.readouterr().out.split())
