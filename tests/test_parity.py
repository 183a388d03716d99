"""``ldmatrix parity``: recorded results files of one matrix compared cell by cell across runners and
glibc builds (tests/data/parity/: one difference the matrix names, one it does not, one cell missing
on one side), the exit status, the job summary, and ``differs:`` validated like every matrix key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness import matrix as matrix_mod
from harness.cli import main
from harness.errors import MatrixError
from harness.model import Cell, CellResult, Launch, Outcome, Strategy
from harness.results import parity as parity_mod

DATA = Path(__file__).resolve().parent / "data" / "parity"
DEBIAN, SANDBOX_PIN, VM_PIN = (str(DATA / n) for n in ("debian.jsonl", "sandbox-pin.jsonl", "vm-pin.jsonl"))
MATRIX = DATA / "parity.yaml"


def parity(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = main(["parity", *args])
    out = capsys.readouterr()
    return status, out.out, out.err


def row(out: str, key: str) -> tuple[list[str], str]:
    """A cell's states, and the verdict line under it."""
    lines = out.splitlines()
    at = next(i for i, line in enumerate(lines) if line.split()[:1] == [key])
    return lines[at].split()[1:], lines[at + 1].strip()


def test_a_difference_not_named_and_a_missing_cell_fail_a_named_one_does_not(
        capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = parity(capsys, DEBIAN, SANDBOX_PIN, VM_PIN, "--matrix", str(MATRIX))
    assert status == 1 and err == ""
    assert out.splitlines()[0] == "parity of parity: 4 cells compared, 3 differ (1 named, 2 not)"
    assert out.splitlines()[4].split() == ["cell", "A", "glibc-2.36", "A", "glibc-2.41", "B", "nixos-24.11", "C",
                                           "nixos-24.11"]
    states, verdict = row(out, "c-needs-glibc-2.38.patchelf")  # Debian's 2.36 vs the pin: named
    assert states == ["glibc-too-old", "ok", "ok", "ok"]
    assert verdict == ("named: Debian's glibc 2.36 is older than the 2.38 the binary needs; the pin's is not "
                       f"({MATRIX.relative_to(Path.cwd()) if MATRIX.is_relative_to(Path.cwd()) else MATRIX}:22)")
    states, verdict = row(out, "c-hello.patchelf")  # the VM against everything else: named nowhere
    assert states == ["ok", "ok", "ok", "crash"] and verdict.startswith("NOT NAMED: ")
    assert "B nixos-24.11 ok / C nixos-24.11 crash" in verdict
    states, verdict = row(out, "c-needs-libcrypt.patchelf")  # missing on one side
    assert states[-1] == "absent" and "B nixos-24.11 missing-library / C nixos-24.11 absent" in verdict
    assert "c-hello.none" not in out  # stub-ld's words, the same outcome: no difference


def test_every_difference_named_is_a_clean_comparison(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    named = tmp_path / "parity.yaml"
    named.write_text(MATRIX.read_text()
                     + "  - when: {binary: c-hello, strategy: patchelf}\n"
                     + "    between: [sandbox, nixos-vm]\n"
                     + '    reason: "a finding to fix in the stand-in"\n'
                     + "  - when: {binary: c-needs-libcrypt}\n"
                     + "    between: [nixos-vm, sandbox]\n"
                     + '    reason: "not run in the VM"\n')
    status, out, _ = parity(capsys, DEBIAN, SANDBOX_PIN, VM_PIN, "--matrix", str(named))
    assert status == 0, out
    assert "3 differ (3 named, 0 not)" in out and "NOT NAMED" not in out
    assert row(out, "c-needs-libcrypt.patchelf")[1] == f"named: not run in the VM ({named}:28)"  # its entry


def test_two_files_and_the_job_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    summary = tmp_path / "summary.md"
    status, out, _ = parity(capsys, DEBIAN, SANDBOX_PIN, "--matrix", str(MATRIX), "--summary", str(summary))
    assert status == 0 and "1 differ (1 named, 0 not)" in out
    status, _, _ = parity(capsys, SANDBOX_PIN, VM_PIN, "--matrix", str(MATRIX), "--summary", str(summary))
    assert status == 1
    text = summary.read_text()
    assert text.count("## ldmatrix parity: parity") == 2 and "**not clean**" in text
    assert "| cell | A nixos-24.11 | B nixos-24.11 | why |" in text  # the second run's files are its A and B
    assert "| c-hello.patchelf | ok | crash | NOT NAMED: A nixos-24.11 ok / B nixos-24.11 crash |" in text


def _lines(path: str) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


def test_nothing_compared_is_not_a_pass(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Debian's 2.36 against Debian's 2.41 is the glibc axis, not a difference of runners or builds."""
    head, *cells = _lines(DEBIAN)
    for name, build in (("a.jsonl", "glibc-2.36"), ("b.jsonl", "glibc-2.41")):
        (tmp_path / name).write_text("".join(json.dumps(r) + "\n" for r in [head, *cells] if "cell_id" not in r
                                             or r["cell_id"].endswith(build)))
    status, out, _ = parity(capsys, str(tmp_path / "a.jsonl"), str(tmp_path / "b.jsonl"), "--matrix", str(MATRIX))
    assert status == 1 and "0 cells compared" in out and "nothing was compared" in out


def test_a_damaged_line_or_a_cell_of_another_matrix_is_not_a_pass(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    damaged = tmp_path / "damaged.jsonl"
    damaged.write_text(Path(SANDBOX_PIN).read_text() + '{"cell_id": "c-hello.patchelf.nixos-2')
    status, out, _ = parity(capsys, DEBIAN, str(damaged), "--matrix", str(MATRIX))
    assert status == 1 and f"damaged: {damaged}:6: not valid JSON (cut short" in out
    stranger = tmp_path / "stranger.jsonl"
    head, *cells = _lines(SANDBOX_PIN)
    cells[0] = {**cells[0], "cell_id": "c-other.none.nixos-24.11", "axes": {**cells[0]["axes"], "binary": "c-other"}}
    stranger.write_text("".join(json.dumps(r) + "\n" for r in [head, *cells]))
    status, out, _ = parity(capsys, DEBIAN, str(stranger), "--matrix", str(MATRIX))
    assert status == 1 and "cell c-other.none.nixos-24.11: not comparable (binary 'c-other' is not in parity)" in out


def test_files_that_cannot_be_compared_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert parity(capsys, DEBIAN)[0:3:2] == (2, "ldmatrix: parity: give two or three results files, not 1\n")
    other = tmp_path / "other.jsonl"
    head, *cells = _lines(SANDBOX_PIN)
    other.write_text("".join(json.dumps(r) + "\n" for r in [{**head, "name": "seed"}, *cells]))
    status, _, err = parity(capsys, DEBIAN, str(other), "--matrix", str(MATRIX))
    assert status == 2 and err.startswith("ldmatrix: parity: the files are runs of different matrices (")
    status, _, err = parity(capsys, DEBIAN, SANDBOX_PIN, "--matrix", str(tmp_path / "none.yaml"))
    assert status == 2 and err == f"ldmatrix: parity: {tmp_path / 'none.yaml'}: no such matrix (give --matrix PATH)\n"


@pytest.mark.parametrize("entry, message", [
    ("{between: [debian, nixos-mv], reason: x}",
     "differs[0].between: unknown side 'nixos-mv'; did you mean 'nixos-vm'? (allowed: debian, nixpkgs, sandbox, "
     "docker, nixos-vm)"),
    ("{between: [debian, nixpkgs]}", "differs[0].reason: is required"),
    ("{reason: x}", "differs[0].between: is required (allowed: debian, nixpkgs, sandbox, docker, nixos-vm)"),
    ("{between: [sandbox, sandbox], reason: x}", "differs[0].between: names 'sandbox' twice"),
    ("{between: sandbox, reason: x}", "differs[0].between: must name two sides"),
    ("{between: [debian, nixpkgs], reason: x, whn: {binary: c-hello}}",
     "whn: unknown key in differs[0]: 'whn'; did you mean 'when'?"),
    ("{between: [debian, nixpkgs], reason: x, when: {binary: c-helo}}",
     "binary: unknown value 'c-helo'; did you mean 'c-hello'?"),
    ("{between: [debian, nixpkgs], reason: '  '}", "differs[0].reason: must say why the sides differ"),
])
def test_a_bad_differs_entry_is_one_line_naming_file_line_and_key(tmp_path: Path, entry: str, message: str) -> None:
    path = tmp_path / "m.yaml"
    head = MATRIX.read_text().split("differs:")[0]
    path.write_text(head + f"differs:\n  - {entry}\n")
    with pytest.raises(MatrixError) as err:
        matrix_mod.load(path)
    text = str(err.value)
    line = head.count("\n") + 2  # the entry's line
    assert message in text and "\n" not in text and text.startswith(f"{path}:{line}: "), text


@pytest.mark.parametrize("cell", [
    Cell("c-hello", (Strategy.NONE,), "2.42", nixos="26.05"),  # a matrix of two releases (releases.yaml)
    Cell("rust-spawn-env", (Strategy.NIX_LD,), "2.41", nix_ld="2.0.6", launch=Launch.BASH_PATH, libs="default",
         name="dot-slash"),  # a matrix naming how the program is started (children.yaml)
    Cell("c-hello", (Strategy.PATCHELF, Strategy.LD_LIBRARY_PATH), "2.40", env="cargo-run", nixpkgs="nixos-24.11"),
], ids=lambda c: c.id)
def test_a_result_is_compared_as_the_cell_it_was_of(cell: Cell) -> None:
    """Before: the release and name axes were dropped, so every cell of such a matrix was "not comparable"."""
    result = CellResult(cell_id=cell.id, outcome=Outcome.OK, evidence="", expected=Outcome.OK, bug=None,
                        skip_reason=None, rc=0, duration=0.01, runner="sandbox", axes=cell.axes)
    assert parity_mod.cell_of(result) == cell
