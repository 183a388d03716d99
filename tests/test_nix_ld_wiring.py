"""The nix-ld strategy's wiring, tested with a STAND-IN interpreter (tests/fixtures/standin_interp.c).

The stand-in is not nix-ld and imitates none of its bugs: it goes through the real provider path
(``--nix-ld 0.0.0=PATH``: a version no nix-ld release has), sits where the strategy links /lib64/ld-linux-x86-64.so.2,
and does only what a correct trampoline does. So these cells show that the layout (the /lib64
link, NIX_LD, NIX_LD_LIBRARY_PATH) works, and that an env-corrupted cell can only come from a real,
buggy nix-ld. Outcomes are compared directly, not with the matrix's expectations (written for
real nix-ld).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from harness import matrix as matrix_mod
from harness.cache import REPO_ROOT
from harness.model import CellResult, Outcome
from harness.session import RunOptions, execute

pytestmark = pytest.mark.slow

LABEL = "0.0.0"
GLIBCS = ("2.31", "2.36", "2.41", "2.43")


@pytest.fixture(scope="module")
def results(standin_interp: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, CellResult]:
    from harness import nixld
    from harness.cache import Cache
    from harness.progress import NullProgress

    supply = nixld.supply([f"{LABEL}={standin_interp}"], [], Cache.default(), NullProgress())
    seed = matrix_mod.load(REPO_ROOT / "matrices" / "seed.yaml", extra_nix_ld=supply.labels)
    options = RunOptions(runner="sandbox", select=f"-{LABEL}.glibc", jobs=4, nix_ld=supply,
                         out=tmp_path_factory.mktemp("results"))
    out = {r.cell_id: r for r in execute(seed, options)}
    assert out, "the stand-in label selected no cells"
    skipped = {r.cell_id: r.skip_reason for r in out.values() if r.skip_reason}
    assert not skipped, f"cells skipped: {skipped}"
    return out


def outcome(results: dict[str, CellResult], cell_id: str) -> Outcome | None:
    assert cell_id in results, f"{cell_id} not in the run (have {sorted(results)[:5]}...)"
    r = results[cell_id]
    return r.outcome


def detail(results: dict[str, CellResult], cell_id: str) -> str:
    r = results[cell_id]
    return f"{cell_id}: {r.outcome} ({r.evidence}); rc={r.rc}\nstdout:\n{r.stdout}\nstderr:\n{r.stderr}"


@pytest.mark.parametrize("glibc", GLIBCS)
def test_c_hello_runs_through_the_layout(results: dict[str, CellResult], glibc: str) -> None:
    cid = f"c-hello.nix-ld-{LABEL}.glibc-{glibc}.libs-default"
    assert outcome(results, cid) is Outcome.OK, detail(results, cid)


@pytest.mark.parametrize("glibc", GLIBCS)
def test_libcrypt_missing_then_found_with_ld_library_path(results: dict[str, CellResult], glibc: str) -> None:
    plain = f"c-needs-libcrypt.nix-ld-{LABEL}.glibc-{glibc}.libs-default"
    fixed = f"c-needs-libcrypt.nix-ld+LD_LIBRARY_PATH-{LABEL}.glibc-{glibc}.libs-default"
    assert outcome(results, plain) is Outcome.MISSING_LIBRARY, detail(results, plain)
    assert outcome(results, fixed) is Outcome.OK, detail(results, fixed)


@pytest.mark.parametrize("glibc", GLIBCS)
@pytest.mark.parametrize("binary", ["rust-spawn-env", "rust-spawn-inherit"])
@pytest.mark.parametrize("env", ["", ".nix-path-next", ".cargo-run"])
def test_patched_child_is_ok(results: dict[str, CellResult], binary: str, glibc: str, env: str) -> None:
    cid = f"{binary}.nix-ld+patchelf-{LABEL}.glibc-{glibc}{env}.libs-default"
    assert outcome(results, cid) is Outcome.OK, detail(results, cid)


@pytest.mark.parametrize("glibc", GLIBCS)
@pytest.mark.parametrize("binary", ["rust-spawn-env", "rust-spawn-inherit", "c-envprint"])
@pytest.mark.parametrize("env", ["", ".nix-path-next", ".cargo-run"])
def test_no_corruption_without_a_buggy_nix_ld(results: dict[str, CellResult], binary: str, glibc: str,
                                              env: str) -> None:
    """The corruption cells (nix-ld 1.x, NIX_PATH next) keep argv, environment and AT_EXECFN intact
    with a correct interpreter. One thing differs, and the start-up check sees it: the stand-in
    execs ld.so (nix-ld maps it into the program's own process), so /proc/self/exe names ld.so."""
    cid = f"{binary}.nix-ld-{LABEL}.glibc-{glibc}{env}.libs-default"
    lines = results[cid].stdout.splitlines()
    findings = [line for line in lines if line.startswith("envprint: ") and "loader-managed entry" not in line]
    assert len(findings) == 1, detail(results, cid)
    # it is no trampoline: the LD_LIBRARY_PATH it gives ld.so stays for the program, judged as a loader's edit
    edits = [line for line in lines if re.match(r"envprint: (unexpected )?loader-managed entry \d+", line)]
    assert edits and all("LD_LIBRARY_PATH=/run/current-system/sw/share/nix-ld/lib" in e for e in edits), \
        detail(results, cid)
    assert re.fullmatch(r'envprint: /proc/self/exe damaged: "/home/user/bin/c-envprint" became '
                        r'"/nix/store/[0-9a-z]{32}-glibc-[^/]+/lib/ld-[^/]*\.so[^/]*"', findings[0]), detail(results, cid)


@pytest.mark.parametrize("glibc", GLIBCS)
def test_glibc_too_old_through_nix_ld(results: dict[str, CellResult], glibc: str) -> None:
    cid = f"c-needs-glibc-2.38.nix-ld-{LABEL}.glibc-{glibc}.libs-default"
    want = Outcome.GLIBC_TOO_OLD if glibc < "2.38" else Outcome.OK
    assert outcome(results, cid) is want, detail(results, cid)


def test_every_stand_in_cell_ran(results: dict[str, CellResult]) -> None:
    assert all(r.outcome is not None for r in results.values())
    assert all(r.axes.get("nix_ld") == LABEL for r in results.values())
