"""The generated NixOS VM driver script, executed line for line against a stand-in of the driver's
``Machine`` (tests/vm_standin.py) that runs each command in a bubblewrap sandbox.

The cells are real: prepared by the session's own code on a pin realised with Nix in a local store
(tests/nixpkgs_standin.py, whose tree says it is a NixOS of 24.05 or later: stub-ld, base libraries
added in config), with real nix-ld builds. Every path of the script runs: machines with and without
nix-ld and with a nix-ld build as programs.nix-ld.package, stub-ld where the release has it and
nothing at /lib64 where it has not, a read-only store, a cell whose setup fails, a program that
exits 124, one that outlives its time limit, a machine that does not boot and one that hangs while
booting; each cell gets its own status and none stops the others.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pytest

from harness.cache import Cache
from harness.model import CommandResult, NotRun, PreparedCell, StorePath
from harness.runners.nixgen import host_spec, parse_results, plan_vm, spec
from harness.outcome import classify
from harness.progress import NullProgress
from harness.provision.nixbase32 import digest
from harness.root.release import STUB_LD_FIRST_LINE
from harness.runners.vm_script import FINISHED, RESULTS_FILE, driver_script

import nixpkgs_standin
import vm_standin

pytestmark = pytest.mark.slow

MATRIX = """
name: vm-script
binaries:
  c-hello: {reproducer: hello, built_in: bullseye}
  c-envprint: {reproducer: envprint, built_in: bullseye}
axes:
  strategy: [none, patchelf, nix-ld]
  glibc: ["2.36"]
  nix_ld: ["2.0.5", "2.0.6"]
  launch: [direct, bash-login]
  libs: [none, default]
nix_ld_sources:
  "2.0.5": {url: "https://github.com/nix-community/nix-ld/archive/refs/tags/2.0.5.tar.gz",
            hash: "sha256-7ev9V128h7ZWi9JsFje6X1OzE5maJfmBMkxohxQysOA="}
exclude:
  - {binary: c-envprint, launch: direct}
  - {binary: c-envprint, strategy: [none, patchelf]}
  - {binary: c-envprint, nix_ld: "2.0.5"}
  - {binary: c-hello, launch: bash-login}
  - {libs: default, uses: {not: nix-ld}}
  - {libs: none, uses: nix-ld}
expect:
  - when: {strategy: none}
    outcome: missing-interpreter
  - outcome: ok
