"""End to end through the CLI: real provisioning, real builds, real bubblewrap runs."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("bwrap") is None, reason="needs bubblewrap: apt-get install -y bubblewrap"),
]


def ldmatrix(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True, text=True, cwd=cwd,
                          env={**(_env() if env is None else env), "PYTHONPATH": str(REPO)}, timeout=1800)


def _env() -> dict[str, str]:
    import os

    return dict(os.environ)


@pytest.fixture(scope="module")
def seed_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], dict, Path]:
    work = tmp_path_factory.mktemp("seed")
    proc = ldmatrix("run", str(REPO / "matrices" / "seed.yaml"), "--out", "results",
                    "-k", "glibc-2.3", cwd=work)  # glibc 2.31 and 2.36 columns
    results = {}
    for line in (work / "results" / "seed" / "results.jsonl").read_text().splitlines():
        record = json.loads(line)
        if "cell_id" in record:
            results[record["cell_id"]] = record
    return proc, results, work


def test_run_succeeds_and_prints_the_grid(seed_run) -> None:
    proc, results, _ = seed_run
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "glibc 2.31" in proc.stdout and "glibc 2.36" in proc.stdout
    assert "0 unexpected" in proc.stdout
    assert re.search(r"^\[\s*1/\d+\] ", proc.stderr, re.M)  # progress, one line per finished cell


@pytest.mark.parametrize("cell_id, outcome, proof", [
    ("c-hello.none.glibc-2.36", "missing-interpreter", "No such file or directory"),
    ("c-hello.patchelf.glibc-2.36", "ok", "LDMATRIX-CHECK: ok"),
    ("c-needs-libcrypt.patchelf.glibc-2.36", "missing-library", "libcrypt.so.1: cannot open shared object file"),
    ("c-needs-libcrypt.patchelf+LD_LIBRARY_PATH.glibc-2.36", "ok", "LDMATRIX-CHECK: ok"),
    ("c-needs-glibc-2.38.patchelf.glibc-2.31", "glibc-too-old", "not found"),
    ("c-needs-glibc-2.38.patchelf.glibc-2.36", "glibc-too-old", "GLIBC_2.38' not found"),
    ("c-needs-libcrypt.container.glibc-2.31", "ok", "LDMATRIX-CHECK: ok"),
    ("rust-spawn-env.none.glibc-2.36", "missing-interpreter", "failed to spawn"),
    ("rust-spawn-env.patchelf.glibc-2.36", "ok", "LDMATRIX-CHECK: ok"),
])
def test_seed_facts_from_real_runs(seed_run, cell_id: str, outcome: str, proof: str) -> None:
    _, results, _ = seed_run
    record = results[cell_id]
    assert record["outcome"] == outcome
    assert proof in record["evidence"]


def test_nix_ld_cells_run_a_real_nix_ld(seed_run) -> None:
    _, results, _ = seed_run
    record = results["rust-spawn-env.nix-ld-1.2.2.glibc-2.36.libs-default"]
    if record["outcome"] is None:
        pytest.skip(f"no nix-ld here: {record['skip_reason']}")
    assert record["outcome"] == "env-corrupted"
    assert record["extra"]["nix_ld"].startswith("built from nix-ld-1.2.2.tar.gz (sha256-")


def test_a_version_nothing_can_supply_is_skipped_with_every_way_to_supply_one(tmp_path: Path) -> None:
    matrix = tmp_path / "m.yaml"
    matrix.write_text("name: nowhere\nbinaries: {c-hello: {reproducer: hello, built_in: bullseye}}\n"
                      "axes: {strategy: [nix-ld], glibc: ['2.36'], nix_ld: ['1.9.9']}\nexpect: [{outcome: ok}]\n")
    no_archives = {k: v for k, v in _env().items() if k != "LDMATRIX_NIX_LD_ARCHIVES"}
    proc = ldmatrix("run", str(matrix), "--out", "results", cwd=tmp_path, env=no_archives)
    assert proc.returncode == 0, proc.stderr
    record = json.loads((tmp_path / "results" / "nowhere" / "results.jsonl").read_text().splitlines()[-1])
    assert record["outcome"] is None
    for way in ("--nix-ld 1.9.9=/path/to/nix-ld", "nix build nixpkgs#nix-ld", "--nix-ld src:", "--nix-ld-archives"):
        assert way in record["skip_reason"]
    # with a directory of archives searched, the reason names it instead of recommending the flag
    archives = tmp_path / "archives"
    archives.mkdir()
    proc = ldmatrix("run", str(matrix), "--out", "again", "--nix-ld-archives", str(archives), cwd=tmp_path,
                    env=no_archives)
    record = json.loads((tmp_path / "again" / "nowhere" / "results.jsonl").read_text().splitlines()[-1])
    assert str(archives) in record["skip_reason"] and "--nix-ld-archives" not in record["skip_reason"]


@pytest.mark.parametrize("how", ["--nix-ld-archives", "LDMATRIX_NIX_LD_ARCHIVES"])
def test_archives_serve_a_matrix_that_pins_no_nix_ld_source(tmp_path: Path, nix_ld_archives: Path, how: str) -> None:
    """A matrix without nix_ld_sources: its nix-ld versions come from the archive directory."""
    matrix = tmp_path / "m.yaml"
    matrix.write_text("name: unpinned\nbinaries: {c-hello: {reproducer: hello, built_in: bullseye}}\n"
                      "axes: {strategy: [nix-ld], glibc: ['2.41'], nix_ld: ['2.0.6'], libs: [default]}\n"
                      "expect: [{outcome: ok}]\n")
    env = {k: v for k, v in _env().items() if k != "LDMATRIX_NIX_LD_ARCHIVES"}
    flag: tuple[str, ...] = ()
    if how == "--nix-ld-archives":
        flag = (how, str(nix_ld_archives))
    else:
        env[how] = str(nix_ld_archives)
    proc = ldmatrix("run", str(matrix), "--out", "results", "-q", *flag, cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    record = json.loads((tmp_path / "results" / "unpinned" / "results.jsonl").read_text().splitlines()[-1])
    assert record["outcome"] == "ok", record["skip_reason"] or record["evidence"]
    assert record["extra"]["nix_ld"].startswith("built from nix-ld-2.0.6.tar.gz (sha256-")


def test_show_prints_command_environment_and_output(seed_run) -> None:
    _, _, work = seed_run
    proc = ldmatrix("show", "c-needs-libcrypt.patchelf.glibc-2.36", "--results", "results/seed/results.jsonl",
                    cwd=work)
    assert proc.returncode == 0, proc.stderr
    assert "missing-library" in proc.stdout
    assert "NIX_PATH=nixpkgs=" in proc.stdout
    assert "libcrypt.so.1" in proc.stdout


def test_the_nixos_root_has_no_loader(seed_run) -> None:
    """The none cell's binary asks for /lib64/ld-linux-x86-64.so.2, which the NixOS-like root lacks."""
    _, results, _ = seed_run
    command = Path(results["c-hello.none.glibc-2.36"]["extra"]["workdir"], "command.sh").read_text()
    assert "/lib64" not in command and "/nix/store" in command


