"""`ldmatrix guard`: run, compare each glibc build with its baseline, a summary naming the changed cells,
exit 1 on any change; `--bless` writes the baselines. And the workflows that run it, validated."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from harness.results import baseline
from harness.cli import main
from harness.model import Cell, CellResult, Outcome, Strategy

REPO = Path(__file__).resolve().parent.parent


def result(binary: str, strategy: Strategy, outcome: Outcome, nixpkgs: str | None = None) -> CellResult:
    cell = Cell(binary, (strategy,), "2.40" if nixpkgs else "2.36", nixpkgs=nixpkgs)
    return CellResult(cell.id, outcome, "proof of " + outcome.value, Outcome.OK, None, None, 0, 0.25, "sandbox",
                      argv=("/x",), env=(("HOME", "/home/user"),), stdout="out", stderr="err", axes=cell.axes,
                      extra={"workdir": "/tmp/somewhere"})


RUN = [result("c-hello", Strategy.PATCHELF, Outcome.OK), result("c-hello", Strategy.NONE, Outcome.MISSING_INTERPRETER),
       result("c-hello", Strategy.PATCHELF, Outcome.OK, "nixos-24.11")]


def test_baselines_are_split_by_glibc_build_and_lean(tmp_path: Path) -> None:
    pins = {"nixos-24.11": {"rev": "a" * 40, "glibc": "2.40", "nix_ld": "2.0.3", "realised": "yes"}}
    written = baseline.bless(RUN, tmp_path, "seed", "sandbox", pins)
    assert written == [tmp_path / "debian" / "seed.jsonl", tmp_path / "nixos-24.11" / "seed.jsonl"]
    lines = written[1].read_text().splitlines()
    assert json.loads(lines[0])["nixpkgs"] == {"nixos-24.11": pins["nixos-24.11"]}
    record = json.loads(lines[1])
    assert record["cell_id"] == "c-hello.patchelf.nixos-24.11" and record["duration"] == 0.0
    assert not {"stdout", "stderr", "env", "argv", "extra"} & set(record)  # nothing of this machine or this run
    assert baseline.bless(RUN, tmp_path / "again", "seed", "sandbox", pins) and \
        (tmp_path / "again" / "debian" / "seed.jsonl").read_bytes() == written[0].read_bytes()
    checks = baseline.check(RUN, tmp_path, "seed", pins)
    assert [c.clean for c in checks] == [True, True]


def test_a_changed_cell_a_missing_baseline_and_a_moved_pin_are_changes(tmp_path: Path) -> None:
    baseline.bless(RUN[:2], tmp_path, "seed", "sandbox", None)
    baseline.bless(RUN[2:], tmp_path, "seed", "sandbox", {"nixos-24.11": {"rev": "a" * 40, "glibc": "2.40"}})
    tonight = [RUN[0], result("c-hello", Strategy.NONE, Outcome.OK), result("c-hello", Strategy.PATCHELF, Outcome.CRASH,
                                                                            "nixos-24.11"),
               result("c-hello", Strategy.PATCHELF, Outcome.OK, "nixos-unstable")]
    checks = {c.build: c for c in baseline.check(tonight, tmp_path, "seed",
                                                 {"nixos-24.11": {"rev": "b" * 40, "glibc": "2.42"}})}
    assert not checks["debian"].clean and checks["debian"].comparison.changes[0].cell_id == "c-hello.none.glibc-2.36"
    assert checks["nixos-24.11"].moved() == f"rev {'a' * 12} -> {'b' * 12}, glibc 2.40 -> 2.42"
    assert checks["nixos-unstable"].baseline is None and not checks["nixos-unstable"].clean
    from harness.commands.guard import markdown

    text = markdown(list(checks.values()), {"seed": 0})
    assert "| `c-hello.none.glibc-2.36` | missing-interpreter | ok |" in text
    assert "| `c-hello.patchelf.nixos-24.11` | ok | crash |" in text
    assert "No baseline yet" in text and "The pin moved: rev" in text


def test_guard_compares_results_made_elsewhere(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`guard --results DIR`: the merged shards of a fan-out, compared without running anything."""
    from harness.session import result_record

    matrix = tmp_path / "guarded.yaml"
    matrix.write_text(MATRIX)
    pins = {"nixos-24.11": {"rev": "a" * 40, "glibc": "2.40", "nix_ld": "2.0.3", "realised": "yes"}}
    merged = tmp_path / "merged" / "guarded" / "results.jsonl"
    merged.parent.mkdir(parents=True)
    header = {"matrix": str(matrix), "name": "guarded", "runner": "sandbox", "nixpkgs": pins}
    merged.write_text("\n".join(json.dumps(r) for r in [header, *map(result_record, RUN)]) + "\n")
    baselines = tmp_path / "baselines"
    baseline.bless(RUN, baselines, "guarded", "sandbox", pins)
    args = ["guard", str(matrix), "--results", str(tmp_path / "merged"), "--baselines", str(baselines)]
    assert main(args) == 0
    assert "guard: nothing changed (2 baselines)" in capsys.readouterr().out
    baseline.bless(RUN[:1], baselines, "guarded", "sandbox", pins)  # tonight has a cell the baseline lacks
    assert main(args) == 1
    assert "c-hello.none.glibc-2.36" in capsys.readouterr().out
    assert main(["guard", str(matrix), "--results", str(tmp_path / "nowhere")]) == 2


