"""Real nix-ld, built here from upstream's release archives and git bundle, running real cells.

The seed's corrupted line must come out of nix-ld 1.2.2 byte for byte; 2.0.6 must leave every
child's environment intact and restore LD_LIBRARY_PATH; ``ldmatrix bisect`` must name the
commit between 2.0.5 and 2.0.6 that stops a crash. Slow: builds in the nix-ld build root.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from harness import cli, nixld
from harness import matrix as matrix_mod
from harness.cache import REPO_ROOT, Cache
from harness.model import CellResult, Outcome
from harness.nixld import source
from harness.nixld.build import BuildFailed, build
from harness.progress import NullProgress
from harness.session import RunOptions, execute

pytestmark = pytest.mark.slow

# The line the seed post printed (its PATH printer, after `nix run nixpkgs#rye` under nix-ld 1.x).
SEED_LINE = ("PATH=nixpkgxpkgs=/nix/var/nix/profiles/per-user/root/channels/nixos"
             ":nixos-config=/etc/nixos/configuration.nix:/nix/var/nix/profiles/per-user/root/channels")
NIX_LD_LIB = "/run/current-system/sw/share/nix-ld/lib"
CARGO_LD_LIBRARY_PATH = "/home/user/project/target/debug/deps:/home/user/project/target/debug"


class _Steps:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def step(self, message: str) -> None:
        self.lines.append(message)


def run_version(archives: Path, version: str, select: str, out: Path) -> dict[str, CellResult]:
    supply = nixld.supply([f"src:{archives / f'nix-ld-{version}.tar.gz'}"], [], Cache.default(), NullProgress())
    seed = matrix_mod.load(REPO_ROOT / "matrices" / "seed.yaml", extra_nix_ld=supply.labels)
    results = {r.cell_id: r for r in execute(seed, RunOptions(select=select, out=out, nix_ld=supply))}
    assert results and all(r.outcome is not None for r in results.values()), \
        {r.cell_id: r.skip_reason for r in results.values() if r.outcome is None}
    return results


def loader_entries(result: CellResult) -> list[str]:
    prefix = 'envprint: loader-managed entry "'
    return [line[len(prefix):-1] for line in result.stdout.splitlines() if line.startswith(prefix)]


@pytest.fixture(scope="module")
def v122(nix_ld_archives: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, CellResult]:
    return run_version(nix_ld_archives, "1.2.2", "nix-ld 1.2.2.glibc-2.36", tmp_path_factory.mktemp("r122"))


@pytest.fixture(scope="module")
def v206(nix_ld_archives: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, CellResult]:
    return run_version(nix_ld_archives, "2.0.6", "nix-ld 2.0.6.glibc-2.36", tmp_path_factory.mktemp("r206"))


def test_nix_ld_1_2_2_gives_the_seeds_line_byte_for_byte(v122: dict[str, CellResult]) -> None:
    r = v122["rust-spawn-env.nix-ld-1.2.2.glibc-2.36.libs-default"]
    assert r.outcome is Outcome.ENV_CORRUPTED, r.evidence
    assert r.stdout.splitlines()[0] == SEED_LINE  # the printer's first PATH entry: the bogus one
    before = "NIX_PATH=" + SEED_LINE.removeprefix("PATH=").replace("nixpkgxpkgs=", "nixpkgs=", 1)
    assert r.evidence.startswith("LDMATRIX-CHECK: env-corrupted: environment entry ")
    assert r.evidence.endswith(f' damaged: "{before}" became "{SEED_LINE}"')
    assert "built from nix-ld-1.2.2.tar.gz" in r.extra["nix_ld"]


def test_nix_ld_1_2_2_leaves_a_patched_child_intact(v122: dict[str, CellResult]) -> None:
    cell = "rust-spawn-env.nix-ld+patchelf-1.2.2.glibc-2.36.libs-default"  # the child does not use nix-ld
    assert v122[cell].outcome is Outcome.OK, (v122[cell].evidence, v122[cell].stdout)


def test_nix_ld_1_2_2_with_ld_library_path_set_renames_nothing_but_pollutes_it(v122: dict[str, CellResult]) -> None:
    """LD_LIBRARY_PATH set (cargo run): 1.x appends its directory instead of renaming in place, so no
    entry is shifted, but the program (and every child of it) gets nix-ld's directory on its
    LD_LIBRARY_PATH: a loader-managed entry changed, which 2.x promises not to do (issue 17)."""
    r = v122["rust-spawn-env.nix-ld-1.2.2.glibc-2.36.cargo-run.libs-default"]
    assert r.outcome is Outcome.ENV_CORRUPTED, (r.evidence, r.stdout)
    assert "loader-managed entry" in r.evidence and "LD_LIBRARY_PATH=" in r.evidence
    assert r.evidence.rstrip('"').endswith(":/run/current-system/sw/share/nix-ld/lib")
    assert "damaged" not in r.evidence  # no entry shifted: only its own variable grew


def test_nix_ld_1_2_2_keeps_an_inherited_environment_but_damages_at_execfn(v122: dict[str, CellResult]) -> None:
    """Inherited login order: NIX_LD_LIBRARY_PATH is the last entry, so the environment is intact
    and what follows on the stack, the kernel's copy of the file name, takes the damage."""
    r = v122["rust-spawn-inherit.nix-ld-1.2.2.glibc-2.36.libs-default"]
    findings = [line for line in r.stdout.splitlines() if line.startswith("envprint: ") and "damaged" in line]
    assert findings == ['envprint: AT_EXECFN damaged: "/home/user/bin/c-envprint" became "e/user/bin/bin/c-envprint"']
    assert r.outcome is Outcome.ENV_CORRUPTED


