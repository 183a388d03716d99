"""The regression guard: what changed between two runs of a matrix, cell by cell.

Every cell of either run is looked at, not only those of the new one: a cell can change its
outcome, appear, disappear, or be skipped in one run and run in the other. Damaged lines of
either results file are part of the answer too, since a cell on a damaged line was not compared.
``Comparison.clean`` is what an exit status is made of.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass

from harness.model import CellResult
from harness.results.file import DamagedLine
from harness.results.report import markdown_cell

SKIPPED = "skipped"
ABSENT = "absent"
MARKDOWN_ROWS = 200  # per section; a job summary has a size limit and nobody reads 1000 rows


class ChangeKind(enum.StrEnum):
    CHANGED = "changed outcome"
    DISAPPEARED = "disappeared"
    APPEARED = "appeared"
    NOW_SKIPPED = "now skipped"
    NOW_RUN = "now run"


@dataclass(frozen=True)
class Change:
    kind: ChangeKind
    cell_id: str
    old: str  # an outcome, "skipped" or "absent"
    new: str
    detail: str  # the new proving line, or what explains the change (a skip reason, the old proof)


@dataclass(frozen=True)
class Comparison:
    old_name: str  # how to call the two runs in a report: their file names
    new_name: str
    changes: tuple[Change, ...]
    damaged: tuple[DamagedLine, ...]
    compared: int  # cells present in both runs

    @property
    def clean(self) -> bool:
        return not self.changes and not self.damaged

    def of_kind(self, kind: ChangeKind) -> list[Change]:
        return [c for c in self.changes if c.kind is kind]


def _state(result: CellResult | None) -> str:
    if result is None:
        return ABSENT
    return result.outcome.value if result.outcome else SKIPPED


def _change(cell_id: str, old: CellResult | None, new: CellResult | None) -> Change | None:
    before, after = _state(old), _state(new)
    if before == after:
        return None
    if new is None:
        assert old is not None
        return Change(ChangeKind.DISAPPEARED, cell_id, before, after, old.evidence or old.skip_reason or "")
    if old is None:
        return Change(ChangeKind.APPEARED, cell_id, before, after, new.evidence or new.skip_reason or "")
    if after == SKIPPED:
        return Change(ChangeKind.NOW_SKIPPED, cell_id, before, after, new.skip_reason or "")
    if before == SKIPPED:
        return Change(ChangeKind.NOW_RUN, cell_id, before, after, new.evidence)
    return Change(ChangeKind.CHANGED, cell_id, before, after, new.evidence)


def compare(old: Iterable[CellResult], new: Iterable[CellResult], *, old_name: str = "old", new_name: str = "new",
            damaged: Iterable[DamagedLine] = ()) -> Comparison:
    before = {r.cell_id: r for r in old}
    after = {r.cell_id: r for r in new}
    order = list(before) + [cell_id for cell_id in after if cell_id not in before]
    changes = [c for cell_id in order if (c := _change(cell_id, before.get(cell_id), after.get(cell_id)))]
    kinds = list(ChangeKind)
    changes.sort(key=lambda c: kinds.index(c.kind))  # stable: cells keep their run order within a kind
    return Comparison(old_name, new_name, tuple(changes), tuple(damaged), len(before.keys() & after.keys()))


def headline(comparison: Comparison) -> str:
    if comparison.clean:
        return f"no cell changed: {comparison.compared} cells compared, {comparison.old_name} -> {comparison.new_name}"
    counts = [f"{len(comparison.of_kind(kind))} {kind.value}" for kind in ChangeKind if comparison.of_kind(kind)]
    if comparison.damaged:
        counts.append(f"{len(comparison.damaged)} damaged result lines")
    return (f"{', '.join(counts)}; {comparison.compared} cells in both runs, "
            f"{comparison.old_name} -> {comparison.new_name}")


def text(comparison: Comparison) -> str:
    """For a terminal: a headline, then each kind of change and the damaged lines."""
    lines = [headline(comparison)]
    for kind in ChangeKind:
        changes = comparison.of_kind(kind)
        if changes:
            lines.append(f"{kind.value}:")
            lines += [f"  {c.cell_id}: {c.old} -> {c.new}" + (f"    {c.detail}" if c.detail else "") for c in changes]
    if comparison.damaged:
        lines.append("damaged lines (their cells were not compared):")
        lines += [f"  {d}" for d in comparison.damaged]
    return "\n".join(lines)


def markdown(comparison: Comparison, title: str) -> str:
    """For a CI job summary ($GITHUB_STEP_SUMMARY): a heading, the headline, a table per kind of change."""
    mark = ":white_check_mark:" if comparison.clean else ":warning:"
    lines = [f"### {title}", "", f"{mark} {markdown_cell(headline(comparison))}", ""]
    for kind in ChangeKind:
        changes = comparison.of_kind(kind)
        if not changes:
            continue
        lines += [f"#### {len(changes)} {kind.value}", "", "| cell | before | after | proving line |",
                  "|---|---|---|---|"]
        lines += [f"| `{c.cell_id}` | {c.old} | {c.new} | {markdown_cell(c.detail)} |" for c in changes[:MARKDOWN_ROWS]]
        if len(changes) > MARKDOWN_ROWS:
            lines.append(f"| … and {len(changes) - MARKDOWN_ROWS} more | | | |")
        lines.append("")
    if comparison.damaged:
        lines += [f"#### {len(comparison.damaged)} damaged result lines (not compared)", ""]
        lines += [f"- `{d.file}:{d.line}`: {markdown_cell(d.reason)}" for d in comparison.damaged[:MARKDOWN_ROWS]]
        lines.append("")
    return "\n".join(lines)
