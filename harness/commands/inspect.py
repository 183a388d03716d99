"""``ldmatrix inspect FILE``: what to write for a foreign program to run with nix-ld, per NixOS release,
each answer confirmed by a real cell (harness/loader/inspect.py)."""

from __future__ import annotations

import argparse
from pathlib import Path

from harness import matrix as matrix_mod
from harness.commands import options
from harness.commands.options import DEFAULT_OUT
from harness.errors import LdmatrixError, did_you_mean
from harness.progress import StderrProgress
from harness.results.outdir import RESULTS_NAME


def cmd_inspect(args: argparse.Namespace) -> int:
    from harness import provision
    from harness.cache import Cache
    from harness.loader import elf, inspect
    from harness.provision.libraries import CONFIG as LIBRARIES
    from harness.provision.packages import PackageStore
    from harness.root.release import RELEASES

    if not args.file.is_file():
        raise LdmatrixError(f"{args.file}: no such file")
    info = elf.read(args.file)
    if info.interpreter is None and info.soname is not None:
        raise LdmatrixError(f"{args.file}: a shared library ({info.soname}), not a program: inspect the program "
                            "that loads it")
    if info.interpreter is None:
        print(f"{args.file.name}: static: runs as is (no interpreter, no libraries to find)")
        return 0
    for option, given, allowed in (("--glibc", args.glibc, list(provision.SUITES)),
                                   ("--nixos", args.nixos, list(RELEASES))):
        unknown = [v for v in given if v not in allowed]
        if unknown:
            raise LdmatrixError(f"{option} {unknown[0]}: unknown{did_you_mean(unknown[0], allowed)} "
                                f"(allowed: {', '.join(allowed)})")
    versions = list(args.glibc) or [inspect.DEFAULT_GLIBC]
    releases = [RELEASES[r] for r in (args.nixos or inspect.DEFAULT_RELEASES)]
    cache, progress = Cache.default(), StderrProgress(quiet=args.quiet)
    lock = provision.load_lock()
    glibcs = [provision.provision_glibc(v, cache, progress, lock=lock) for v in versions]
    stores = [PackageStore(g, lock, cache, progress) for g in glibcs]
    answers = []
    for glibc, store in zip(glibcs, stores):
        for release in releases:
            progress.step(f"inspect: the smallest programs.nix-ld.libraries on {release.pretty_name}, "
                          f"glibc {glibc.glibc_version}")
            answers.append(inspect.answer(info, args.file, glibc, store, release))
    confirmations = _confirm(args, answers, cache, progress) if not args.no_run else {}
    print(inspect.summary(info))
    for a in answers:
        print(f"{a.release.pretty_name}, glibc {a.glibc}:")
        if not a.loads:
            print(f"  no list of these makes it load: {a.prediction.outcome.value}: {a.prediction.reason}")
        else:
            print(f"  {a.snippet}")
        if a.unprovided:
            print(f"  no nixpkgs attribute ldmatrix knows provides {', '.join(a.unprovided)}")
        print(f"  {confirmations[a].line() if a in confirmations else 'not confirmed (--no-run)'}")
    if args.verbose:
        library_sets = {"none": (), "default": LIBRARIES.default}
        print("\n".join(inspect.details(info, args.file, glibcs, stores, library_sets)))
    else:
        print(f"(what each strategy and library set gives it: ldmatrix inspect {args.file} -v)")
    return 0


def _confirm(args: argparse.Namespace, answers: list, cache, progress: StderrProgress) -> dict:
    """Run one nix-ld cell per answer (harness/loader/inspect.py ``confirmation_matrix``); answer -> Confirmation."""
    import tempfile

    from harness import nixld
    from harness.cache import REPO_ROOT
    from harness.loader import inspect
    from harness.model import Strategy
    from harness.session import RunOptions, execute

    seed = matrix_mod.load(REPO_ROOT / "matrices" / "seed.yaml")
    pinned = seed.nix_ld_sources.get(args.nix_ld_version)
    source = (pinned.url, pinned.nar_hash) if pinned else None
    supply = nixld.supply(args.nix_ld, args.nix_ld_archives, cache, progress)
    with tempfile.TemporaryDirectory(prefix="ldmatrix-inspect-") as tmp:
        path = Path(tmp) / "inspect.yaml"
        path.write_text(inspect.confirmation_matrix(args.file, answers, args.run, args.nix_ld_version, source))
        matrix = matrix_mod.load(path, extra_nix_ld=supply.labels)
        results = execute(matrix, RunOptions(out=args.out, nix_ld=supply, cache=cache),
                          progress if not args.quiet else None)
    out: dict = {}
    written = args.out / matrix.name / RESULTS_NAME
    for a in answers:
        for r in results:
            axes = r.axes
            if (axes.get("glibc"), axes.get("libs"), axes.get("nixos", a.release.version), axes.get("nix_ld")) == \
                    (a.glibc, a.libs, a.release.version, args.nix_ld_version) and axes.get("strategy") == \
                    Strategy.NIX_LD.value:
                out[a] = inspect.Confirmation(r.cell_id, r.outcome, r.evidence or r.skip_reason or "",
                                              written if r.outcome is not None else None)
    return out


def add(sub: argparse._SubParsersAction) -> None:
    ins = sub.add_parser("inspect", help="what to write for a foreign program to run with nix-ld, per NixOS "
                                         "release, each answer confirmed by a real cell; details with -v",
                         parents=[options.NIX_LD, options.out_option(DEFAULT_OUT, "where the confirming cells' "
                                                                                  "results go: <out>/inspect-NAME"),
                                  options.QUIET])
    ins.add_argument("file", type=Path, help="the program (an ELF file)")
    ins.add_argument("--glibc", action="append", default=[], metavar="VERSION",
                     help="the store glibc to answer for (repeatable; default 2.42, NixOS 26.05's)")
    ins.add_argument("--nixos", action="append", default=[], metavar="RELEASE",
                     help="the NixOS release to answer for (repeatable; default 23.11, the list replacing the base "
                          "libraries, and 26.05, the list added to them)")
    ins.add_argument("--run", action="append", default=[], metavar="ARG",
                     help="an argument the confirming cell runs the program with (repeatable; default none)")
    ins.add_argument("--no-run", action="store_true", help="answer from the ELF files alone, confirm nothing")
    ins.add_argument("--nix-ld-version", default="2.0.6", metavar="VERSION",
                     help="the nix-ld the confirming cells use (default 2.0.6, built from its pinned source)")
    ins.add_argument("-v", "--verbose", action="store_true", help="also what each strategy and library set gives it")
    ins.set_defaults(func=cmd_inspect)