def test_nix_ld_1_2_2_renames_nix_ld_library_path_for_the_program(v122: dict[str, CellResult]) -> None:
    entries = loader_entries(v122["c-envprint.nix-ld-1.2.2.glibc-2.36.libs-default"])
    assert f"LD_LIBRARY_PATH={NIX_LD_LIB}" in entries
    assert not any(e.startswith("NIX_LD_LIBRARY_PATH=") for e in entries)


def test_nix_ld_2_0_6_leaves_every_child_intact(v206: dict[str, CellResult]) -> None:
    bad = {cid: r.evidence for cid, r in v206.items() if r.outcome is not Outcome.OK
           and not cid.startswith(("c-needs-libcrypt.nix-ld-", "c-needs-glibc-2.38."))}
    assert not bad


def test_nix_ld_2_0_6_restores_ld_library_path(v206: dict[str, CellResult]) -> None:
    unset = loader_entries(v206["c-envprint.nix-ld-2.0.6.glibc-2.36.libs-default"])
    assert not any(e.startswith("LD_LIBRARY_PATH=") for e in unset), unset
    cargo = loader_entries(v206["c-envprint.nix-ld-2.0.6.glibc-2.36.cargo-run.libs-default"])
    assert f"LD_LIBRARY_PATH={CARGO_LD_LIBRARY_PATH}" in cargo, cargo


def test_a_second_build_builds_nothing(nix_ld_archives: Path) -> None:
    cache, steps = Cache.default(), _Steps()
    tree = source.load(nix_ld_archives / "nix-ld-1.2.2.tar.gz", cache)
    first = build(tree, cache, NullProgress())
    again = build(tree, cache, steps)
    assert again.executable == first.executable
    assert any("reusing the build" in s for s in steps.lines) and not any("building" in s for s in steps.lines)


def test_a_failing_build_names_its_log_and_last_lines(nix_ld_archives: Path, tmp_path: Path) -> None:
    cache = Cache.default()
    good = source.load(nix_ld_archives / "nix-ld-1.2.2.tar.gz", cache)
    broken = tmp_path / "nix-ld-1.2.2"
    shutil.copytree(good.path, broken)
    (broken / "src" / "nix-ld.c").write_text('#error "ldmatrix: this source is broken on purpose"\n')
    tree = source.load(broken, cache, label="1.2.2")
    with pytest.raises(BuildFailed) as info:
        build(tree, cache, NullProgress())
    message = str(info.value)
    assert "\n" not in message and "broken on purpose" in message
    log = Path(message.split("log: ", 1)[1].split(";", 1)[0])
    assert log.is_file() and "broken on purpose" in log.read_text()


def test_bisect_names_the_commit_that_fixed_the_2_0_5_crash(nix_ld_archives: Path, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    rc = cli.main(["bisect", str(REPO_ROOT / "matrices" / "seed.yaml"), "c-hello.nix-ld-2.0.5.glibc-2.31.libs-default",
                   "--repo", str(nix_ld_archives / "nix-ld.bundle"), "--old", "2.0.5", "--new", "2.0.6",
                   "--out", str(tmp_path), "-q"])
    out = capsys.readouterr().out
    assert rc == 0, out
    last = out.strip().splitlines()[-1]
    assert "(crash -> ok) is 4c22def9dd29e282c800aab35620ea4f75493a8d (Fix segment-relative BSS mapping)" in last
    assert "killed by SIGSEGV" in out  # the steps before the fix show their proving lines
