"""``ldmatrix bisect``: the first nix-ld commit where a cell's outcome changes.

git's own bisection drives the search (``git bisect --no-checkout`` in a private clone, so the
user's repository is never touched and merges are handled as git handles them). Each step exports
the commit, builds nix-ld from it (cached like any source build) and runs the cell with it; a
commit that does not build is skipped, as ``git bisect skip`` does. A commit is "before" when the
cell gives the outcome it gives at OLD, "after" otherwise.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from harness.cache import Cache
from harness.errors import LdmatrixError
from harness.matrix import Matrix
from harness.model import Cell, CellResult
from harness.progress import Progress

from . import binary, source
from .build import BuildFailed, build
from .toolchain import toolchain

_FIRST = re.compile(r"^([0-9a-f]{40}) is the first after commit", re.MULTILINE)
_ONLY_SKIPPED = "There are only 'skip'ped commits left to test"


@dataclass(frozen=True)
class Step:
    commit: str
    label: str
    subject: str
    outcome: str | None  # None: did not build (skipped)
    evidence: str

    def line(self) -> str:
        got = self.outcome or "skip"
        return f"{self.commit[:10]} {self.label:<22} {got:<20} {self.evidence}  ({self.subject})"


@dataclass(frozen=True)
class BisectResult:
    cell: str
    old: Step
    new: Step
    steps: tuple[Step, ...]
    first: str | None  # the first commit whose outcome differs from OLD's
    candidates: tuple[str, ...] = ()  # when only skipped commits are left: the first is one of these

    def summary(self) -> str:
        change = f"{self.old.outcome} -> {self.new.outcome}"
        if self.first is not None:
            step = next((s for s in (*self.steps, self.new) if s.commit == self.first), None)
            about = f" ({step.subject}); proving line: {step.evidence}" if step else ""
            return f"{self.cell}: the first commit where the outcome changes ({change}) is {self.first}{about}"
        return (f"{self.cell}: the outcome changes ({change}) at one of {', '.join(c[:10] for c in self.candidates)}; "
                "the commits between did not build")


class _Clone:
    """A private bare clone to bisect in (``--shared``: no objects copied)."""

    def __init__(self, repo: Path, name: str):
        self.tmp = Path(tempfile.mkdtemp(prefix="ldmatrix-bisect-"))
        self.path = self.tmp / f"{name.removesuffix('.bundle').removesuffix('.git')}.git"
        proc = subprocess.run(["git", "clone", "--quiet", "--bare", "--shared", str(repo), str(self.path)],
                              capture_output=True, text=True, stdin=subprocess.DEVNULL)
        if proc.returncode != 0:
            shutil.rmtree(self.tmp, ignore_errors=True)
            raise LdmatrixError(f"{repo}: cannot clone it to bisect: {proc.stderr.strip()}")

    def git(self, *args: str) -> subprocess.CompletedProcess:
        return source.git(self.path, *args, check=False)

    def close(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


RunCell = Callable[[Cell, dict], CellResult]  # (cell with a label, {label: store path}) -> result


def bisect(matrix: Matrix, cell: Cell, repo_path: Path, old: str, new: str, run_cell: RunCell, cache: Cache,
           progress: Progress,
           on_step: Callable[[Step], None] = lambda step: None) -> BisectResult:
    repo = source.git_repository(repo_path, cache)
    clone = _Clone(repo, repo_path.name)
    try:
        old_commit = source.resolve_revision(clone.path, old, f"{repo_path.name}#{old}")
        new_commit = source.resolve_revision(clone.path, new, f"{repo_path.name}#{new}")
        if clone.git("merge-base", "--is-ancestor", old_commit, new_commit).returncode != 0:
            raise LdmatrixError(f"{old} is not an ancestor of {new} in {repo_path}: give the older revision first")
        tc = toolchain(cache, progress)

        def step(commit: str) -> Step:
            subject = clone.git("log", "-1", "--format=%s", commit).stdout.strip()
            tree = source.load(clone.path, cache, rev=commit)
            try:
                built = build(tree, cache, progress, tc)
            except BuildFailed as err:
                result = Step(commit, tree.version, subject, None, f"did not build: {err}")
            else:
                store = binary.install(tree.version, built.executable, cache)
                got = run_cell(dataclasses.replace(cell, nix_ld=tree.version), {tree.version: store})
                result = Step(commit, tree.version, subject, got.outcome.value if got.outcome else None,
                              got.evidence or got.skip_reason or "")
            on_step(result)
            return result

        first_step, last_step = step(old_commit), step(new_commit)
        for end, rev in ((first_step, old), (last_step, new)):
            if end.outcome is None:
                raise LdmatrixError(f"{rev} ({end.commit[:10]}) must give an outcome to bisect from: {end.evidence}")
        if first_step.outcome == last_step.outcome:
            raise LdmatrixError(f"{cell.id} gives {first_step.outcome} at both {old} and {new}: nothing to bisect")
        steps: list[Step] = []
        out = clone.git("bisect", "start", "--no-checkout", "--term-old=before", "--term-new=after",
                        new_commit, old_commit)
        while True:
            text = out.stdout + out.stderr
            found = _FIRST.search(text)
            if found:
                return BisectResult(cell.id, first_step, last_step, tuple(steps), found.group(1))
            if _ONLY_SKIPPED in text:
                candidates = tuple(re.findall(r"^([0-9a-f]{40})$", out.stdout, re.MULTILINE))
                return BisectResult(cell.id, first_step, last_step, tuple(steps), None, candidates)
            if out.returncode != 0:
                raise LdmatrixError(f"git bisect failed: {(text.strip().splitlines() or ['?'])[-1]}")
            head = clone.git("rev-parse", "BISECT_HEAD").stdout.strip()
            current = step(head)
            steps.append(current)
            term = "skip" if current.outcome is None else (
                "before" if current.outcome == first_step.outcome else "after")
            out = clone.git("bisect", term)
    finally:
        clone.close()