def test_run_with_baseline_exits_nonzero_when_a_cell_changed(seed_run, tmp_path: Path) -> None:
    """The baseline is the seed run's own results with one cell as an older glibc might have given it."""
    _, _, work = seed_run
    baseline = tmp_path / "baseline.jsonl"
    lines = (work / "results" / "seed" / "results.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    for record in records:
        if record.get("cell_id") == "c-hello.patchelf.glibc-2.36":
            record["outcome"], record["evidence"] = "glibc-too-old", "version `GLIBC_2.38' not found"
    baseline.write_text("".join(json.dumps(r) + "\n" for r in records))
    proc = ldmatrix("run", str(REPO / "matrices" / "seed.yaml"), "--out", "again", "-k", "glibc-2.3",
                    "--baseline", str(baseline), "--summary", "summary.md", cwd=tmp_path)
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "0 unexpected" in proc.stdout  # the run itself is as expected: the exit status is the baseline's
    assert "c-hello.patchelf.glibc-2.36: glibc-too-old -> ok    LDMATRIX-CHECK: ok" in proc.stdout
    assert "#### 1 changed outcome" in (tmp_path / "summary.md").read_text()
    same = ldmatrix("run", str(REPO / "matrices" / "seed.yaml"), "--out", "again", "-k", "c-hello glibc-2.36",
                    "--baseline", str(work / "results" / "seed" / "results.jsonl"), cwd=tmp_path)
    assert same.returncode == 0, same.stdout[-3000:]  # cells the baseline has beyond -k are not "disappeared"
    assert "no cell changed" in same.stdout


def test_typo_gives_one_line_with_line_number(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text((REPO / "matrices" / "seed.yaml").read_text().replace("strategy: [none, patchelf,",
                                                                         "strategy: [none, patchelff,"))
    proc = ldmatrix("run", str(bad), cwd=tmp_path)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    assert "bad.yaml:" in lines[0] and "patchelff" in lines[0] and "allowed:" in lines[0]


def test_glibc_bump_facts(tmp_path: Path) -> None:
    """From the glibc matrix: a trixie binary on an older store glibc, and dlopen of an execstack plugin."""
    proc = ldmatrix("run", str(REPO / "matrices" / "glibc.yaml"), "--out", "results", "-k", "LD_LIBRARY_PATH",
                    cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = {r["cell_id"]: r for r in map(json.loads, (tmp_path / "results/glibc/results.jsonl").open())
               if "cell_id" in r}
    hello = results["c-hello-trixie.patchelf+LD_LIBRARY_PATH.glibc-2.31"]
    assert hello["outcome"] == "glibc-too-old" and "GLIBC_2.34" in hello["evidence"]
    assert results["c-dlopen-execstack.patchelf+LD_LIBRARY_PATH.glibc-2.36"]["outcome"] == "ok"
    refused = results["c-dlopen-execstack.patchelf+LD_LIBRARY_PATH.glibc-2.41"]
    assert refused["outcome"] == "error" and "cannot enable executable stack" in refused["evidence"]


def test_every_run_agrees_with_what_the_elf_files_predict_but_nix_ld_2_0_5s_crash(seed_run) -> None:
    """The loader simulation (harness/loader/predict.py) and the real runs tell the same story; the one
    exception is the finding nix-ld 2.0.5 is known for: it crashes before ld.so can report anything."""
    from harness.model import Outcome
    from harness.loader.predict import agrees

    _, results, _ = seed_run
    checked = 0
    for cell_id, r in results.items():
        if r["outcome"] is None or r.get("predicted") is None:
            continue
        checked += 1
        if not agrees(Outcome(r["predicted"]), Outcome(r["outcome"])):
            assert r["outcome"] == "crash" and r["axes"].get("nix_ld") == "2.0.5", (cell_id, r["prediction"],
                                                                                      r["evidence"])
    assert checked > 100


def test_a_release_decides_what_lib64_holds_and_how_a_list_meets_the_base(tmp_path: Path) -> None:
    """matrices/releases.yaml: 23.11 has no /lib64 and replaces the base libraries with a user's list;
    26.05 has stub-ld and adds the list to them (harness/root/release.py, read from nixpkgs' modules)."""
    proc = ldmatrix("run", str(REPO / "matrices" / "releases.yaml"), "--out", "results", "-k", "glibc-2.42",
                    cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = {r["cell_id"]: r for r in map(json.loads, (tmp_path / "results/releases/results.jsonl").open())
               if "cell_id" in r}
    old, new = results["c-hello.none.glibc-2.42.nixos-23.11"], results["c-hello.none.glibc-2.42.nixos-26.05"]
    assert old["outcome"] == new["outcome"] == "missing-interpreter"
    assert "No such file or directory" in old["evidence"]
    assert new["evidence"] == "Could not start dynamically linked executable: /home/user/bin/c-hello"
    assert new["rc"] == 127
    replaced = results["curl.nix-ld-2.0.6.glibc-2.42.nixos-23.11.libs-curl"]
    assert replaced["outcome"] == "missing-library" and "libz.so.1" in replaced["evidence"]
    assert replaced["axes"]["libs_label"] == "[curl]"
    added = results["curl.nix-ld-2.0.6.glibc-2.42.nixos-26.05.libs-curl"]
    assert added["outcome"] == "ok" and added["axes"]["libs_label"] == "default+[curl]"
    forced = results["rg.nix-ld-2.0.6.glibc-2.42.nixos-26.05"]  # lib.mkForce [ ]: libgcc_s from the loader alone
    assert forced["outcome"] == "ok" and forced["axes"]["libs_label"] == "mkForce []"
