"""The HTML grid as written: colour by outcome, a mark for the expectation, a link to each cell's
details (proving line, output around it, the command, `ldmatrix show ... --results ABSOLUTE`), a
legend, filters, one self-contained file. Rendered in a real browser: tests/test_grid_browser.py."""

from __future__ import annotations

from html import escape
from pathlib import Path

import grid_dom

from harness.results import html_grid, report
from harness.model import Cell, CellResult, Launch, Outcome, Strategy


def result(cell: Cell, outcome: Outcome | None, expected: Outcome, bug: str | None = None, evidence: str = "",
           stderr: str = "", label: str | None = None) -> CellResult:
    axes = cell.axes
    if label:
        axes["libs_label"] = label
    return CellResult(cell_id=cell.id, outcome=outcome, evidence=evidence, expected=expected, bug=bug,
                      skip_reason=None if outcome else "no nix-ld 1.9.9: supply one", rc=1, duration=0.01,
                      runner="sandbox", axes=axes, stderr=stderr, extra={"workdir": f"/out/seed/cells/{cell.id}"})


NONE = Cell("c-hello", (Strategy.NONE,), "2.36")
LIBCRYPT = Cell("c-needs-libcrypt", (Strategy.PATCHELF,), "2.36")
RG = Cell("rg", (Strategy.NIX_LD,), "2.41", nix_ld="2.0.6", libs="none")
RG_DEFAULT = Cell("rg", (Strategy.NIX_LD,), "2.41", nix_ld="2.0.6", libs="default")
SPAWN = Cell("rust-spawn-env", (Strategy.NIX_LD,), "2.36", nix_ld="1.2.2", launch=Launch.PYTHON)
SKIPPED = Cell("c-hello", (Strategy.NIX_LD,), "2.36", nix_ld="1.9.9")
STDERR = "line 1\nline 2\nerror while loading shared libraries: libcrypt.so.1: cannot open shared object file\nline 4\n"
RESULTS = [
    result(NONE, Outcome.MISSING_INTERPRETER, Outcome.MISSING_INTERPRETER, evidence="execvp: No such file"),
    result(LIBCRYPT, Outcome.MISSING_LIBRARY, Outcome.OK, evidence=STDERR.splitlines()[2], stderr=STDERR),
    result(RG, Outcome.MISSING_LIBRARY, Outcome.MISSING_LIBRARY, evidence="libgcc_s.so.1", label="mkForce []"),
    result(RG_DEFAULT, Outcome.OK, Outcome.OK, evidence="LDMATRIX-CHECK: ok", label="default"),
    result(SPAWN, Outcome.ENV_CORRUPTED, Outcome.ENV_CORRUPTED, bug="https://example.invalid/bug/1",
           evidence="LDMATRIX-CHECK: env-corrupted: <entry 7>"),
    result(SKIPPED, None, Outcome.OK),
]
RESULTS_FILE = Path("/abs/out/seed/results.jsonl")


def page() -> str:
    return html_grid.page(RESULTS, "ldmatrix: seed", RESULTS_FILE)


def test_each_cell_carries_its_outcome_its_mark_and_a_link_to_its_details() -> None:
    dom = grid_dom.read(page())
    assert sorted(c.cell_id for c in dom.cells) == sorted(r.cell_id for r in RESULTS)
    by_id = {c.cell_id: c for c in dom.cells}
    want = {NONE.id: ("missing-interpreter", "expected"), LIBCRYPT.id: ("missing-library", "unexpected"),
            RG.id: ("missing-library", "expected"), RG_DEFAULT.id: ("ok", "expected"),
            SPAWN.id: ("env-corrupted", "bug"), SKIPPED.id: ("skipped", "skipped")}
    for cell_id, (outcome, mark) in want.items():
        cell = by_id[cell_id]
        assert f"o-{outcome}" in cell.classes and f"m-{mark}" in cell.classes, (cell_id, cell.classes)
        assert cell.data["outcome"] == outcome and cell.data["mark"] == mark
        assert cell.href == f"#cell-{cell_id}" and f"cell-{cell_id}" in dom.sections


def test_colour_is_the_outcome_not_the_expectation() -> None:
    """A missing library is the missing-library colour whether it was expected or not."""
    text = page()
    css = (Path(report.__file__).parent.parent / "data" / "grid.css").read_text()
    assert ".o-missing-library { background: var(--missing-library)" in css
    assert ".o-ok { background: var(--ok)" in css
    assert f'class="cell o-missing-library m-expected" data-cell="{RG.id}"' in text
    assert f'class="cell o-missing-library m-unexpected" data-cell="{LIBCRYPT.id}"' in text


