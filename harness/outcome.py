"""Classify one raw run (rc, stdout, stderr) into an Outcome, with the line that proves it.

The rules are ordered: a loader error stops a program before its own check can speak, so the
loader's messages are read first; ``ok`` needs the reproducer's own ``LDMATRIX-CHECK: ok``, or for
a real program the matrix's check of it (an ``OutputCheck``: its exit status and a regular
expression searched in its output). A real program that ran and failed its check is ``error``,
proved by its last line.
"""

from __future__ import annotations

import re
import signal
from collections.abc import Callable

from harness.model import CommandResult, Outcome, OutputCheck, Verdict
from harness.release import STUB_LD_FIRST_LINE, STUB_LD_MESSAGE, STUB_LD_STATUS

CHECK_OK = "LDMATRIX-CHECK: ok"
CHECK_PREFIX = "LDMATRIX-CHECK:"

_GLIBC_TOO_OLD = re.compile(r"version [`']GLIBC_[0-9.]+' not found")
_MISSING_LIBRARY = re.compile(r"error while loading shared libraries: .*: cannot open shared object file")
_ENV_CORRUPTED = re.compile(r"^LDMATRIX-CHECK: env-corrupted")
_MISSING_INTERPRETER = (
    re.compile(r"execvp .*: No such file or directory"),  # bubblewrap
    re.compile(r"failed to spawn .*No such file or directory"),  # our Rust launchers
    re.compile(r"cannot execute: required file not found"),  # bash 5.2 and later
    re.compile(r"exec .*: no such file or directory", re.IGNORECASE),  # container runtimes
    re.compile(r"^(?:\S*/)?env: (?:can't execute )?'[^']*': No such file or directory"),  # env -i (docker runner)
)


def _lines(result: CommandResult) -> list[str]:
    return result.stderr.splitlines() + result.stdout.splitlines()


def _first(lines: list[str], pattern: re.Pattern[str]) -> str | None:
    return next((line for line in lines if pattern.search(line)), None)


def _signal_name(rc: int) -> str:
    number = -rc if rc < 0 else rc - 128
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _by_pattern(outcome: Outcome, pattern: re.Pattern[str]) -> Callable[[CommandResult, list[str]], Verdict | None]:
    def rule(result: CommandResult, lines: list[str]) -> Verdict | None:
        line = _first(lines, pattern)
        return Verdict(outcome, line.strip()) if line else None

    return rule


def _timeout(result: CommandResult, lines: list[str]) -> Verdict | None:
    if result.timed_out:
        return Verdict(Outcome.TIMEOUT, f"no exit within {result.duration:.1f}s; killed")
    return None


def _ok(result: CommandResult, lines: list[str]) -> Verdict | None:
    if result.rc == 0 and any(line.strip() == CHECK_OK for line in result.stdout.splitlines()):
        return Verdict(Outcome.OK, CHECK_OK)
    return None


# bash 5.1 and before, for a program that is there (a cell's always is) but cannot be executed;
# only with exit status 127 (a redirection from a missing file says the same with status 1)
_BASH_51_NOT_EXECUTED = re.compile(r"^(?:\S*/)?bash: (?:line \d+: )?[^\s:]+: No such file or directory$")


def _stub_ld(result: CommandResult) -> Verdict | None:
    """NixOS 24.05+'s stub-ld at /lib64/ld-linux-x86-64.so.2 (harness/release.py) ran instead of a
    loader: its first line opens stderr and its status is 127, as nixpkgs' stub-ld.nix writes it."""
    first = next(iter(result.stderr.splitlines()), "")
    if result.rc == STUB_LD_STATUS and first.startswith(STUB_LD_FIRST_LINE) and STUB_LD_MESSAGE in result.stderr:
        return Verdict(Outcome.MISSING_INTERPRETER, first.strip())
    return None


def _missing_interpreter(result: CommandResult, lines: list[str]) -> Verdict | None:
    stub = _stub_ld(result)
    if stub is not None:
        return stub
    patterns = (*_MISSING_INTERPRETER, *((_BASH_51_NOT_EXECUTED,) if result.rc == 127 else ()))
    for pattern in patterns:
        line = _first(lines, pattern)
        if line:
            return Verdict(Outcome.MISSING_INTERPRETER, line.strip())
    return None


