"""The nixos-vm runner: the Nix it generates (escaping, machines, nix-ld, launchers), parse-checked and
evaluated, its results read back, its skip and error reasons, and the session batching cells to it.

The generated driver script itself runs end to end against a stand-in of the driver's Machine in
tests/test_vm_script.py.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from harness.errors import LdmatrixError
from harness.model import (
    Cell, CommandResult, InstalledBinary, Link, Mount, NixpkgsSource, NotRun, Outcome, PreparedCell, RootKind,
    RootSpec, StorePath, Strategy,
)
from harness.runners.nixgen import (
    HostPath, InStore, NixBuilt, generate_test, host_spec, nix_string, parse_results, plan_vm, spec, spec_timeout,
)
from harness.root.release import RELEASES
from harness.runners import get_runner
from harness.runners import nixos_vm
from harness.runners.nixos_vm import NixosVmRunner
from harness.runners.vm_script import BUILD_ALLOWANCE, FINISHED, RESULT_TAG, driver_script

NASTY = 'a "quoted" ${HOME} $${x} $ \\ back\\slash\nnew line\ttab \'single\' ``x'
PIN_NIX_LD = "/nix/store/" + "p" * 32 + "-nix-ld-2.0.3"
PIN = NixpkgsSource("nixos-24.11", "https://github.com/NixOS/nixpkgs/archive/x.tar.gz", "sha256-" + "A" * 43 + "=",
                    "x" * 40, PIN_NIX_LD, RELEASES["24.11"])


def _file(path: Path) -> str:
    """A stand-in binary on the host (the session checks that what a cell ran is what was prepared)."""
    import hashlib

    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        path.write_bytes(path.name.encode())
    return hashlib.sha256(path.read_bytes()).hexdigest()


def prepared(tmp_path: Path, *, name: str = "c-hello", nix_ld: str | None = "pin", argv: tuple[str, ...] = (),
             env: tuple[tuple[str, str], ...] = (), kind: RootKind = RootKind.NIXOS, pin: NixpkgsSource | None = PIN,
             launcher: bool = False) -> PreparedCell:
    store = tmp_path / "nix" / "store"
    glibc = StorePath("glibc", "2.40-66", "a" * 32, store / ("a" * 32 + "-glibc-2.40-66"))  # in the Nix store
    debian_bash = StorePath("bash", "5.2.15", "c" * 32, tmp_path / "cache" / ("c" * 32 + "-bash-5.2.15"))
    build = StorePath("nix-ld", "2.0.6", "b" * 32, tmp_path / "cache" / ("b" * 32 + "-nix-ld-2.0.6"))
    own = StorePath("nix-ld", "2.0.3", "p" * 32, store / ("p" * 32 + "-nix-ld-2.0.3"))
    chosen = {"pin": own, "build": build, None: None}[nix_ld]
    strategy = (Strategy.NIX_LD,) if chosen else (Strategy.PATCHELF,)
    cell = Cell(name, strategy, "2.40", chosen.version if chosen else None, nixpkgs=pin.name if pin else None)
    root = RootSpec(kind, "d" * 16, store_paths=(glibc,), links=(Link("/bin/sh", "/nix/store/x/bin/busybox"),))
    home = tmp_path / "home"
    binaries = [InstalledBinary("/home/user/bin/c-envprint", tmp_path / "patched" / "c-envprint",
                                _file(tmp_path / "patched" / "c-envprint"), "2" * 64, None, (), "envprint")]
    if launcher:
        binaries.insert(0, InstalledBinary("/home/user/bin/rust-spawn-env", tmp_path / "patched" / "spawn-env",
                                           _file(tmp_path / "patched" / "spawn-env"), "4" * 64, glibc.lib_dir, (),
                                           "spawn-env"))
    mounts = [Mount(home, "/home/user", writable=True), *(Mount(b.host_path, b.path) for b in binaries),
              Mount(debian_bash.host_path, debian_bash.store_path), Mount(tmp_path / "overlay" / "lib64", "/lib64")]
    if chosen:
        mounts.append(Mount(chosen.host_path, chosen.store_path))
    return PreparedCell(cell, root, tuple(mounts), argv or tuple(b.path for b in binaries),
                        env or (("HOME", "/home/user"),), "/home/user", 20.0, tmp_path / "work" / name,
                        tuple(binaries), nix_ld=chosen, nixpkgs=pin)


def nix_env() -> dict[str, str]:
    # --parse and pure --eval need no store and no daemon; keep whatever NIX_* the host set
    # from sending them to a daemon or remote store.
    env = {k: v for k, v in os.environ.items() if k != "NIX_REMOTE"}
    env.setdefault("NIX_PATH", "")
    return env


def nix_eval_json(expr: str) -> object:
    exe = shutil.which("nix-instantiate")
    if exe is None:
        pytest.skip("nix-instantiate not found: apt-get install -y nix-bin")
    proc = subprocess.run([exe, "--eval", "--strict", "--json", "-E", expr], capture_output=True, text=True,
                          env=nix_env())
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


# --------------------------------------------------------------------------- nix_string


@pytest.mark.parametrize("text", ["", "plain", '"', "\\", "${x}", "$${x}", "$", "a$", "\n", "\r\t", NASTY,
                                  "ünïcødé ☃", "${", "\\${x}", "''${x}"])
def test_nix_string_round_trips(text: str) -> None:
    assert nix_eval_json(nix_string(text)) == text


def test_nix_string_escapes_without_nix() -> None:
    assert nix_string('a"b') == '"a\\"b"'
    assert nix_string("${x}") == '"\\${x}"'
    assert nix_string("a\\b") == '"a\\\\b"'
    assert nix_string("a\nb") == '"a\\nb"'
    with pytest.raises(ValueError):
        nix_string("a\0b")


# --------------------------------------------------------------------------- the plan and the test


def test_one_test_per_pin_one_machine_per_nix_ld(tmp_path: Path) -> None:
    """Cells without nix-ld get a machine without it (NixOS's own /lib64: stub-ld from 24.05 on); the pin's
    own nix-ld is NixOS's default; a nix-ld build the cell names becomes programs.nix-ld.package."""
    cells = [prepared(tmp_path, name="a", nix_ld=None), prepared(tmp_path, name="b", nix_ld="pin"),
             prepared(tmp_path, name="c", nix_ld="build"), prepared(tmp_path, name="d", nix_ld=None)]
    plan = plan_vm(cells)
    assert [(m.name, [c.cell.binary for c in m.cells]) for m in plan.machines] == [
        ("nixos_without_nix_ld", ["a", "d"]), ("nixos_with_its_nix_ld", ["b"]), ("nixos_with_nix_ld_2_0_6", ["c"])]
    text = generate_test(plan, tmp_path / "nix" / "store")
    assert text.count("pkgs.testers.runNixOSTest") == 1
    assert "nixos_without_nix_ld = { pkgs, lib, ... }: { imports = [ base ]; programs.nix-ld.enable = false; };" in text
    assert "nixos_with_its_nix_ld = { pkgs, lib, ... }: { imports = [ base ]; programs.nix-ld.enable = true; };" in text
    override = text[text.index("nixos_with_nix_ld_2_0_6 = "):]
    assert "programs.nix-ld.package = pkgs.runCommand \"nix-ld-2.0.6\"" in override
    assert "lib/tmpfiles.d/nix-ld.conf" in override  # NixOS links /lib64 from the package's tmpfiles rule
    assert f'builtins.fetchTarball {{ url = "{PIN.url}"; sha256 = "{PIN.sha256}"; }}' in text
    # the pin's own store paths are the test's inputs; one ldmatrix made from Debian's packages is never
    # put in the VM (its store is read-only and its own; nothing the cells name needs it here)
    assert f'builtins.storePath "/nix/store/{"a" * 32}-glibc-2.40-66"' in text
    assert f'{tmp_path}/cache/{"c" * 32}-bash-5.2.15' not in text and "virtualisation.writableStore" not in text
    value = spec(plan, tmp_path / "nix" / "store")
    assert "/lib64" not in json.dumps(host_spec(value))  # NixOS's own
    assert all(cell["missing"] == "" for machine in value["machines"] for cell in machine["cells"])


def test_a_library_set_other_than_nixos_default_is_the_machines_programs_nix_ld_libraries(tmp_path: Path) -> None:
    """libs: default leaves NixOS's own default; none and a list set programs.nix-ld.libraries, one machine each."""
    import dataclasses

    base = prepared(tmp_path, name="a", nix_ld="pin")
    cells = [base, dataclasses.replace(base, nix_ld_libraries=()),
             dataclasses.replace(base, nix_ld_libraries=("zlib", "stdenv.cc.cc")),
             dataclasses.replace(prepared(tmp_path, name="b", nix_ld=None), nix_ld_libraries=())]
    plan = plan_vm(cells)
    assert [m.name for m in plan.machines] == ["nixos_with_its_nix_ld", "nixos_with_its_nix_ld_libs_none",
                                               "nixos_with_its_nix_ld_libs_zlib_stdenv_cc_cc", "nixos_without_nix_ld"]
    text = generate_test(plan, tmp_path / "nix" / "store")
    lines = {line.split(" = ", 1)[0].strip(): line for line in text.splitlines() if "imports = [ base ]" in line}
    assert "programs.nix-ld.libraries" not in lines["nixos_with_its_nix_ld"]
    # none is forced: from 24.05 on the module adds its base list in config, and [ ] alone merges with it
    assert "programs.nix-ld.libraries = lib.mkForce [ ];" in lines["nixos_with_its_nix_ld_libs_none"]
    assert "programs.nix-ld.libraries = [ pkgs.zlib pkgs.stdenv.cc.cc ];" in lines[
        "nixos_with_its_nix_ld_libs_zlib_stdenv_cc_cc"]
    assert "programs.nix-ld.libraries" not in lines["nixos_without_nix_ld"]  # no nix-ld: nothing to offer


def test_a_cell_naming_a_store_path_made_from_debian_is_an_error_not_a_copy(tmp_path: Path) -> None:
    """The VM's store is read-only and the pin's: a cell whose command, environment, interpreter or RUNPATH
    names a store path ldmatrix made from Debian's packages cannot run there, and says so."""
    debian_bash = f"/nix/store/{'c' * 32}-bash-5.2.15"
    cells = [prepared(tmp_path, name="plain", nix_ld=None),
             prepared(tmp_path, name="needs-bash", nix_ld=None, argv=(f"{debian_bash}/bin/bash", "-c", "true")),
             prepared(tmp_path, name="env-bash", nix_ld=None, env=(("PATH", f"/run/wrappers/bin:{debian_bash}/bin"),))]
    value = spec(plan_vm(cells), tmp_path / "nix" / "store")
    missing = {cell["id"].split(".")[0]: cell["missing"] for cell in value["machines"][0]["cells"]}
    assert missing["plain"] == ""
    for name in ("needs-bash", "env-bash"):
        assert missing[name].startswith(f"it needs {debian_bash}, which ldmatrix made from Debian's packages")
        assert "the sandbox and docker runners run this cell" in missing[name]
    assert "copies" not in value and debian_bash not in json.dumps(value["requires"], default=str)


def test_the_runners_limit_is_the_tests_global_timeout_and_the_build(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """globalTimeout covers every machine's boot and shutdown limits and every cell's; nix-build gets that
    plus the time to fetch and build, so the driver, not the runner, is what stops a hung test."""
    import re

    cells = [prepared(tmp_path, name="a", nix_ld=None), prepared(tmp_path, name="b", nix_ld="pin")]
    runner = NixosVmRunner(check_network=False)
    runner.nix_build = _fake_nix_build(tmp_path, "exit 1")
    seen: dict = {}
    real_run = subprocess.run

    def run(argv, **kwargs):
        seen.update(argv=argv, timeout=kwargs.get("timeout"))
        return real_run(argv, **kwargs)

    monkeypatch.setattr(nixos_vm.subprocess, "run", run)
    runner.run_batch(cells)
    text = Path(seen["argv"][-3]).read_text()
    written = int(re.search(r"globalTimeout = (\d+);", text).group(1))
    value = spec(plan_vm(cells), tmp_path / "nix" / "store")
    assert written == spec_timeout(value) >= 2 * value["boot_timeout"] + 2 * 20
    assert seen["timeout"] == BUILD_ALLOWANCE + written


def test_cells_of_another_pin_or_root_are_refused(tmp_path: Path) -> None:
    other = NixpkgsSource("nixos-25.05", PIN.url, PIN.sha256, "y" * 40)
    with pytest.raises(LdmatrixError, match="one nixpkgs pin"):
        plan_vm([prepared(tmp_path), prepared(tmp_path, pin=other)])
    with pytest.raises(LdmatrixError, match="NixOS cells only"):
        plan_vm([prepared(tmp_path, kind=RootKind.FHS)])
    with pytest.raises(LdmatrixError, match="env -i"):
        generate_test(plan_vm([prepared(tmp_path, env=(("A=B", "x"),))]))


def test_rust_launchers_are_built_with_the_pins_rustc(tmp_path: Path) -> None:
    text = generate_test(plan_vm([prepared(tmp_path, name="rust-spawn-env", launcher=True)]))
    assert 'pkgs.runCommandCC "ldmatrix-spawn-env" { nativeBuildInputs = [ pkgs.rustc ]; }' in text
    assert "rustc --edition 2018 -C opt-level=2 -o $out/bin/spawn-env ${rustRepro}/src/bin/spawn_env.rs" in text
    assert '"src" = "${launcher' in text and '}/bin/spawn-env";' in text
    # the foreign child is the Debian build
    assert f'path = /. + "{tmp_path}/patched/c-envprint"' in text


def test_generated_text_parses(tmp_path: Path) -> None:
    exe = shutil.which("nix-instantiate")
    if exe is None:
        pytest.skip("nix-instantiate not found: apt-get install -y nix-bin")
    cells = [prepared(tmp_path, name="x", argv=("/home/user/bin/x", NASTY), env=(("K", NASTY), ("L", "2"))),
             prepared(tmp_path, name="rust-spawn-env", nix_ld=None, launcher=True),
             prepared(tmp_path, name="y", nix_ld="build", argv=("/run/current-system/sw/bin/python3", "-c", "1"))]
    path = tmp_path / "test.nix"
    path.write_text(generate_test(plan_vm(cells), tmp_path / "nix" / "store"))
    proc = subprocess.run([exe, "--parse", str(path)], capture_output=True, text=True, env=nix_env())
    assert proc.returncode == 0, proc.stderr
    assert "environment.systemPackages = [ pkgs.python3 ];" in path.read_text()  # the VM's own python3


def test_the_spec_nix_builds_is_the_spec_the_stand_in_runs(tmp_path: Path) -> None:
    """The spec as Nix (store paths interpolated) evaluates to the JSON a stand-in of the driver runs,
    each store path replaced by its host path; order, nasty strings and all."""
    env = (("ZED", "1"), ("NIX_LD_LIBRARY_PATH", "/run/x"), ("NIX_PATH", NASTY), ("A", "x=y"))
    cells = [prepared(tmp_path, name="a", argv=("/home/user/bin/c-envprint", NASTY, "--f=${HOME}"), env=env),
             prepared(tmp_path, name="rust-spawn-env", nix_ld="build", launcher=True)]
    plan = plan_vm(cells)
    store = tmp_path / "nix" / "store"
    text = generate_test(plan, store)
    bindings = {}
    for line in text.splitlines():
        for prefix in ("path", "inStore", "launcher"):
            if line.startswith(f"  {prefix}") and " = " in line:
                var = line.split(" = ", 1)[0].strip()
                bindings[var] = var
    value = spec(plan, store)
    lets = []
    from harness.runners.nixgen import _Refs, nix_value

    refs = _Refs()
    nix_value(value, refs)  # the same let-names generate_test gave, in the same order
    for ref, var in refs.names.items():
        assert var in bindings
        host = str(ref.host) if not isinstance(ref, NixBuilt) else f"/launcher-{ref.reproducer}"
        lets.append(f"  {var} = {nix_string(host)};")
    start, end = text.index("  spec = "), text.index("  base = ")
    evaluated = nix_eval_json("let\n" + "\n".join(lets) + "\n" + text[start:end] + "in spec")
    expected = host_spec(value)
    for machine in expected["machines"]:  # Nix builds the launcher; the stand-in runs the Debian build
        for cell in machine["cells"]:
            for item in cell["files"]:
                if item["dest"].endswith("/rust-spawn-env"):
                    item["src"] = "/launcher-spawn-env/bin/spawn-env"
    assert evaluated == expected
    cell = expected["machines"][0]["cells"][0]
    assert [tuple(kv) for kv in cell["env"]] == list(env)  # the order is the cell's
    assert NASTY not in text


def test_test_script_is_python(tmp_path: Path) -> None:
    """The testScript Nix builds is valid Python (checked by evaluating the string, spec path stubbed)."""
    text = generate_test(plan_vm([prepared(tmp_path)]))
    expr = text[text.index("testScript = ") + len("testScript = "):text.rindex(";\n}")]
    script = nix_eval_json(f'let pkgs = {{ writeText = name: text: "/nix/store/spec.json"; }}; spec = {{ }}; in {expr}')
    assert isinstance(script, str) and script.startswith('SPEC = "/nix/store/spec.json"\n')
    assert script == driver_script("/nix/store/spec.json", ["nixos_with_its_nix_ld"])
    assert script.endswith('run({"nixos_with_its_nix_ld": nixos_with_its_nix_ld})\n')  # the node, by its name
    compile(script, "testScript", "exec")


# --------------------------------------------------------------------------- results


def _out(data: bytes) -> dict:
    return {"size": len(data), "head": base64.b64encode(data).decode(), "tail": ""}


def test_parse_results_round_trip() -> None:
    ran = {"id": "c", "rc": 124, "finished": True, "timed_out": False, "duration": 0.5,
           "stdout": _out(b"LDMATRIX-CHECK: ok\n"), "stderr": _out("é\n".encode())}
    failed = {"id": "d", "error": "CalledProcessError: cp failed"}
    log = (f"machine: noise\n(finished) {RESULT_TAG}{json.dumps(ran)}\n{RESULT_TAG}{json.dumps(failed)}\n"
           f"{RESULT_TAG}{{cut")
    got = parse_results(log)
    assert got["c"] == CommandResult(124, "LDMATRIX-CHECK: ok\n", "é\n", 0.5, False)  # 124, not a timeout
    assert got["d"] == NotRun("the VM test could not run it: CalledProcessError: cp failed", error=True)


def test_long_output_is_read_as_head_and_tail() -> None:
    limit = 1024
    data = b"".join(f"line {i}\n".encode() for i in range(1000))
    head, tail = data[:limit - limit // 4], data[-(limit // 4):]
    record = {"id": "c", "rc": 0, "finished": True, "timed_out": False, "duration": 1.0,
              "stdout": {"size": len(data), "head": base64.b64encode(head).decode(),
                         "tail": base64.b64encode(tail).decode()}, "stderr": _out(b"")}
    result = parse_results(RESULT_TAG + json.dumps(record), limit=limit)["c"]
    assert isinstance(result, CommandResult)
    assert result.stdout.startswith("line 0\n") and result.stdout.endswith("line 999\n")
    assert f"bytes of stdout cut here; the output was {len(data)} bytes]" in result.stdout
    assert result.stdout_cut == len(data) - len(head) - len(result.stdout.split("]\n", 1)[1].encode())


# --------------------------------------------------------------------------- the runner


def test_unavailable_gives_a_reason_here() -> None:
    runner = get_runner("nixos-vm")
    assert runner.name == "nixos-vm"
    reason = runner.unavailable()
    if reason is None:
        pytest.skip("this machine can run NixOS VM tests (nix, KVM and a binary cache reachable)")
    assert "\n" not in reason and "nix" in reason and "/dev/kvm" in reason and "here" in reason


FEATURES = {"system-features": {"value": ["benchmark", "big-parallel", "kvm", "nixos-test"]},
            "substituters": {"value": ["https://cache.example.invalid"]}}


def test_unavailable_names_what_is_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(nixos_vm, "nix_settings", lambda: FEATURES)
    runner = NixosVmRunner(kvm_device=str(tmp_path / "no-kvm"), check_network=False)
    runner.nix_build = "/usr/bin/nix-build"
    assert runner.unavailable() == ("needs nix and /dev/kvm: run on a NixOS or Nix machine with KVM and network "
                                    f"access to a binary cache; here {tmp_path / 'no-kvm'} is missing")
    runner = NixosVmRunner(check_network=False)
    runner.nix_build = None
    assert "nix-build is not on PATH" in (runner.unavailable() or "")


@pytest.mark.parametrize("features, missing", [(["benchmark", "kvm"], "lack nixos-test"),
                                                (["nixos-test"], "lack kvm"), ([], "lack kvm and nixos-test")])
def test_unavailable_names_the_system_features_nix_lacks(monkeypatch: pytest.MonkeyPatch, features: list[str],
                                                          missing: str) -> None:
    """A NixOS test's derivation requires kvm and nixos-test: without them every cell is skipped saying so."""
    monkeypatch.setattr(nixos_vm, "nix_settings", lambda: {"system-features": {"value": features}})
    runner = NixosVmRunner(check_network=False)
    runner.nix_build = "/usr/bin/nix-build"
    reason = runner.unavailable() or ""
    assert f"here nix's system-features {missing} " in reason, reason
    assert "`extra-system-features = kvm nixos-test` to nix.conf" in reason and "\n" not in reason
    monkeypatch.setattr(nixos_vm, "nix_settings", lambda: None)
    runner = NixosVmRunner(check_network=False)
    runner.nix_build = "/usr/bin/nix-build"
    assert "nix's system-features cannot be read" in (runner.unavailable() or "")


def test_cells_a_vm_cannot_run_are_skipped_with_the_reason(tmp_path: Path) -> None:
    runner = NixosVmRunner(check_network=False)
    debian, fhs = prepared(tmp_path, pin=None), prepared(tmp_path, kind=RootKind.FHS)
    got = runner.run_batch([debian, fhs])
    assert all(isinstance(r, NotRun) and not r.error for r in got)
    assert "glibc 2.40 is Debian's" in got[0].reason and "--nixpkgs PIN" in got[0].reason
    assert "container strategy" in got[1].reason


def _fake_nix_build(tmp_path: Path, script: str) -> str:
    exe = tmp_path / "nix-build"
    exe.write_text(f"#!/bin/sh\necho \"$@\" >> {tmp_path}/nix-build.calls\n{script}\n")
    exe.chmod(0o755)
    return str(exe)


def test_one_nix_build_per_pin_and_its_failure_is_each_cells_error(tmp_path: Path) -> None:
    """A VM that never ran its cells (nix-build failed) gives each cell `error` with that reason, no rc."""
    runner = NixosVmRunner(check_network=False)
    runner.nix_build = _fake_nix_build(tmp_path, "echo 'error: cannot build' >&2; exit 1")
    other = NixpkgsSource("nixos-25.05", PIN.url, PIN.sha256, "y" * 40, PIN_NIX_LD)
    cells = [prepared(tmp_path, name="a"), prepared(tmp_path, name="b", nix_ld=None),
             prepared(tmp_path, name="c", pin=other)]
    got = runner.run_batch(cells)
    assert len((tmp_path / "nix-build.calls").read_text().splitlines()) == 2  # two pins, two VM tests
    assert all(isinstance(r, NotRun) and r.error and "nix-build exited 1" in r.reason for r in got)


def test_results_the_test_wrote_are_the_cells_results(tmp_path: Path) -> None:
    record = {"id": "c-hello.nix-ld-2.0.3.nixos-24.11", "rc": 0, "finished": True, "timed_out": False,
              "duration": 0.1, "stdout": _out(b"LDMATRIX-CHECK: ok\n"), "stderr": _out(b"")}
    runner = NixosVmRunner(check_network=False)
    runner.nix_build = _fake_nix_build(tmp_path, f"echo '{RESULT_TAG}{json.dumps(record)}'; exit 0")
    got = runner.run_batch([prepared(tmp_path), prepared(tmp_path, name="other", nix_ld=None)])
    assert got[0] == CommandResult(0, "LDMATRIX-CHECK: ok\n", "", 0.1)
    assert isinstance(got[1], NotRun) and got[1].error and "the test did not report this cell" in got[1].reason


def test_the_session_batches_cells_for_a_runner_that_can(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from harness import session
    from harness.results.outdir import RunDirectory

    class Spec:
        child = None
        check = None  # judged by the loader's lines alone

    class Matrix:  # what the session reads of a matrix
        binaries = {"a": Spec(), "b": Spec()}
        timeout = 5.0

        @staticmethod
        def expectation(cell):
            from harness.model import Expectation
            return Expectation(Outcome.OK, "test:1")

        @staticmethod
        def release(cell):  # the matrix's NixOS release for a Debian column; None: the current one
            return None

        @staticmethod
        def libs_label(cell):  # what a NixOS user writes for the cell's library set; None: it takes none
            return None

    cells = [prepared(tmp_path, name="a"), prepared(tmp_path, name="b")]
    by_cell = {c.cell: c for c in cells}
    monkeypatch.setattr(session, "prepare", lambda cell, *args, **kwargs: by_cell[cell])

    class Batcher:
        name = "batcher"
        calls: list[list[str]] = []

        def run(self, prepared):  # pragma: no cover - must not be used
            raise AssertionError("run() called: the session did not batch")

        def run_batch(self, batch):
            self.calls.append([p.cell.binary for p in batch])
            return [CommandResult(0, "LDMATRIX-CHECK: ok\n", "", 0.1), NotRun("no VM", error=True)]

    with RunDirectory(tmp_path / "out", "t") as rundir:
        rundir.begin({"name": "t"}).close()
        results = session.run_batch(Matrix, [c.cell for c in cells], None, Batcher(), rundir)
    assert Batcher.calls == [["a", "b"]]
    assert results[0].outcome is Outcome.OK and results[0].rc == 0
    assert results[1].outcome is Outcome.ERROR and results[1].evidence == "batcher did not run this cell: no VM"


def test_session_skips_every_cell_when_unavailable(tmp_path: Path) -> None:
    from harness import matrix as matrix_mod
    from harness.cache import REPO_ROOT
    from harness.session import RunOptions, execute

    if NixosVmRunner().unavailable() is None:
        pytest.skip("the nixos-vm runner is available here")
    seed = matrix_mod.load(REPO_ROOT / "matrices" / "seed.yaml")
    results = execute(seed, RunOptions(runner="nixos-vm", select="c-hello patchelf", out=tmp_path))
    assert results and all(r.outcome is None and "runner nixos-vm unavailable" in (r.skip_reason or "")
                           for r in results)


def test_finished_marker_is_in_the_script() -> None:
    script = driver_script("/spec.json", ["m"])
    assert "echo {FINISHED}; exit $rc" in script and "timed_out\": not finished and status == 124" in script
    assert FINISHED == "LDMATRIX-VM-FINISHED"
    assert "timeout=cell[\"timeout\"]" in script and "echo $? >" not in script
    assert isinstance(HostPath(Path("/x"), "x"), HostPath) and isinstance(InStore("/nix/store/x", Path("/x")), InStore)