"""


@dataclasses.dataclass(frozen=True)
class Prepared:
    cells: list[PreparedCell]
    column: object  # the pin's PinColumn
    matrix: object  # the Matrix the cells are of


@pytest.fixture(scope="module")
def vm_cells(standin_pins_file: Path, local_nix_store: Path, nix_ld_archives: Path,
             tmp_path_factory: pytest.TempPathFactory) -> Prepared:
    if os.geteuid() != 0:
        pytest.skip("the VM stand-in runs root's shell (su to the cell user): run as root, as .ci/run does")
    from harness import nixld, nixpkgs
    from harness import matrix as matrix_mod
    from harness.prepare import prepare
    from harness.session import RunOptions, provision_all, release_of

    cache = Cache.default()
    pins = nixpkgs.supply([nixpkgs_standin.NAME], cache, NullProgress(), pins_file=standin_pins_file)
    column = pins.columns[nixpkgs_standin.NAME]
    assert column.build is not None, column.reason
    path = tmp_path_factory.mktemp("matrix") / "vm-script.yaml"
    path.write_text(MATRIX)
    matrix = matrix_mod.load(path, nixpkgs=pins.glibc_columns())
    cells = tuple(c for c in matrix.cells if c.nixpkgs == nixpkgs_standin.NAME)
    options = RunOptions(nix_ld=nixld.Supply(archives=(nix_ld_archives,)), cache=cache, nixpkgs=pins)
    art = provision_all(matrix, cells, options, NullProgress())
    work = tmp_path_factory.mktemp("cells")
    prepared = []
    for cell in cells:
        spec_ = matrix.binaries[cell.binary]
        got = prepare(cell, spec_, None, art, work / cell.id, matrix.timeout, home=work / cell.id / "home",
                      release=release_of(matrix, cell, art.glibc))
        assert not isinstance(got, NotRun), got
        prepared.append(got)
    return Prepared(prepared, column, matrix)


def _variant(base: PreparedCell, binary: str, **changes) -> PreparedCell:
    return dataclasses.replace(base, cell=dataclasses.replace(base.cell, binary=binary), **changes)


def _run(vm_cells: Prepared, cells: list[PreparedCell], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
         local_nix_store: Path, stub_ld: Path, fail_start: frozenset[str] = frozenset(),
         hang_boot: frozenset[str] = frozenset(), boot_timeout: int = 60, release: dict | None = None):
    build = vm_cells.column.build
    plan = plan_vm(cells)
    store_dir = local_nix_store / "nix" / "store"
    rendered = host_spec(spec(plan, store_dir, boot_timeout=boot_timeout))
    if release is not None:  # another release of the same pin, to see what its NixOS has at /lib64
        rendered["pin"]["release"] = release
    spec_path = tmp_path / "spec.json"
    spec_path.write_text(json.dumps(rendered))
    from harness.provision.tools import provision_bash

    bash = provision_bash(Cache.default(), NullProgress())
    stub = StorePath("stub-ld", "", digest("stub-ld", stub_ld.read_bytes().hex()), stub_ld)
    machines = vm_standin.machines_for(rendered, tmp_path / "machines", busybox=build.glibc.shell, bash=bash,
                                       glibc=build.glibc, pin_nix_ld=build.nix_ld, cache=Cache.default(),
                                       stub_ld=stub, fail_start=fail_start, hang_boot=hang_boot)
    out = tmp_path / "out"
    out.mkdir()
    monkeypatch.setenv("out", str(out))
    try:
        vm_standin.run_script(driver_script(str(spec_path), [m.name for m in plan.machines]), machines)
    finally:
        for machine in machines:  # the machines' consoles, for a failure's report
            print(f"--- {machine.name}\n" + "".join(machine.console))
        vm_standin.discard(machines)
    return plan, machines, parse_results((out / RESULTS_FILE).read_text())


def test_the_driver_script_runs_every_cell_with_its_own_status(vm_cells: Prepared, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch,
                                                                local_nix_store: Path, stub_ld: Path) -> None:
    by_id = {c.cell.id: c for c in vm_cells.cells}
    pin = nixpkgs_standin.NAME
    patched = by_id[f"c-hello.patchelf.{pin}"]
    busybox = f"{patched.root.store_paths[3].store_path}/bin/busybox"  # the pin's busybox (GlibcSet.shell)
    assert "busybox" in busybox
    broken = _variant(patched, "setup-fails", mounts=(*patched.mounts[:1], dataclasses.replace(
        patched.mounts[1], host=Path("/nonexistent/ldmatrix-binary"))))
    exits_124 = _variant(patched, "exits-124", argv=(busybox, "sh", "-c", "echo before; exit 124"))
    sleeps = _variant(patched, "sleeps", argv=(busybox, "sleep", "60"), timeout=2.0)
    cells = [broken, exits_124, sleeps, *vm_cells.cells]
    plan, machines, results = _run(vm_cells, cells, tmp_path, monkeypatch, local_nix_store, stub_ld)
    assert vm_cells.column.build.glibc.nixpkgs.release.stub_ld  # read from the stand-in's tree by pins update

    assert [m.name for m in plan.machines] == ["nixos_without_nix_ld", "nixos_with_nix_ld_2_0_5",
                                               "nixos_with_its_nix_ld"]
    assert set(results) == {c.cell.id for c in cells}  # every cell has its own result
    failed = results[broken.cell.id]
    assert isinstance(failed, NotRun) and failed.error and "failed (exit code 1)" in failed.reason
    verdicts = {cell_id: classify(r) for cell_id, r in results.items() if isinstance(r, CommandResult)}
    got124 = results[exits_124.cell.id]
    assert isinstance(got124, CommandResult) and got124.rc == 124 and not got124.timed_out
    assert got124.stdout == "before\n" and verdicts[exits_124.cell.id].outcome.value == "error"
    late = results[sleeps.cell.id]
    assert isinstance(late, CommandResult) and late.timed_out and late.rc == 124
    assert verdicts[sleeps.cell.id].outcome.value == "timeout"
    outcomes = {c.cell.id: verdicts[c.cell.id].outcome.value for c in vm_cells.cells}
    assert verdicts[f"c-hello.none.{pin}"].evidence == f"{STUB_LD_FIRST_LINE}/home/user/bin/c-hello"  # stub-ld said it
    assert outcomes == {
        f"c-hello.none.{pin}": "missing-interpreter",  # a 24.05+ machine without nix-ld: stub-ld at /lib64
        f"c-hello.patchelf.{pin}": "ok",
        f"c-hello.nix-ld-2.0.5.{pin}.libs-default": "ok",  # programs.nix-ld.package: the 2.0.5 build (2.36's ld.so: no crash)
        f"c-hello.nix-ld-2.0.6.{pin}.libs-default": "ok",  # the pin's own nix-ld
        f"c-envprint.nix-ld-2.0.6.{pin}.bash-login.libs-default": "ok",  # the machine's bash and /etc/profile
    }, {i: (v.outcome.value, v.evidence) for i, v in verdicts.items()}
    for machine in machines:
        calls = [name for name, _ in machine.log]
        assert calls[:2] == ["start", "wait_for_unit"] and calls[-1] == "shutdown"
        runs = [arg for name, arg in machine.log if name == "execute" and FINISHED in arg[0]]
        assert runs and all(timeout in (20, 2) for _, timeout in runs)  # each cell's limit, by the driver
        assert all("echo $? >" not in command for command, _ in runs)


def test_a_machine_that_does_not_boot_fails_only_its_cells(vm_cells: Prepared, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch,
                                                            local_nix_store: Path, stub_ld: Path) -> None:
    cells = [c for c in vm_cells.cells if c.cell.id.startswith("c-hello.")]
    plan, _, results = _run(vm_cells, cells, tmp_path, monkeypatch, local_nix_store, stub_ld,
                            fail_start=frozenset({"nixos_with_its_nix_ld"}))
    down = [c.cell.id for m in plan.machines if m.name == "nixos_with_its_nix_ld" for c in m.cells]
    assert down
    for cell_id, result in results.items():
        if cell_id in down:
            assert isinstance(result, NotRun) and "nixos_with_its_nix_ld did not start" in result.reason
        else:
            assert isinstance(result, CommandResult), (cell_id, result)
    assert set(results) == {c.cell.id for c in cells}


def test_a_machine_that_hangs_while_booting_is_stopped_and_the_others_run(vm_cells: Prepared, tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch,
                                                                          local_nix_store: Path,
                                                                          stub_ld: Path) -> None:
    """The driver waits for a booting machine without a bound of its own: the script gives each boot
    its limit, crashes a machine past it, reports its cells as errors saying so, and boots the next."""
    import time

    cells = [c for c in vm_cells.cells if c.cell.id.startswith("c-hello.")]
    hung = "nixos_without_nix_ld"  # the first to boot: the others come after it
    started = time.monotonic()
    plan, machines, results = _run(vm_cells, cells, tmp_path, monkeypatch, local_nix_store, stub_ld,
                                   hang_boot=frozenset({hung}), boot_timeout=3)
    assert time.monotonic() - started < vm_standin.HANG_LIMIT  # stopped by the script, not by the stand-in
    assert plan.machines[0].name == hung
    down = {c.cell.id for m in plan.machines if m.name == hung for c in m.cells}
    assert down and set(results) == {c.cell.id for c in cells}
    for cell_id, result in results.items():
        if cell_id in down:
            assert isinstance(result, NotRun) and result.error, (cell_id, result)
            assert (f"{hung} did not start: TimeoutError: booting took longer than 3s, so the machine was stopped"
                    in result.reason), result.reason
        else:
            assert isinstance(result, CommandResult) and classify(result).outcome.value == "ok", (cell_id, result)
    calls = {m.name: [name for name, _ in m.log] for m in machines}
    assert calls[hung] == ["start", "wait_for_unit", "crash"]  # crashed; never shut down, never ran a cell
    assert all(names[-1] == "shutdown" for name, names in calls.items() if name != hung)


def test_before_24_05_a_machine_without_nix_ld_has_no_loader_at_all(vm_cells: Prepared, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch,
                                                                    local_nix_store: Path, stub_ld: Path) -> None:
    """The same cell on a release without stub-ld (23.11): the kernel finds no /lib64/ld-linux-x86-64.so.2."""
    pin = nixpkgs_standin.NAME
    cells = [c for c in vm_cells.cells if c.cell.id == f"c-hello.none.{pin}"]
    _, machines, results = _run(vm_cells, cells, tmp_path, monkeypatch, local_nix_store, stub_ld,
                                release={"version": "23.11", "stub_ld": False, "nix_ld_libraries": "replace"})
    result = results[cells[0].cell.id]
    assert isinstance(result, CommandResult) and STUB_LD_FIRST_LINE not in result.stderr
    verdict = classify(result)
    assert verdict.outcome.value == "missing-interpreter" and "No such file or directory" in verdict.evidence


def test_the_stand_ins_store_is_read_only(vm_cells: Prepared, tmp_path: Path, local_nix_store: Path,
                                          stub_ld: Path) -> None:
    """As in a NixOS VM, root cannot write into /nix/store: what the old script did (cp into the store) fails."""
    build = vm_cells.column.build
    from harness.provision.tools import provision_bash

    rendered = host_spec(spec(plan_vm(vm_cells.cells[:1]), local_nix_store / "nix" / "store"))
    stub = StorePath("stub-ld", "", digest("stub-ld"), stub_ld)
    machine = vm_standin.machines_for(rendered, tmp_path / "m", busybox=build.glibc.shell,
                                      bash=provision_bash(Cache.default(), NullProgress()), glibc=build.glibc,
                                      pin_nix_ld=build.nix_ld, cache=Cache.default(), stub_ld=stub)[0]
    try:
        machine.start()
        machine.succeed("echo yes > /home/ok")  # root writes where NixOS lets it
        status, said = machine.execute("cp -a /bin/sh /nix/store/x-copied 2>&1")
        assert status != 0 and "Read-only file system" in said, said
        assert machine.succeed("cat /home/ok") == "yes\n"
    finally:
        vm_standin.discard([machine])


def test_the_pytest_plugin_hands_the_vm_runner_a_pins_cells_at_once(vm_cells: Prepared, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch,
                                                                   pytester: pytest.Pytester,
                                                                   local_nix_store: Path, stub_ld: Path) -> None:
    """Under pytest (tox -e matrix) as under ``ldmatrix run``: one VM test per pin, each machine booted
    once for all of the pin's cells, not once per cell; each cell still its own test and result."""
    from harness import pytest_plugin, session
    from harness.prepare import Provisioned
    from harness.runners.nixos_vm import NixosVmRunner

    by_cell = {c.cell: c for c in vm_cells.cells}
    vm_tests: list[list[str]] = []  # the cells of each VM test the runner ran
    boots: list[str] = []  # a machine's name each time it was started

    class StandinVm(NixosVmRunner):
        def unavailable(self) -> str | None:
            return None

        def _run_vm(self, cells):
            work = tmp_path / f"vm-test-{len(vm_tests)}"
            work.mkdir()
            _, machines, results = _run(vm_cells, list(cells), work, monkeypatch, local_nix_store, stub_ld)
            vm_tests.append([c.cell.id for c in cells])
            boots.extend(m.name for m in machines for name, _ in m.log if name == "start")
            return [results[c.cell.id] for c in cells]

    monkeypatch.setattr(pytest_plugin, "_matrix", lambda config: vm_cells.matrix)
    monkeypatch.setattr(session, "provision_all", lambda *args: Provisioned(glibc={}, roots={}, binaries={},
                                                                            nix_ld={}))
    monkeypatch.setattr(session, "prepare", lambda cell, *args, **kwargs: by_cell[cell])
    monkeypatch.setattr(session, "get_runner", lambda name: StandinVm())
    pytester.makepyfile(test_cells="""
        from harness.pytest_plugin import assert_expected

        def test_cell(ldmatrix_result):
            assert_expected(ldmatrix_result)
    """)
    out = tmp_path / "results"
    got = pytester.runpytest_inprocess("-p", "harness.pytest_plugin", "-p", "no:cacheprovider", "--ldmatrix",
                                       "vm-script.yaml", "--ldmatrix-runner", "nixos-vm", "--ldmatrix-out", str(out),
                                       "-k", nixpkgs_standin.NAME)  # the pin's cells (Debian's are not a VM's)
    got.assert_outcomes(passed=len(vm_cells.cells))
    assert [sorted(ids) for ids in vm_tests] == [sorted(by_cell[c].cell.id for c in by_cell)]  # one VM test
    assert sorted(boots) == sorted(m.name for m in plan_vm(vm_cells.cells).machines)  # each machine once
    lines = (out / "vm-script" / "results.jsonl").read_text().splitlines()
    assert len(lines) == 1 + len(vm_cells.cells)  # the header, then each cell once
