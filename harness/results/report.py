"""Results a person wants to look at: the grid, the failures with their proving lines, a CI summary.

Comparing two runs is harness/results/guard.py; reading a results file back is harness/results/file.py.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path

from harness.model import CellResult, Outcome

MARK_MATCH, MARK_BUG, MARK_MISMATCH, MARK_SKIP = " ", "~", "!", "-"


def mark(result: CellResult) -> str:
    if result.outcome is None:
        return MARK_SKIP
    if result.outcome == result.expected:
        return MARK_BUG if result.bug else MARK_MATCH
    return MARK_MISMATCH


def column(axes: dict[str, str]) -> str:
    """A glibc build's column: ``glibc 2.36`` (Debian's), ``nixos-24.11 · glibc 2.40`` (a pin's)."""
    glibc = axes.get("glibc", "?")
    return f"{axes['nixpkgs']} · glibc {glibc}" if axes.get("nixpkgs") else f"glibc {glibc}"


def _column_order(label: str) -> tuple:
    """Debian's builds by version, then the pins' by name."""
    pin, _, glibc = label.rpartition("glibc ")
    return (bool(pin), pin, tuple(int(x) if x.isdigit() else 0 for x in glibc.split(".")))


def row_and_column(result: CellResult) -> tuple[str, str]:
    """Rows are binary x strategy (x nix-ld, x environment, x launch, x library set); columns are glibc builds."""
    axes = result.axes
    row = f"{axes.get('binary', result.cell_id)}  {strategy_label(axes)}"
    for word, value in how_started(axes):
        row += f"  [{value}]" if word == "env" else f"  {word} {value}"
    if axes.get("libs_label"):  # what a NixOS user of the cell's release writes (harness/root/release.py)
        row += f"  libs {axes['libs_label']}"
    elif axes.get("libs", "none") != "none":
        row += f"  libs {axes['libs']}"
    return row, column(axes)


def strategy_label(axes: Mapping[str, str]) -> str:
    """The strategy, with its nix-ld version: ``nix-ld 2.0.6``."""
    strategy = axes.get("strategy", "?")
    return f"{strategy} {axes['nix_ld']}" if axes.get("nix_ld") else strategy


def how_started(axes: Mapping[str, str]) -> list[tuple[str, str]]:
    """What sets a row apart besides its binary, strategy and library set, in order, as (word, value):
    the NixOS release (a matrix of more than one, harness/root/release.py), the environment, the
    launch style, and how the program was named when not as its launch style names it."""
    how = []
    if axes.get("nixos"):
        how.append(("NixOS", axes["nixos"]))
    if axes.get("env", "nixos-login") != "nixos-login":
        how.append(("env", axes["env"]))
    if axes.get("launch", "direct") != "direct":
        how.append(("via", axes["launch"]))
    if axes.get("name"):
        how.append(("as", naming_label(axes["name"])))
    return how


def naming_label(name: str) -> str:
    """A ``name`` axis value in a few words: ``./NAME``, ``NAME on PATH``, ``/…/N (short)``."""
    length = next((n for n in ("short", "long") if name.endswith(f"-{n}")), "")
    form = name.removesuffix(f"-{length}") if length else name
    shown = {"absolute": "/…/NAME", "path": "NAME on PATH", "dot-slash": "./NAME"}.get(form, form)
    return f"{shown} ({length})" if length else shown


def table(results: list[CellResult]) -> tuple[dict[str, dict[str, CellResult]], list[str]]:
    """Rows in first-seen order, each mapping a glibc column to its cell; the columns sorted."""
    rows: dict[str, dict[str, CellResult]] = {}
    for r in results:
        row, column = row_and_column(r)
        if column in rows.get(row, {}):  # two cells would share a place: neither is hidden
            row = r.cell_id
        rows.setdefault(row, {})[column] = r
    columns = {column for cells in rows.values() for column in cells}
    return rows, sorted(columns, key=_column_order)


def markdown_cell(text: str) -> str:
    """``text`` as one cell of a Markdown table: no pipe or newline breaks the row."""
    return text.replace("|", "\\|").replace("\n", " ") or " "


def grid(results: Iterable[CellResult], markdown: bool = False) -> str:
    results = list(results)
    rows, cols = table(results)

    def text(r: CellResult | None) -> str:
        if r is None:
            return ""
        m = mark(r)
        if m == MARK_SKIP:
            return "skip"
        outcome = r.outcome.value if r.outcome else "?"
        if m == MARK_BUG:
            return f"{outcome} ~bug"
        if m == MARK_MISMATCH:
            return f"!{outcome} (want {r.expected.value if r.expected else '?'})"
        return outcome

    header = ["binary  strategy", *list(cols)]
    shown = {row: cells for row, cells in rows.items() if any(r.outcome is not None for r in cells.values())}
    body = [[row] + [text(cells.get(c)) for c in cols] for row, cells in shown.items()]
    hidden = len(rows) - len(shown)
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(markdown_cell(cell) for cell in line) + " |" for line in body]
    else:
        widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
        lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths))]
        lines.append("  ".join("-" * w for w in widths))
        lines += ["  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip() for line in body]
    if hidden:
        lines.append(f"(and {hidden} rows whose every cell was skipped; the reasons follow)")
    return "\n".join(lines)


def legend() -> str:
    return ("cells: the outcome when it is the expected one; '~bug' a known upstream bug reproduced; "
            "'!outcome (want ...)' NOT as expected; 'skip' not run (reasons below)")


def summary(results: Iterable[CellResult]) -> str:
    results = list(results)
    counts = {"as expected": 0, "known bug": 0, "unexpected": 0, "skipped": 0}
    for r in results:
        counts[{MARK_MATCH: "as expected", MARK_BUG: "known bug", MARK_MISMATCH: "unexpected",
                MARK_SKIP: "skipped"}[mark(r)]] += 1
    return ", ".join(f"{n} {k}" for k, n in counts.items())


def markdown_summary(results: Iterable[CellResult], title: str) -> str:
    """For a CI job summary: the counts, the unexpected cells, the grid folded away."""
    results = list(results)
    lines = [f"### {title}", "", summary(results), ""]
    unexpected = [r for r in results if mark(r) == MARK_MISMATCH]
    if unexpected:
        lines += ["| unexpected cell | got | expected | proving line |", "|---|---|---|---|"]
        lines += [f"| `{r.cell_id}` | {r.outcome.value if r.outcome else '?'} | "
                  f"{r.expected.value if r.expected else '?'} | {markdown_cell(r.evidence)} |" for r in unexpected]
        lines.append("")
    lines += ["<details><summary>the grid</summary>", "", grid(results, markdown=True), "", "</details>"]
    return "\n".join(lines)


def failures(results: Iterable[CellResult], results_file: Path | None = None) -> str:
    lines = []
    for r in results:
        if r.outcome is not None and r.outcome != r.expected:
            lines.append(f"{r.cell_id}: got {r.outcome.value}, expected {r.expected.value if r.expected else '?'}")
            lines.append(f"    {r.evidence}")
            lines.append(f"    ldmatrix show {r.cell_id}" + (f" --results {results_file}" if results_file else ""))
    return "\n".join(lines)


def skipped_reasons(results: Iterable[CellResult]) -> str:
    reasons: dict[str, int] = {}
    for r in results:
        if r.skip_reason:
            reasons[r.skip_reason] = reasons.get(r.skip_reason, 0) + 1
    return "\n".join(f"skipped {n}: {reason}" for reason, n in reasons.items())


_DAMAGE = (
    (re.compile(r'environment entry \d+ damaged: "([^"=]*)=(?:[^"\\]|\\.)*" became "((?:[^"\\]|\\.)*)"'),
     lambda m: f"{m.group(1)} (`{_short(m.group(2))}`)"),
    (re.compile(r'(AT_EXECFN|/proc/self/exe|argv\[\d+\]) damaged: "(?:[^"\\]|\\.)*" became "((?:[^"\\]|\\.)*)"'),
     lambda m: f"{m.group(1)} (`{_short(m.group(2))}`)"),
    (re.compile(r"(unexpected|missing) environment entry"), lambda m: f"{m.group(1)} entry"),
    # a loader's edit of LD_LIBRARY_PATH or NIX_LD* left for the program (envprint.c: checked last)
    (re.compile(r'loader-managed entry \d+ changed: "([^"=]*)=(?:[^"\\]|\\.)*" became "((?:[^"\\]|\\.)*)"'),
     lambda m: f"{m.group(1)} (`{_edit(m.group(1), m.group(2))}`)"),
    (re.compile(r'(unexpected|missing) loader-managed entry \d+: "([^"=]*)'), lambda m: f"{m.group(1)} {m.group(2)}"),
    (re.compile(r'duplicate key "([^"]*)"'), lambda m: f"duplicate {m.group(1)}"),
)


def _short(text: str, width: int = 28) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _edit(key: str, became: str, width: int = 28) -> str:
    """A loader's edit of ``key``: a rename shows the new head, an edit of the value its new end."""
    if not became.startswith(f"{key}=") or len(became) <= width:
        return _short(became, width)
    return "…" + became[-(width - 1):]


def damaged_field(result: CellResult) -> str:
    """What a cell's start-up check found damaged, in a few words (its outcome when not env-corrupted)."""
    if result.outcome is not Outcome.ENV_CORRUPTED:
        return result.outcome.value if result.outcome else "skipped"
    for pattern, describe in _DAMAGE:
        match = pattern.search(result.evidence)
        if match:
            return describe(match)
    return "env-corrupted"


def damage_table(results: Iterable[CellResult], glibc: str) -> str:
    """Markdown: for each way a checked program was started (rows) and each nix-ld (columns), what the
    start-up check found on one glibc build (Debian's version, or a nixpkgs pin's name): the
    README's "what nix-ld 1.x damages, and when"."""
    rows: dict[str, dict[str, str]] = {}
    versions: list[str] = []
    for r in results:
        axes = r.axes
        if axes.get("strategy") != "nix-ld" or axes.get("nixpkgs", axes.get("glibc")) != glibc or r.outcome is None:
            continue
        if not (axes.get("binary", "").startswith(("c-envprint", "rust-spawn"))):
            continue
        how = f"{axes['binary']}, {axes.get('launch', 'direct')}"
        if axes.get("name"):
            how += f" as {naming_label(axes['name'])}"
        if axes.get("env", "nixos-login") != "nixos-login":
            how += f" ({axes['env']})"
        rows.setdefault(how, {})[axes["nix_ld"]] = damaged_field(r)
        if axes["nix_ld"] not in versions:
            versions.append(axes["nix_ld"])
    versions.sort(key=lambda v: [int(p) if p.isdigit() else 0 for p in re.split(r"[.-]", v)])
    lines = ["| started as | " + " | ".join(f"nix-ld {v}" for v in versions) + " |",
             "|---|" + "---|" * len(versions)]
    lines += [f"| {how} | " + " | ".join(cells.get(v, "") for v in versions) + " |" for how, cells in rows.items()]
    return "\n".join(lines)


def disagreements(results: Iterable[CellResult]) -> str:
    """Cells whose run did not do what the loader was predicted to do (harness/loader/predict.py): a harness
    bug or a finding, either way worth a look."""
    from harness.loader.predict import agrees

    lines = []
    for r in results:
        if r.outcome is None or r.predicted is None or agrees(r.predicted, r.outcome):
            continue
        lines.append(f"{r.cell_id}: predicted {r.predicted.value} ({r.prediction}), ran {r.outcome.value}")
        lines.append(f"    {r.evidence}")
    return "\n".join(lines)


def append_summary(path: Path, text: str) -> None:
    """Appended, as a CI job summary ($GITHUB_STEP_SUMMARY) collects what every step adds."""
    with path.open("a", encoding="utf-8") as fh:
        fh.write(text.rstrip("\n") + "\n\n")
