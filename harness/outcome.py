"""Classify one raw run (rc, stdout, stderr) into an Outcome, with the line that proves it.

The rules are ordered: a loader error stops a program before its own check can speak, so the
loader's messages are read first; ``ok`` needs the reproducer's own ``LDMATRIX-CHECK: ok``, or for
a real program the matrix's check of it (an ``OutputCheck``: its exit status and a regular
expression searched in its output). A real program that ran and failed its check is ``error``,
proved by its last line.

A loader's words are the loader's only where a loader puts them: a loader that fails (or a
missing interpreter, or stub-ld) exits with a failure status before the program has printed a
thing, and its line opens stderr. The same words anywhere else (a program that printed them and
exited 0, after its own output, below other lines) are the program's: they decide nothing, and the
verdict says that they were there and why they were not taken.
"""

from __future__ import annotations

import re
import signal
from collections.abc import Callable

from harness import output_regex
from harness.model import CommandResult, Outcome, OutputCheck, Verdict
from harness.root.release import STUB_LD_FIRST_LINE, STUB_LD_MESSAGE, STUB_LD_STATUS

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


LOADER_STATUS = (127, 1)  # ld.so: 127 for a missing library, 1 for a missing symbol version
# A loader's, bubblewrap's or bash's line names a path or two; a longer line is none of theirs, and is
# not searched (a 1 MiB line of ".*:" bait would cost the patterns above quadratic time)
MAX_PROOF_LINE = 8192


def _lines(result: CommandResult) -> list[str]:
    return [line for line in result.stderr.splitlines() + result.stdout.splitlines() if len(line) <= MAX_PROOF_LINE]


def _opening(result: CommandResult) -> str | None:
    """The line that opens stderr, when nothing came before it: no output of the program on stdout."""
    if result.stdout.strip():
        return None
    first = next((line for line in result.stderr.splitlines() if line.strip()), None)
    return first if first is not None and len(first) <= MAX_PROOF_LINE else None


def _not_the_loaders(result: CommandResult, line: str, statuses: tuple[int, ...]) -> str:
    """Why a line with a loader's words is not the loader's: what of its place or the exit status disagrees."""
    if result.rc not in statuses:
        allowed = " or ".join(str(s) for s in statuses) if statuses else "a failure status"
        return f"exit status {result.rc} (a loader that fails exits {allowed})"
    if result.stdout.strip():
        return "it comes after the program's own output (stdout)"
    if line not in result.stderr.splitlines():
        return "it is on stdout, not stderr"
    return "it is not the first line of stderr"


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


def _by_loader(outcome: Outcome, pattern: re.Pattern[str]) -> Callable[[CommandResult, list[str]], Verdict | None]:
    """The loader's own failure: its line opens stderr, nothing before it, a loader's exit status."""
    def rule(result: CommandResult, lines: list[str]) -> Verdict | None:
        first = _opening(result)
        if result.rc in LOADER_STATUS and first is not None and pattern.search(first):
            return Verdict(outcome, first.strip())
        return None

    return rule


def _disagreement(result: CommandResult, lines: list[str]) -> str:
    """A loader's words that no rule took as the loader's: the line, and why not (or '')."""
    for pattern, statuses in ((_GLIBC_TOO_OLD, LOADER_STATUS), (_MISSING_LIBRARY, LOADER_STATUS),
                              *((p, ()) for p in _MISSING_INTERPRETER)):
        line = _first(lines, pattern)
        if line is not None:
            why = _not_the_loaders(result, line, statuses)
            return f" [note: {line.strip()[:160]!r} is a loader's message, but {why}: the program's own words]"
    return ""


def _interrupted(result: CommandResult, lines: list[str]) -> Verdict | None:
    if result.interrupted:
        return Verdict(Outcome.ERROR, f"interrupted (Ctrl-C) after {result.duration:.1f}s: the run was stopped "
                                      "before the cell ended; no outcome")
    return None


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
    """NixOS 24.05+'s stub-ld at /lib64/ld-linux-x86-64.so.2 (harness/root/release.py) ran instead of a
    loader: its first line opens stderr and its status is 127, as nixpkgs' stub-ld.nix writes it."""
    first = next(iter(result.stderr.splitlines()), "")
    if result.rc == STUB_LD_STATUS and first.startswith(STUB_LD_FIRST_LINE) and STUB_LD_MESSAGE in result.stderr:
        return Verdict(Outcome.MISSING_INTERPRETER, first.strip())
    return None


def _missing_interpreter(result: CommandResult, lines: list[str]) -> Verdict | None:
    """stub-ld, or what bubblewrap, a launcher, bash or a container runtime says when the kernel
    cannot start the program: a failure status, and the line opens stderr."""
    stub = _stub_ld(result)
    if stub is not None:
        return stub
    first = _opening(result)
    if result.rc == 0 or first is None:
        return None
    patterns = (*_MISSING_INTERPRETER, *((_BASH_51_NOT_EXECUTED,) if result.rc == 127 else ()))
    for pattern in patterns:
        if pattern.search(first):
            return Verdict(Outcome.MISSING_INTERPRETER, first.strip())
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
    """The line ``pattern`` is found on (stdout first), or None. RE2: linear time, whatever the pattern."""
    for text in (result.stdout, result.stderr):
        match = output_regex.search(pattern, text)
        if match:
            start = text.rfind("\n", 0, match[0]) + 1
            end = text.find("\n", match[0])
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
    _interrupted,
    _timeout,
    _by_loader(Outcome.GLIBC_TOO_OLD, _GLIBC_TOO_OLD),
    _by_loader(Outcome.MISSING_LIBRARY, _MISSING_LIBRARY),
    _by_pattern(Outcome.ENV_CORRUPTED, _ENV_CORRUPTED),
    _ok,
    _missing_interpreter,
    _crash,
)


def _noted(verdict: Verdict, result: CommandResult, lines: list[str]) -> Verdict:
    """A verdict other than the loader's, where a loader's words were seen: it says so."""
    if verdict.outcome in (Outcome.MISSING_LIBRARY, Outcome.GLIBC_TOO_OLD, Outcome.MISSING_INTERPRETER,
                           Outcome.TIMEOUT) or result.interrupted:
        return verdict
    note = _disagreement(result, lines)
    return Verdict(verdict.outcome, verdict.evidence + note) if note else verdict


def classify(result: CommandResult, check: OutputCheck | None = None) -> Verdict:
    """The first rule that matches; a result whose output was cut says so in an ``error``'s evidence
    (the proving line may be in the part that was not kept). ``check``: a real program's success."""
    lines = _lines(result)
    rules = RULES if check is None else tuple(_checked(check) if rule is _ok else rule for rule in RULES)
    for rule in rules:
        verdict = rule(result, lines)
        if verdict is not None:
            return _noted(verdict, result, lines)
    verdict = _noted(_error(result, lines) if check is None else _failed_check(result, check), result, lines)
    if result.truncated:
        cut = result.stdout_cut + result.stderr_cut
        return Verdict(verdict.outcome, f"{verdict.evidence} (output cut: {cut} bytes not kept)")
    return verdict
