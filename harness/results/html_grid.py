"""The grid as one self-contained HTML page (``run --html``, ``merge --html``): read at a glance.

Colour says what happened (the outcome); a mark says whether that was expected (``✓``), a known
upstream bug (``bug``) or not what the matrix expects (``!`` and what it wanted, outlined). Rows are
grouped by binary; a row's label is complete (strategy and nix-ld, environment, launch, the library
set as a NixOS user writes it). Each cell links to its details (``#cell-ID``): the proving line, the
output around it, the command that runs it again and an ``ldmatrix show`` line naming the results
file by its absolute path, so it works from any directory. Those open without JavaScript (CSS
``:target``); the script (harness/data/grid.js) only adds the filters (outcome, mark, any axis,
words of the cell id) and folding a binary's rows. Style and script are harness/data/grid.css and
grid.js, inlined: the page needs no network to be viewed.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from html import escape
from pathlib import Path

from harness import DATA
from harness.model import CellResult
from harness.results.report import (
    MARK_BUG,
    MARK_MATCH,
    MARK_MISMATCH,
    how_started,
    mark,
    row_and_column,
    strategy_label,
    table,
)

SKIPPED = "skipped"
CONTEXT_LINES = 3  # lines of output shown before and after the proving line
LINE_WIDTH = 240  # characters of an output line shown


@dataclass(frozen=True)
class OutcomeClass:
    name: str  # an Outcome's value, or "skipped"
    short: str  # what the cell shows
    meaning: str
    fix: str


LEGEND = (
    OutcomeClass("ok", "ok", "it ran, and its own check passed (a real program: its exit status and output)", "-"),
    OutcomeClass("missing-interpreter", "no loader",
                 "nothing at /lib64/ld-linux-x86-64.so.2: NixOS has no loader there (24.05+: stub-ld says so)",
                 "patchelf --set-interpreter to the store glibc's loader, or programs.nix-ld.enable = true"),
    OutcomeClass("missing-library", "no library",
                 "the loader found no file for a library it needs (libcrypt.so.1, libz.so.1, ...)",
                 "add its package: programs.nix-ld.libraries (ldmatrix inspect names them), a RUNPATH, "
                 "or LD_LIBRARY_PATH"),
    OutcomeClass("glibc-too-old", "glibc too old",
                 "the store glibc lacks a symbol version the program needs (GLIBC_2.38 not found)",
                 "a nixpkgs with a newer glibc, or a build of the program for an older glibc"),
    OutcomeClass("env-corrupted", "env damaged",
                 "it started, but its environment, argv or auxv arrived damaged (nix-ld 1.x's rename)",
                 "nix-ld 2.x; or LD_LIBRARY_PATH set (as cargo run does); or patchelf the child"),
    OutcomeClass("crash", "crash", "killed by a signal (nix-ld 2.0.0-2.0.5 mapped ld.so's BSS at the wrong place)",
                 "nix-ld 2.0.6 or later"),
    OutcomeClass("timeout", "timeout", "still running at the matrix's time limit, and killed",
                 "its output shows where it hung"),
    OutcomeClass("error", "error",
                 "it ran and failed its check, or ldmatrix could not run it: the proving line says which",
                 "read the proving line (ldmatrix show)"),
    OutcomeClass(SKIPPED, "skipped", "not run: something it needs is not here", "supply what the reason names"),
)
_SHORT = {c.name: c.short for c in LEGEND}
_FIX = {c.name: c.fix for c in LEGEND}
_MARKS = {MARK_MATCH: ("expected", "✓", "as the matrix expects"),
          MARK_BUG: ("bug", "bug", "a known upstream bug, reproduced"),
          MARK_MISMATCH: ("unexpected", "!", "NOT what the matrix expects (it says what it wanted)")}
_AXES = (("binary", "binary"), ("strategy", "strategy"), ("nix_ld", "nix-ld"), ("glibc", "glibc build"),
         ("env", "environment"), ("launch", "launch"), ("libs_label", "libraries"), ("nixos", "NixOS"))


def _asset(name: str) -> str:
    return (DATA / name).read_text(encoding="utf-8")


def outcome_name(r: CellResult) -> str:
    return r.outcome.value if r.outcome else SKIPPED


def mark_name(r: CellResult) -> str:
    m = mark(r)
    return _MARKS[m][0] if m in _MARKS else SKIPPED


def anchor(r: CellResult) -> str:
    return f"cell-{r.cell_id}"


def _axes(r: CellResult) -> dict[str, str]:
    axes = {key: r.axes[key] for key, _ in _AXES if r.axes.get(key)}
    _, axes["glibc"] = row_and_column(r)
    if "libs_label" not in axes and r.axes.get("libs"):
        axes["libs_label"] = r.axes["libs"]
    return axes


def _cell(r: CellResult | None) -> str:
    if r is None:
        return "<td class=none></td>"
    outcome, marked = outcome_name(r), mark_name(r)
    glyph = ""
    if marked in ("expected", "bug"):
        glyph = f"<span class=mark>{_MARKS[mark(r)][1]}</span>"
    elif marked == "unexpected":
        glyph = f"<span class=mark>! want {escape(_SHORT[r.expected.value] if r.expected else '?')}</span>"
    title = r.skip_reason or r.evidence
    data = " ".join(f'data-{k.replace("_", "-")}="{escape(v)}"' for k, v in _axes(r).items())
    return (f'<td class="cell o-{outcome} m-{marked}" data-cell="{escape(r.cell_id)}" data-outcome="{outcome}" '
            f'data-mark="{marked}" {data}><a href="#{escape(anchor(r))}" title="{escape(title)}">'
            f'<span class=short>{escape(_SHORT[outcome])}</span>{glyph}</a></td>')


def _label(r: CellResult) -> tuple[str, str, str]:
    """A row's three label columns: strategy (and nix-ld), how it was started (NixOS release,
    environment, launch style, name), the library set."""
    axes = r.axes
    libs = axes.get("libs_label") or axes.get("libs", "")
    return (strategy_label(axes), ", ".join(f"{word} {value}" for word, value in how_started(axes)),
            f"libs {libs}" if libs else "")


def _groups(rows: dict[str, dict[str, CellResult]]) -> dict[str, list[tuple[str, dict[str, CellResult]]]]:
    groups: dict[str, list[tuple[str, dict[str, CellResult]]]] = {}
    for row, cells in rows.items():
        first = next(iter(cells.values()))
        groups.setdefault(first.axes.get("binary", first.cell_id), []).append((row, cells))
    return groups


def _counts(results: Iterable[CellResult]) -> tuple[dict[str, int], dict[str, int]]:
    outcomes = {c.name: 0 for c in LEGEND}
    marks = {"expected": 0, "bug": 0, "unexpected": 0, SKIPPED: 0}
    for r in results:
        outcomes[outcome_name(r)] += 1
        marks[mark_name(r)] += 1
    return outcomes, marks


def _summary_bar(results: Sequence[CellResult]) -> str:
    outcomes, marks = _counts(results)
    total = max(len(results), 1)
    segments = "".join(
        f'<a class="seg o-{name}" style="flex-grow:{n}" href="#" data-filter-outcome="{name}" '
        f'title="{name}: {n} cells">{escape(_SHORT[name])} {n}</a>'
        for name, n in outcomes.items() if n)
    words = {"expected": "as expected", "bug": "known bug", "unexpected": "unexpected", SKIPPED: "skipped"}
    chips = "".join(f'<a class="chip m-{name}{" none" if not n else ""}" href="#" data-filter-mark="{name}">'
                    f"{n} {words[name]}</a>" for name, n in marks.items())
    runs = outcomes["ok"]
    ran = total - outcomes[SKIPPED]
    unexpected = marks["unexpected"]
    headline = f"<b>{runs}</b> of {ran} cells that ran: ok · <b class=fails>{ran - runs}</b> did not"
    if unexpected:
        headline += f" · <b class=unexpected-count>{unexpected} not as the matrix expects</b>"
    return (f"<div class=summary><p class=headline>{headline}</p><div class=bar>{segments}</div>"
            f"<div class=chips>{chips}</div></div>")


def _legend(results: Sequence[CellResult]) -> str:
    """What each outcome in this grid means and its usual fix (the classes it does not show are left out)."""
    present = {outcome_name(r) for r in results}
    entries = "".join(f'<div class=entry><span class="cell swatch o-{c.name}">{escape(c.short)}</span>'
                      f"<div><code>{c.name}</code>: {escape(c.meaning)}"
                      f"{f'<br><span class=fix>usual fix: {escape(c.fix)}</span>' if c.fix != '-' else ''}</div></div>"
                      for c in LEGEND if c.name in present)
    marks = "".join(f"<li><span class='mk m-{name}'>{escape(glyph)}</span> {escape(text)}</li>"
                    for name, glyph, text in _MARKS.values())
    return (f"<details class=legend open><summary>Legend: the colour is what happened, the mark whether the "
            f"matrix expected it</summary><div class=entries>{entries}</div><ul class=marks>{marks}</ul></details>")


def _filters(results: Sequence[CellResult]) -> str:
    selects = []
    for key, label in _AXES:
        values = sorted({v for r in results if (v := _axes(r).get(key))})
        if len(values) < 2:
            continue
        options = "".join(f"<option>{escape(v)}</option>" for v in values)
        selects.append(f'<label>{escape(label)} <select data-axis="{key.replace("_", "-")}">'
                       f'<option value="">all</option>{options}</select></label>')
    return (f'<form class=filters onsubmit="return false">{"".join(selects)}'
            f'<label>cell id <input type=search data-words placeholder="words of the id"></label>'
            f'<button type=button data-reset>show all</button> <span class=showing></span></form>')


def _context(r: CellResult) -> str:
    """The output around the proving line (the line marked), or the end of stderr."""
    for name, text in (("stderr", r.stderr), ("stdout", r.stdout)):
        lines = text.splitlines()
        hit = next((i for i, line in enumerate(lines) if r.evidence and r.evidence.strip() in line), None)
        if hit is not None:
            window = range(max(0, hit - CONTEXT_LINES), min(len(lines), hit + CONTEXT_LINES + 1))
            shown = "\n".join(("<mark>{}</mark>" if i == hit else "{}").format(escape(lines[i][:LINE_WIDTH]))
                              for i in window)
            return f"<p class=where>{name}, line {hit + 1} of {len(lines)}:</p><pre>{shown}</pre>"
    tail = (r.stderr or r.stdout).splitlines()[-2 * CONTEXT_LINES:]
    if not tail:
        return "<p class=where>no output</p>"
    return f"<p class=where>the end of its output:</p><pre>{escape(chr(10).join(s[:LINE_WIDTH] for s in tail))}</pre>"


def _detail(r: CellResult, results_path: Path | None) -> str:
    outcome, marked = outcome_name(r), mark_name(r)
    said = _MARKS[mark(r)][2] if mark(r) in _MARKS else "skipped"
    rows = [("outcome", (f'<span class="cell o-{outcome}">{escape(outcome)}</span> '
                         f'<span class="mk m-{marked}">{escape(said)}</span>')),
            ("expected", escape(r.expected.value if r.expected else "-")
             + (f' · known bug <a href="{escape(r.bug)}">{escape(r.bug)}</a>' if r.bug else ""))]
    body = ""
    if r.skip_reason:
        rows.append(("why", escape(r.skip_reason)))
    else:
        rows.append(("proving line", f"<code>{escape(r.evidence)}</code>"))
        if outcome != "ok":
            rows.append(("usual fix", escape(_FIX[outcome])))
        if r.prediction and r.predicted is not None:
            rows.append(("predicted", escape(f"{r.predicted.value}: {r.prediction}")))
        body = _context(r)
    commands = []
    if r.extra.get("workdir"):
        commands.append(f"sh {Path(r.extra['workdir']) / 'command.sh'}")
    show = f"ldmatrix show {r.cell_id}" + (f" --results {results_path.absolute()}" if results_path else "")
    commands.append(show)
    table_rows = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows)
    lines = "\n".join(escape(c) for c in commands)
    return (f'<section class=detail id="{escape(anchor(r))}"><div class=box><a class=close href="#" '
            f'title="close">×</a><h2>{escape(r.cell_id)}</h2><table>{table_rows}</table>{body}'
            f"<p class=where>run it again, or see everything it printed:</p><pre class=cmd>{lines}</pre></div>"
            f"</section>")


def _grid(results: Sequence[CellResult]) -> str:
    rows, columns = table(list(results))
    head = "".join(f"<th class=col>{escape(c)}</th>" for c in columns)
    bodies = []
    for binary, members in _groups(rows).items():
        cells = [r for _, row in members for r in row.values()]
        outcomes, marks = _counts(cells)
        tally = " · ".join(f'<span class="tally o-{k}">{n} {escape(_SHORT[k])}</span>'
                           for k, n in outcomes.items() if n)
        warn = f' <span class="mk m-unexpected">{marks["unexpected"]} unexpected</span>' if marks["unexpected"] else ""
        body = [f'<tbody class=group data-binary="{escape(binary)}"><tr class=ghead><th colspan={3 + len(columns)}>'
                f'<button type=button class=fold title="fold or unfold">▾</button> {escape(binary)} '
                f'<span class=gsum>{tally}{warn}</span></th></tr>']
        for row, by_column in members:
            first = next(iter(by_column.values()))
            strategy, how, libs = _label(first) if row != first.cell_id else (row, "", "")
            body.append(f'<tr class=row data-row="{escape(row)}"><th class=strategy>{escape(strategy)}</th>'
                        f"<th class=how>{escape(how)}</th><th class=libs>{escape(libs)}</th>"
                        + "".join(_cell(by_column.get(c)) for c in columns) + "</tr>")
        bodies.append("".join(body) + "</tbody>")
    return (f'<table class=grid><thead><tr><th class=strategy>strategy</th><th class=how>started</th>'
            f'<th class=libs>libraries</th>{head}</tr></thead>{"".join(bodies)}</table>')


def page(results: Iterable[CellResult], title: str, results_path: Path | None = None) -> str:
    results = list(results)
    grid = _grid(results)
    where = f"results {escape(str(results_path.absolute()))} · " if results_path else ""
    runners = ", ".join(sorted({r.runner for r in results})) or "-"
    meta = f"{where}runner {escape(runners)} · {len(results)} cells · written {time.strftime('%Y-%m-%d %H:%M')}"
    body = (f"<header><h1>{escape(title)}</h1><p class=meta>{meta}</p>{_summary_bar(results)}</header>"
            f"{_filters(results)}{_legend(results)}{grid}"
            f'<div class=details>{"".join(_detail(r, results_path) for r in results)}</div>')
    return (_asset("grid.html").replace("<!--title-->", escape(title)).replace("/*css*/", _asset("grid.css"))
            .replace("/*js*/", _asset("grid.js")).replace("<!--body-->", body))
