"""Classification from recorded outputs (tests/data/recorded, real sandbox runs) and crafted edge cases."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.model import CommandResult, Outcome, OutputCheck, Verdict
from harness.outcome import classify

RECORDED = Path(__file__).parent / "data" / "recorded"


def _recorded(cell_dir: Path) -> tuple[CommandResult, str]:
    meta = json.loads((cell_dir / "meta.json").read_text())
    result = CommandResult(meta["rc"], (cell_dir / "stdout").read_text(), (cell_dir / "stderr").read_text(), 0.01)
    return result, meta["outcome"]


@pytest.mark.parametrize("cell_dir", sorted(RECORDED.iterdir()), ids=lambda p: p.name)
def test_recorded_runs_classify_as_they_did(cell_dir: Path) -> None:
    result, outcome = _recorded(cell_dir)
    verdict = classify(result)
    assert verdict.outcome.value == outcome
    assert verdict.evidence and verdict.evidence in result.stdout + result.stderr


def test_glibc_too_old_names_the_symbol_version() -> None:
    result, _ = _recorded(RECORDED / "c-needs-glibc-2.38.patchelf.glibc-2.31")
    assert "GLIBC_2." in classify(result).evidence


def test_exit_zero_without_the_check_line_is_not_ok() -> None:
    verdict = classify(CommandResult(0, "hello\n", "", 0.01))
    assert verdict.outcome is Outcome.ERROR
    assert "LDMATRIX-CHECK: ok" in verdict.evidence


def test_check_line_with_nonzero_exit_is_not_ok() -> None:
    assert classify(CommandResult(3, "LDMATRIX-CHECK: ok\n", "", 0.01)).outcome is Outcome.ERROR


def test_failed_check_is_the_evidence() -> None:
    verdict = classify(CommandResult(1, "x\nLDMATRIX-CHECK: fail strlcpy returned 3\n", "", 0.01))
    assert verdict == verdict.__class__(Outcome.ERROR, "LDMATRIX-CHECK: fail strlcpy returned 3")


def test_env_corruption_evidence_is_the_childs_line() -> None:
    stdout = ('PATH=/bogus:/x\nPATH=/run/current-system/sw/bin\nenvprint: unexpected entry "PATH=/bogus:/x"\n'
              'LDMATRIX-CHECK: env-corrupted: unexpected entry "PATH=/bogus:/x"\n')
    verdict = classify(CommandResult(1, stdout, "", 0.01))
    assert verdict.outcome is Outcome.ENV_CORRUPTED
    assert verdict.evidence.endswith('"PATH=/bogus:/x"')


@pytest.mark.parametrize("rc", [-11, 139])
def test_signal_is_a_crash(rc: int) -> None:
    verdict = classify(CommandResult(rc, "", "", 0.01))
    assert verdict.outcome is Outcome.CRASH
    assert "SIGSEGV" in verdict.evidence


def test_timeout_wins() -> None:
    verdict = classify(CommandResult(-9, "LDMATRIX-CHECK: ok\n", "", 20.0, timed_out=True))
    assert verdict.outcome is Outcome.TIMEOUT


@pytest.mark.parametrize("line", [
    "bash: ./python3.12: cannot execute: required file not found",
    # bash 5.1 (bullseye), recorded from a cell
    "/run/current-system/sw/bin/bash: line 3: /home/user/bin/c-envprint: No such file or directory",
    "/run/current-system/sw/bin/bash: line 4: ./c-envprint: No such file or directory",
    "bwrap: execvp /home/user/bin/x: No such file or directory",
    "spawn-env: failed to spawn /home/user/bin/c-envprint: No such file or directory (os error 2)",
])
def test_missing_interpreter_lines(line: str) -> None:
    assert classify(CommandResult(127, "", line + "\n", 0.01)).outcome is Outcome.MISSING_INTERPRETER


@pytest.mark.parametrize("line", [
    "/run/current-system/sw/bin/bash: line 1: cd: /nowhere: No such file or directory",
    "bash: line 1: /home/user/data.txt: No such file or directory and more",
    "bash: line 1: /home/user/data.txt: No such file or directory",  # a redirection: status 1, not 127
    "cat: /home/user/x: No such file or directory",
])
def test_other_no_such_file_lines_are_no_missing_interpreter(line: str) -> None:
    assert classify(CommandResult(1, "", line + "\n", 0.01)).outcome is not Outcome.MISSING_INTERPRETER


def test_error_from_cut_output_says_so() -> None:
    from harness.runners.output import Bounded

    out = Bounded(1000, "stdout")
    out.feed(b"line\n" * 10_000)
    text, cut = out.result()
    assert cut > 0 and len(text) < 1100 and "bytes of stdout cut here" in text
    verdict = classify(CommandResult(1, text, "", 0.01, stdout_cut=cut))
    assert verdict.outcome is Outcome.ERROR and verdict.evidence.endswith(f"(output cut: {cut} bytes not kept)")
    assert text.endswith("line\n") and text.startswith("line\n")


def test_bounded_output_keeps_everything_below_the_bound() -> None:
    from harness.runners.output import Bounded

    out = Bounded(1000, "stderr")
    for chunk in (b"a" * 600, b"b" * 300, b"c" * 100):
        out.feed(chunk)
    assert out.result() == ("a" * 600 + "b" * 300 + "c" * 100, 0)
    out.feed(b"d")
    text, cut = out.result()
    assert cut > 0 and "[ldmatrix:" in text and text.endswith("d")


STUB_STDERR = ("Could not start dynamically linked executable: ./c-hello\n"
               "NixOS cannot run dynamically linked executables intended for generic\n"
               "linux environments out of the box. For more information, see:\n"
               "https://nix.dev/permalink/stub-ld\n")


def test_stub_ld_is_a_missing_interpreter_proved_by_its_first_line() -> None:
    verdict = classify(CommandResult(127, "", STUB_STDERR, 0.01))
    assert verdict.outcome is Outcome.MISSING_INTERPRETER
    assert verdict.evidence == "Could not start dynamically linked executable: ./c-hello"


def test_stub_ld_words_with_another_status_are_not_the_stub() -> None:
    assert classify(CommandResult(0, "", STUB_STDERR, 0.01)).outcome is Outcome.ERROR


def test_a_check_of_several_patterns_wants_each_somewhere() -> None:
    check = OutputCheck(0, "Hello from libtest", ("No LD_LIBRARY_PATH",))
    both = CommandResult(0, "Hello from libtest\n", "x: No LD_LIBRARY_PATH\n", 0.1)
    assert classify(both, check) == Verdict(Outcome.OK, "Hello from libtest")
    one = CommandResult(0, "Hello from libtest\n", "", 0.1)
    verdict = classify(one, check)
    assert verdict.outcome is Outcome.ERROR and "no output matching /No LD_LIBRARY_PATH/" in verdict.evidence


def test_a_program_that_passed_its_check_ran_whatever_a_child_said() -> None:
    """nix-ld's ld-path-restore expects its child to fail to load: the child's loader line is not its own."""
    check = OutputCheck(0, "Hello from libtest", ("loading shared",))
    said = CommandResult(0, "Hello from libtest\n", "./dt-needed: error while loading shared libraries: libtest.so: "
                         "cannot open shared object file: No such file or directory\n", 0.1)
    assert classify(said, check).outcome is Outcome.OK
    failed = CommandResult(127, "", "./x: error while loading shared libraries: libtest.so: cannot open shared "
                           "object file: No such file or directory\n", 0.1)
    assert classify(failed, check).outcome is Outcome.MISSING_LIBRARY
