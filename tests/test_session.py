"""The session's side of the runner contract: one cell's failure is that cell's result, not the run's end."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from harness import matrix as matrix_mod
from harness import session
from harness.prepare import Provisioned
from harness.runners import base
from harness.cache import REPO_ROOT
from harness.errors import LdmatrixError
from harness.model import CommandResult, Mount, NotRun, Outcome, PreparedCell, RootKind, RootSpec

NOTHING_PROVISIONED = Provisioned(glibc={}, roots={}, binaries={}, nix_ld={})  # prepare() is faked


class FakeRunner(base.Runner):
    name = "fake"

    def __init__(self, answers: dict[str, object]) -> None:
        self.answers = answers

    def unavailable(self) -> str | None:
        return None

    def run(self, prepared: PreparedCell):
        answer = self.answers.get(prepared.cell.id, CommandResult(0, "LDMATRIX-CHECK: ok\n", "", 0.01))
        if isinstance(answer, BaseException):
            raise answer
        return answer

    def close(self) -> None:
        pass


def _run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, answers: dict[str, object], broken: str | None = None):
    seed = matrix_mod.load(REPO_ROOT / "matrices" / "seed.yaml")

    def prepare(cell, spec, child, art, workdir, timeout, home=None, release=None):
        if cell.id == broken:
            raise LdmatrixError("patchelf --set-interpreter /nix/store/x c-hello failed: cannot open")
        workdir.mkdir(parents=True, exist_ok=True)
        return PreparedCell(cell, RootSpec(RootKind.NIXOS, "d"), (Mount(workdir, "/home/user", True),),
                            ("/home/user/bin/x",), (), "/home/user", timeout, workdir)

    monkeypatch.setattr(session, "prepare", prepare)
    monkeypatch.setattr(session, "provision_all", lambda *args: NOTHING_PROVISIONED)
    monkeypatch.setattr(session, "get_runner", lambda name: FakeRunner(answers))
    results = session.execute(seed, session.RunOptions(select="c-hello glibc-2.36", out=tmp_path))
    return {r.cell_id: r for r in results}


def test_one_cells_harness_error_is_that_cells_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    broken = "c-hello.patchelf.glibc-2.36"
    results = _run(tmp_path, monkeypatch, {"c-hello.none.glibc-2.36": OSError(28, "No space left on device")},
                   broken=broken)
    assert len(results) > 3  # the run went on
    assert results[broken].outcome is Outcome.ERROR and results[broken].rc is None
    assert results[broken].evidence == ("ldmatrix could not run this cell: preparing failed: patchelf "
                                        "--set-interpreter /nix/store/x c-hello failed: cannot open")
    crashed = results["c-hello.none.glibc-2.36"]
    assert crashed.outcome is Outcome.ERROR and "running it (fake) failed: OSError: [Errno 28]" in crashed.evidence
    assert results["c-hello.LD_LIBRARY_PATH.glibc-2.36"].outcome is Outcome.OK


def test_not_run_is_a_skip_or_an_error_with_its_reason(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    results = _run(tmp_path, monkeypatch, {
        "c-hello.none.glibc-2.36": NotRun("no pin has glibc 2.36", error=False),
        "c-hello.patchelf.glibc-2.36": NotRun("nix-build exited 1; log: /x"),
    })
    skipped, failed = results["c-hello.none.glibc-2.36"], results["c-hello.patchelf.glibc-2.36"]
    assert skipped.outcome is None and skipped.skip_reason == "no pin has glibc 2.36"
    assert failed.outcome is Outcome.ERROR and failed.rc is None
    assert failed.evidence == "fake did not run this cell: nix-build exited 1; log: /x"


def test_cut_output_is_recorded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    results = _run(tmp_path, monkeypatch, {
        "c-hello.none.glibc-2.36": CommandResult(0, "LDMATRIX-CHECK: ok\n", "", 0.1, stdout_cut=123, stderr_cut=4),
    })
    assert results["c-hello.none.glibc-2.36"].output_cut == 127
    assert dataclasses.asdict(results["c-hello.none.glibc-2.36"])["output_cut"] == 127
