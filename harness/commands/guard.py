"""``ldmatrix guard``: run matrices, compare each glibc build with its baseline, say what changed.

    ldmatrix guard matrices/seed.yaml matrices/glibc.yaml --nixpkgs supported \\
        [--baselines baselines] [--summary "$GITHUB_STEP_SUMMARY"] [--bless]

Each matrix is run (as ``ldmatrix run``), its cells split by glibc build (Debian's, or each
``--nixpkgs`` pin's), and each part compared with ``baselines/<build>/<matrix>.jsonl``
(harness/results/baseline.py): any cell whose outcome changed, that appeared, disappeared, is now skipped
or now run, is a change; so is a missing baseline. The terminal gets the changes, ``--summary``
a Markdown summary naming every changed cell (a CI job summary), and the exit status is 1 on any
change, 0 when nothing changed, 2 when something could not be run at all. ``--bless`` writes this
run as the baselines instead (what the refresh workflow commits by pull request).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from harness import matrix as matrix_mod
from harness import paths
from harness.commands import options
from harness.commands.options import RunInputs, run_inputs
from harness.errors import LdmatrixError
from harness.results import baseline, guard, report
from harness.results import file as results_file
from harness.results.outdir import RESULTS_NAME

DEFAULT_BASELINES = Path("baselines")
DEFAULT_OUT = Path(".ldmatrix/guard")


def _title(check: baseline.Check) -> str:
    if check.build == baseline.DEBIAN:
        return f"{check.matrix} on Debian's glibc builds"
    glibc = (check.tonight or {}).get("glibc")
    return f"{check.matrix} on {check.build}" + (f" · glibc {glibc}" if glibc else "")


def markdown(checks: list[baseline.Check], unexpected: dict[str, int]) -> str:
    changed = [c for c in checks if not c.clean]
    mark = ":white_check_mark:" if not changed else ":x:"
    lines = [f"## ldmatrix guard {mark}", ""]
    if not changed:
        lines.append(f"No cell changed: {sum(c.comparison.compared for c in checks)} cells compared in "
                     f"{len(checks)} baselines.")
    else:
        lines.append(f"{len(changed)} of {len(checks)} baselines changed; each changed cell is listed below. "
                     "If the change is expected, bless it: run the *refresh baselines* workflow (or "
                     "`ldmatrix guard ... --bless`) and merge its pull request.")
    for matrix, count in unexpected.items():
        if count:
            lines.append(f"- {matrix}: {count} cells not as the matrix expects (see the run's grid)")
    lines.append("")
    for check in checks:
        if check.clean:
            continue
        moved = check.moved()
        section = guard.markdown(check.comparison, _title(check))
        if check.baseline is None:
            section += f"\nNo baseline yet: `{check.path}` is missing (bless this run to make it).\n"
        if moved:
            section += f"\nThe pin moved: {moved}.\n"
        lines.append(section)
    return "\n".join(lines)


def cmd_guard(args: argparse.Namespace) -> int:
    from harness.session import execute

    if args.summary is not None:
        paths.output_file(args.summary, "--summary")
    if args.results is not None and not args.results.is_dir():
        raise LdmatrixError(f"--results {args.results}: not a directory (it holds <matrix>/results.jsonl)")
    inputs: RunInputs | None = None
    for matrix_path in args.matrices:
        if not matrix_path.is_file():
            raise LdmatrixError(f"{matrix_path}: no such matrix")
    baseline.check_root(args.baselines)
    checks: list[baseline.Check] = []
    unexpected: dict[str, int] = {}
    recorded: dict[str, tuple[list, dict]] = {}  # --results: matrix name -> (its results, its pins' header)
    if args.results is not None:  # a run made elsewhere: the shards of a fan-out, merged
        matrices = [matrix_mod.load(matrix_path) for matrix_path in args.matrices]
        for matrix in matrices:
            loaded = results_file.read(args.results / matrix.name / RESULTS_NAME)
            if loaded.damaged:
                raise LdmatrixError(f"guard: {loaded.damaged[0]}: a damaged result; run it again")
            recorded[matrix.name] = (list(loaded.results), dict((loaded.header or {}).get("nixpkgs") or {}))
    else:
        inputs = run_inputs(args)
        matrices = [inputs.load(matrix_path) for matrix_path in args.matrices]
    if not args.bless:  # a baseline that is there and cannot be read stops the guard before anything runs
        for matrix in matrices:
            pins = recorded[matrix.name][1] if matrix.name in recorded else inputs.nixpkgs.header() if inputs else {}
            baseline.check_readable(args.baselines, matrix.name, [baseline.DEBIAN, *pins])
    for matrix in matrices:
        if matrix.name in recorded:
            results, pin_header = recorded[matrix.name]
        else:
            assert inputs is not None
            pin_header = inputs.nixpkgs.header()
            inputs.progress.step(f"{matrix.name}: {len(matrix.cells)} cells")
            results = execute(matrix, inputs.options(jobs=args.jobs, out=args.out), inputs.progress)
        unexpected[matrix.name] = sum(report.mark(r) == report.MARK_MISMATCH for r in results)
        print(f"{matrix.name}: {report.summary(results)}")
        if args.bless:
            for path in baseline.bless(results, args.baselines, matrix.name, matrix.runner, pin_header):
                print(f"blessed {path}")
            continue
        for check in baseline.check(results, args.baselines, matrix.name, pin_header):
            checks.append(check)
            state = "no baseline" if check.baseline is None else guard.headline(check.comparison)
            print(f"{_title(check)}: {state}")
            if not check.clean and check.baseline is not None:
                print("\n".join("  " + line for line in guard.text(check.comparison).splitlines()[1:]))
            moved = check.moved()
            if moved:
                print(f"  the pin moved: {moved}")
    if args.bless:
        return 0
    if args.summary:
        report.append_summary(args.summary, markdown(checks, unexpected))
    changed = [c for c in checks if not c.clean]
    print(f"guard: {len(changed)} of {len(checks)} baselines changed" if changed
          else f"guard: nothing changed ({len(checks)} baselines)")
    return 1 if changed else 0


def add(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser("guard", help="run matrices and compare each glibc build with its committed baseline; "
                                            "exit 1 on any change",
                              parents=[options.SUMMARY,
                                       options.out_option(DEFAULT_OUT, "results directory of the runs"), options.JOBS,
                                       options.LOCK, options.QUIET, options.NIX_LD, options.NIXPKGS, options.PINS])
    p.add_argument("matrices", nargs="+", type=Path, metavar="MATRIX", help="the matrices to run and compare")
    p.add_argument("--baselines", type=Path, default=DEFAULT_BASELINES,
                   help="the baselines directory: <build>/<matrix>.jsonl (default: baselines)")
    p.add_argument("--bless", action="store_true", help="write this run as the baselines instead of comparing")
    p.add_argument("--results", type=Path, metavar="DIR",
                   help="compare the runs in DIR/<matrix>/results.jsonl (e.g. merged shards) instead of running")
    p.set_defaults(func=cmd_guard)
    return p