def test_marks_say_expected_known_bug_or_unexpected_with_what_was_wanted() -> None:
    text = page()
    assert "<span class=mark>! want ok</span>" in text
    assert "<span class=mark>bug</span>" in text and "<span class=mark>✓</span>" in text
    assert 'known bug <a href="https://example.invalid/bug/1">' in text


def test_row_labels_are_complete() -> None:
    """rg under nix-ld with `mkForce []` is its own row, never read as "rg fails under nix-ld"."""
    text = page()
    assert "<th class=strategy>nix-ld 2.0.6</th><th class=how></th><th class=libs>libs mkForce []</th>" in text
    assert "<th class=libs>libs default</th>" in text
    assert "<th class=how>via python</th>" in text


def test_rows_of_two_releases_or_two_names_are_told_apart() -> None:
    """Before: the NixOS release and the name a program was started by were left out of the labels, so
    releases.yaml's c-hello rows under 23.11 and 26.05 read the same (the text grid had them)."""
    old, new = (Cell("c-hello", (Strategy.NONE,), "2.42", nixos=v) for v in ("23.11", "26.05"))
    dot = Cell("c-hello", (Strategy.NONE,), "2.42", launch=Launch.BASH_PATH, name="dot-slash")
    text = html_grid.page([result(c, Outcome.MISSING_INTERPRETER, Outcome.MISSING_INTERPRETER)
                           for c in (old, new, dot)], "releases")
    for cell in (old, new, dot):
        row, _ = report.row_and_column(result(cell, None, Outcome.OK))
        how = ", ".join(f"{w} {v}" for w, v in report.how_started(cell.axes))
        assert f'data-row="{escape(row)}"' in text and f"<th class=how>{escape(how)}</th>" in text
    assert "<th class=how>NixOS 23.11</th>" in text and "<th class=how>NixOS 26.05</th>" in text
    assert f"<th class=how>via bash-path, as {escape(report.naming_label('dot-slash'))}</th>" in text


def test_details_hold_the_proving_line_its_output_the_command_and_a_show_line_that_works_anywhere() -> None:
    text = page()
    detail = text[text.index(f'<section class=detail id="cell-{LIBCRYPT.id}">'):]
    detail = detail[:detail.index("</section>")]
    assert "stderr, line 3 of 4:" in detail and "<mark>error while loading shared libraries" in detail
    assert "line 1\nline 2\n" in detail and "line 4" in detail
    assert f"sh /out/seed/cells/{LIBCRYPT.id}/command.sh" in detail
    assert f"ldmatrix show {LIBCRYPT.id} --results /abs/out/seed/results.jsonl" in detail
    assert "usual fix" in detail and "programs.nix-ld.libraries" in detail
    skipped = text[text.index(f'id="cell-{SKIPPED.id}"'):]
    assert "no nix-ld 1.9.9: supply one" in skipped[:skipped.index("</section>")]


def test_the_page_has_a_summary_a_legend_filters_and_groups_by_binary() -> None:
    text = page()
    dom = grid_dom.read(text)
    assert "of 5 cells that ran: ok" in dom.texts["headline"]
    assert "1 not as the matrix expects" in dom.texts["headline"]
    for outcome in ("missing-interpreter", "missing-library", "env-corrupted", "skipped"):
        assert f'data-filter-outcome="{outcome}"' in text
        assert f"<div><code>{outcome}</code>: " in text  # the legend: what it means, its usual fix
    assert "<code>crash</code>:" not in text  # only the classes this grid shows
    assert "usual fix: add its package: programs.nix-ld.libraries" in text
    for axis in ("binary", "strategy", "glibc", "launch", "libs-label"):
        assert f'<select data-axis="{axis}">' in text
    assert [g for g in ("c-hello", "c-needs-libcrypt", "rg", "rust-spawn-env")
            if f'<tbody class=group data-binary="{g}">' in text] == ["c-hello", "c-needs-libcrypt", "rg", "rust-spawn-env"]


def test_one_self_contained_file_nothing_fetched_at_view_time() -> None:
    text = page()
    dom = grid_dom.read(text)
    assert dom.fetched == []
    assert "<style>" in text and "<script>" in text and "@import" not in text and "url(" not in text
    assert "/*css*/" not in text and "/*js*/" not in text and "<!--body-->" not in text