MATRIX = """
name: guarded
binaries:
  c-hello: {reproducer: hello, built_in: bullseye}
  c-needs-libcrypt: {reproducer: needs-libcrypt, built_in: bullseye}
axes:
  strategy: [none, patchelf]
  glibc: ["2.36"]
expect:
  - when: {strategy: none}
    outcome: missing-interpreter
  - when: {binary: c-needs-libcrypt}
    outcome: missing-library
  - outcome: ok
"""


@pytest.mark.slow
def test_guard_against_a_baseline_with_one_cell_changed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The real thing: cells run, blessed, one baseline cell edited: exit 1 and that cell in the summary."""
    matrix = tmp_path / "guarded.yaml"
    matrix.write_text(MATRIX)
    baselines, out = tmp_path / "baselines", tmp_path / "out"
    args = [str(matrix), "--baselines", str(baselines), "--out", str(out), "-q"]
    assert main(["guard", *args, "--bless"]) == 0
    path = baselines / "debian" / "guarded.jsonl"
    summary = tmp_path / "summary.md"
    assert main(["guard", *args, "--summary", str(summary)]) == 0  # the same cells give the same outcomes
    assert ":white_check_mark:" in summary.read_text()
    lines = path.read_text().splitlines()
    edited = [json.loads(line) for line in lines]
    target = next(r for r in edited[1:] if r["cell_id"] == "c-needs-libcrypt.patchelf.glibc-2.36")
    target["outcome"] = "ok"  # as if it had run before
    path.write_text("\n".join(json.dumps(r, sort_keys=True) for r in edited) + "\n")
    capsys.readouterr()
    summary.write_text("")
    assert main(["guard", *args, "--summary", str(summary)]) == 1
    printed = capsys.readouterr().out
    text = summary.read_text()
    assert "c-needs-libcrypt.patchelf.glibc-2.36: ok -> missing-library" in printed
    assert "| `c-needs-libcrypt.patchelf.glibc-2.36` | ok | missing-library |" in text
    assert text.count("| `") == 1  # only that cell


@pytest.mark.slow
def test_the_committed_baselines_are_what_the_matrices_give_today(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """The nightly compares with baselines/debian/: a change in ldmatrix that moves a cell (its id,
    its outcome) shows here first, to be blessed with the change, not discovered by a red night."""
    matrices = sorted(p.stem for p in (REPO / "baselines" / "debian").glob("*.jsonl"))
    assert matrices == ["children", "glibc", "nix-ld-suite", "real-world", "releases", "seed"]
    args = [str(REPO / "matrices" / f"{m}.yaml") for m in matrices]
    status = main(["guard", *args, "--baselines", str(REPO / "baselines"), "--out", str(tmp_path), "-q"])
    assert status == 0, capsys.readouterr().out[-4000:]


def test_guard_refuses_a_matrix_that_is_not_there(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["guard", str(tmp_path / "real-world.yaml"), "--out", str(tmp_path / "o"), "-q"]) == 2
    assert capsys.readouterr().err == f"ldmatrix: {tmp_path / 'real-world.yaml'}: no such matrix\n"


# --------------------------------------------------------------------------- the workflows


WORKFLOWS = sorted((REPO / ".github" / "workflows").glob("*.yml"))


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_workflows_validate_against_the_github_workflow_schema(workflow: Path) -> None:
    import importlib.util
    import sys

    if importlib.util.find_spec("check_jsonschema") is None:
        pytest.fail("check-jsonschema is not installed: it is a test dependency (tox.ini installs it)")
    proc = subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows",
                           str(workflow)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_nightly_guards_every_matrix_on_the_supported_pins() -> None:
    """Planned by ci-matrix (Debian's builds and every supported pin, in shards), run shard by shard,
    merged and guarded in a last job."""
    import yaml

    nightly = yaml.safe_load((REPO / ".github" / "workflows" / "nightly.yml").read_text())
    jobs = nightly["jobs"]
    pins, shard, guard = _steps(jobs["pins"]), jobs["shard"], jobs["guard"]
    plan = next(s["run"] for s in jobs["pins"]["steps"] if "ci-matrix" in s.get("run", ""))
    for needed in ("matrices/seed.yaml", "matrices/glibc.yaml", "matrices/real-world.yaml", "--nixpkgs supported",
                   "--shards ", "--pins pins.json", "shards="):
        assert needed in plan
    assert jobs["pins"]["outputs"]["shards"] == "${{ steps.plan.outputs.shards }}"
    assert "pins update --supported" in pins
    assert shard["needs"] == "pins" and shard["strategy"]["matrix"] == "${{ fromJSON(needs.pins.outputs.shards) }}"
    assert shard["strategy"]["fail-fast"] is False
    run = next(s["run"] for s in shard["steps"] if "--shard" in s.get("run", ""))
    assert 'ldmatrix run "$m" --shard "$SHARD" "${pin[@]}"' in run and '--nixpkgs "$NIXPKGS" -k "$NIXPKGS"' in run
    assert "'name': '${{ matrix.artifact }}'" in _steps(shard)
    assert guard["needs"] == ["pins", "shard"] and "!cancelled()" in guard["if"]
    steps = _steps(guard)
    assert "'pattern': 'results-*'" in steps
    merge_and_guard = next(s["run"] for s in guard["steps"] if "merge" in s.get("run", ""))
    assert "for m in seed glibc real-world" in merge_and_guard
    assert 'harness merge shards/*/"$m"/results.jsonl --out merged' in merge_and_guard
    for needed in ("harness guard matrices/seed.yaml matrices/glibc.yaml matrices/real-world.yaml", "--results merged",
                   "--baselines baselines", '--summary "$GITHUB_STEP_SUMMARY"'):
        assert needed in merge_and_guard
    refresh = yaml.safe_load((REPO / ".github" / "workflows" / "refresh-baselines.yml").read_text())
    triggers = refresh.get(True, refresh.get("on"))  # YAML 1.1 reads the key `on` as true
    assert "workflow_dispatch" in triggers
    refresh_steps = [s for job in refresh["jobs"].values() for s in job["steps"]]
    assert any("--bless" in s.get("run", "") for s in refresh_steps)
    assert any("gh pr create" in s.get("run", "") for s in refresh_steps)  # GitHub's own CLI, no third-party action


def test_the_nightly_matrix_job_runs_cells_in_parallel() -> None:
    import yaml

    nightly = yaml.safe_load((REPO / ".github" / "workflows" / "nightly.yml").read_text())
    runs = [s.get("run", "") for s in nightly["jobs"]["matrix"]["steps"] if "tox -e matrix --" in s.get("run", "")]
    assert runs and all(" -n auto " in r for r in runs)


def test_every_third_party_action_is_pinned_by_its_commit() -> None:
    """A tag can be moved to other code; a commit cannot. The tag stays in a comment for people."""
    import re

    pattern = re.compile(r"^\s*(?:-\s*)?uses:\s*(\S+?)@(\S+)(.*)$")
    seen = 0
    for workflow in WORKFLOWS:
        for number, line in enumerate(workflow.read_text().splitlines(), start=1):
            if "uses:" not in line or line.strip().startswith("#"):
                continue
            found = pattern.match(line)
            assert found, f"{workflow.name}:{number}: {line.strip()}"
            action, ref, comment = found.groups()
            if action.startswith("./"):
                continue
            seen += 1
            assert re.fullmatch(r"[0-9a-f]{40}", ref), f"{workflow.name}:{number}: {action}@{ref} is not a commit"
            assert re.fullmatch(r"\s+# v\d[\w.]*", comment), f"{workflow.name}:{number}: no '# vX.Y.Z' tag comment"
    assert seen >= 5


def _steps(job: dict) -> str:
    return "\n".join(f"{s.get('uses', '')} {s.get('run', '')} {s.get('with', '')} {s.get('env', '')}"
                     for s in job["steps"])


def test_the_nightly_parity_job_boots_nixos_with_kvm_on_every_supported_pin() -> None:
    import yaml

    nightly = yaml.safe_load((REPO / ".github" / "workflows" / "nightly.yml").read_text())
    pins, parity = nightly["jobs"]["pins"], nightly["jobs"]["parity"]
    assert "pins update --supported" in _steps(pins) and "'GITHUB_TOKEN': '${{ github.token }}'" in _steps(pins)
    assert parity["needs"] == "pins" and "fromJSON(needs.pins.outputs.supported)" in parity["strategy"]["matrix"]["pin"]
    steps = _steps(parity)
    assert 'KERNEL=="kvm", GROUP="kvm", MODE="0666", OPTIONS+="static_node=kvm"' in steps  # GitHub's udev rule
    assert "udevadm trigger --name-match=kvm" in steps
    assert "extra-system-features = kvm nixos-test" in steps
    run = next(s["run"] for s in parity["steps"] if "parity" in s.get("run", ""))
    assert "for m in seed real-world" in run
    assert run.count("ldmatrix run ") == 3  # Debian's builds, the pin's store paths, the pin's NixOS
    assert '--nixpkgs "$PIN" -k "$PIN" --runner nixos-vm' in run
    assert 'ldmatrix parity "$OUT/debian/$m/results.jsonl" "$OUT/sandbox/$m/results.jsonl"' in run
    assert '--summary "$GITHUB_STEP_SUMMARY"' in run


def test_ci_installs_the_browser_and_keeps_the_rendered_grids() -> None:
    import yaml

    assert " chromium " in (REPO / ".ci" / "run").read_text().replace("\\\n", " ")
    ci = yaml.safe_load((REPO / ".github" / "workflows" / "ci.yml").read_text())
    upload = next(s for s in ci["jobs"]["tests"]["steps"] if "upload-artifact" in s.get("uses", ""))
    assert upload["with"]["path"] == ".ldmatrix/artifacts" and upload["with"]["include-hidden-files"] is True
    assert upload["if"] == "always()"
