"""``ldmatrix run MATRIX``: run every cell (or those ``-k`` selects, or a ``--shard``), print the grid."""

from __future__ import annotations

import argparse
from pathlib import Path

from harness import matrix as matrix_mod
from harness.commands import options
from harness.commands.options import DEFAULT_OUT, CellProgress, check_outputs, run_inputs
from harness.errors import LdmatrixError
from harness.model import CellResult
from harness.results import file as results_file
from harness.results import guard, html_grid, report
from harness.results.outdir import RESULTS_NAME


def cmd_run(args: argparse.Namespace) -> int:
    from harness.interrupt import EXIT_STATUS, Interrupted, exit_at_next
    from harness.session import execute

    check_outputs(args)
    baseline = results_file.read(args.baseline) if args.baseline else None
    inputs = run_inputs(args)
    progress = inputs.progress
    matrix = inputs.load(args.matrix)
    if not matrix.select(args.k):
        raise LdmatrixError(f"-k {args.k!r} selects no cell of {matrix.name} ({len(matrix.cells)} cells)")
    options = inputs.options(runner=args.runner, select=args.k, jobs=args.jobs, out=args.out, shard=args.shard)
    cells = options.cells(matrix)
    progress.step(f"{matrix.name}: {len(cells)} cells" + (f" (shard {args.shard})" if args.shard else "")
                  + f", runner {args.runner or matrix.runner}")
    results_path = (options.out / matrix.name / RESULTS_NAME).absolute()  # `ldmatrix show` works from anywhere
    try:
        results = execute(matrix, options, progress, on_result=CellProgress(len(cells)))
    except Interrupted as stop:  # Ctrl-C: what was recorded, as a grid; the cells stopped say so
        exit_at_next()  # a second Ctrl-C while this is printed: stop there
        if stop.results:
            print(report.grid(stop.results))
            print(report.legend())
        stopped = sum(r.outcome is not None and r.rc is None and r.evidence.startswith("interrupted")
                      for r in stop.results)
        print(f"{matrix.name}: interrupted: {len(stop.results)} of {len(cells)} cells recorded ({stopped} stopped "
              f"while running, an error each), {len(cells) - len(stop.results)} not run; results in {results_path}")
        return EXIT_STATUS
    return present(args, matrix.name, results, results_path, baseline)


def present(args: argparse.Namespace, name: str, results: list[CellResult], results_path: Path,
            baseline: results_file.ResultsFile | None = None) -> int:
    """What ``run`` and ``merge`` print and write once the results are in; the exit status: 1 when a
    cell is not what its matrix expects or differs from the baseline, else 0."""
    print(report.grid(results))
    print(report.legend())
    for text in (report.skipped_reasons(results), report.failures(results, results_path)):
        if text:
            print(text)
    disagreeing = report.disagreements(results)
    if disagreeing:
        print("the loader did not do what the ELF files predict (a harness bug or a finding):")
        print(disagreeing)
    if args.markdown:
        args.markdown.write_text(report.grid(results, markdown=True) + "\n")
    if args.html:
        args.html.write_text(html_grid.page(results, f"ldmatrix: {name}", results_path))
    comparison = None
    if baseline is not None:
        ran = {r.cell_id for r in results}  # a shard ran its slice: the baseline's other cells are not gone
        selected = [r for r in baseline.results if (r.cell_id in ran if getattr(args, "shard", None) else
                                                    matrix_mod.selects(getattr(args, "k", None), r.cell_id))]
        comparison = guard.compare(selected, results, old_name=str(args.baseline), new_name=str(results_path),
                                   damaged=baseline.damaged)
        print("changes against the baseline:")
        print(guard.text(comparison))
    print(f"{name}: {report.summary(results)}; results in {results_path}")
    if args.summary:
        report.append_summary(args.summary, report.markdown_summary(results, f"ldmatrix: {name}")
                        + ("\n\n" + guard.markdown(comparison, "changes against the baseline") if comparison else ""))
    unexpected = any(report.mark(r) == report.MARK_MISMATCH for r in results)
    return 1 if unexpected or (comparison is not None and not comparison.clean) else 0


def add(sub: argparse._SubParsersAction) -> None:
    run = sub.add_parser("run", help="run every cell of a matrix and print the grid",
                         parents=[options.RUNNER, options.SELECT, options.JOBS, options.NIX_LD, options.NIXPKGS,
                                  options.PINS,
                                  options.out_option(DEFAULT_OUT, "results directory; one run at a time holds "
                                                                  "<out>/<matrix>/ (a second one stops)"),
                                  options.GRID_FILES, options.SUMMARY, options.LOCK, options.QUIET])
    run.add_argument("matrix", type=Path, help="the matrix YAML (e.g. matrices/seed.yaml)")
    run.add_argument("--shard", type=options.shard_arg, metavar="K/N",
                     help="run only the K-th of N slices of the selected cells, balanced by expected cost "
                          "(default: all); `ldmatrix merge` puts the N results together")
    run.add_argument("--baseline", type=Path,
                     help="a results.jsonl to compare against, as `ldmatrix diff`; any change makes the exit status 1")
    run.set_defaults(func=cmd_run)