def _crash(result: CommandResult, lines: list[str]) -> Verdict | None:
    if result.rc < 0 or result.rc in range(129, 160):
        tail = next((line for line in reversed(result.stderr.splitlines()) if line.strip()), "")
        proof = f"killed by {_signal_name(result.rc)}"
        return Verdict(Outcome.CRASH, f"{proof}: {tail.strip()}" if tail else proof)
    return None


def _error(result: CommandResult, lines: list[str]) -> Verdict:
    failed_check = next((line for line in result.stdout.splitlines() if line.startswith(CHECK_PREFIX)), None)
    if failed_check:
        return Verdict(Outcome.ERROR, failed_check.strip())
    tail = next((line for line in reversed(result.stderr.splitlines()) if line.strip()), None)
    if tail:
        return Verdict(Outcome.ERROR, tail.strip())
    return Verdict(Outcome.ERROR, f"exit {result.rc} without {CHECK_OK!r}")


def _checked(check: OutputCheck) -> Callable[[CommandResult, list[str]], Verdict | None]:
    """``ok`` for a real program: its exit status and output are what the matrix says success is."""
    def rule(result: CommandResult, lines: list[str]) -> Verdict | None:
        if not check.accepts(result.rc):
            return None
        if check.output is None:
            return Verdict(Outcome.OK, f"exit {result.rc}")
        found = [_found(pattern, result) for pattern in check.patterns]  # each, somewhere in the output
        if any(line is None for line in found):
            return None
        return Verdict(Outcome.OK, found[0] or f"exit {result.rc}")

    return rule


def _found(pattern: str, result: CommandResult) -> str | None:
    """The line ``pattern`` is found on (stdout first), or None."""
    for text in (result.stdout, result.stderr):
        match = re.search(pattern, text, re.MULTILINE)
        if match:
            start = text.rfind("\n", 0, match.start()) + 1
            end = text.find("\n", match.start())
            return text[start:end if end >= 0 else len(text)].strip()
    return None


def _failed_check(result: CommandResult, check: OutputCheck) -> Verdict:
    """A program that ran and did not pass its check: its last line, and what was wanted."""
    last = next((line.strip() for text in (result.stderr, result.stdout)
                 for line in reversed(text.splitlines()) if line.strip()), None)
    wanted = "a program's own status (0 to 125)" if check.exit is None else str(check.exit)
    missing = next((p for p in check.patterns if _found(p, result) is None), check.output)
    why = f"exit {result.rc}, expected {wanted}" if not check.accepts(result.rc) else \
        f"no output matching /{missing}/"
    return Verdict(Outcome.ERROR, f"{last} [{why}]" if last else f"no output [{why}]")


RULES: tuple[Callable[[CommandResult, list[str]], Verdict | None], ...] = (
    _timeout,
    _by_pattern(Outcome.GLIBC_TOO_OLD, _GLIBC_TOO_OLD),
    _by_pattern(Outcome.MISSING_LIBRARY, _MISSING_LIBRARY),
    _by_pattern(Outcome.ENV_CORRUPTED, _ENV_CORRUPTED),
    _ok,
    _missing_interpreter,
    _crash,
)


def classify(result: CommandResult, check: OutputCheck | None = None) -> Verdict:
    """The first rule that matches; a result whose output was cut says so in an ``error``'s evidence
    (the proving line may be in the part that was not kept). ``check``: a real program's success."""
    lines = _lines(result)
    rules = RULES if check is None else tuple(_checked(check) if rule is _ok else rule for rule in RULES)
    if check is not None and check.exit is not None and check.patterns:
        # a program that exits as it should, saying what it should, has run: a loader's line in its
        # output is another program's (a child it expects to fail: nix-ld's tests/ld-path-restore.c)
        rules = (_timeout, _checked(check), *(rule for rule in RULES if rule not in (_timeout, _ok)))
    for rule in rules:
        verdict = rule(result, lines)
        if verdict is not None:
            return verdict
    verdict = _error(result, lines) if check is None else _failed_check(result, check)
    if result.truncated:
        cut = result.stdout_cut + result.stderr_cut
        return Verdict(verdict.outcome, f"{verdict.evidence} (output cut: {cut} bytes not kept)")
    return verdict
