"""The nixos-vm runner: the Nix it generates (escaping, order, nix-ld), parse-checked, and its skip reason."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from harness.errors import LdmatrixError
from harness.model import (
    Cell, CommandResult, Link, Mount, NotRun, Outcome, PreparedCell, RootKind, RootSpec, StorePath, Strategy,
)
from harness.nixgen import RESULT_TAG, NixpkgsPin, generate_test, load_pins, nix_string, parse_results
from harness.runners import get_runner
from harness.runners.nixos_vm import NixosVmRunner

NASTY = 'a "quoted" ${HOME} $${x} $ \\ back\\slash\nnew line\ttab \'single\' ``x'
PIN = NixpkgsPin(release="24.05", url="https://github.com/NixOS/nixpkgs/archive/x.tar.gz", glibc="2.39",
                 nix_ld={"1.2.3": "nix-ld"})


def prepared(tmp_path: Path, *, glibc: str = "2.39", nix_ld: str | None = "1.2.3", argv: tuple[str, ...] = (),
             env: tuple[tuple[str, str], ...] = (), kind: RootKind = RootKind.NIXOS, name: str = "c-hello") -> PreparedCell:
    glibc_path = StorePath("glibc", "2.36-9", "a" * 32, tmp_path / "store-glibc")
    strategy = (Strategy.NIX_LD,) if nix_ld else (Strategy.PATCHELF,)
    cell = Cell(name, strategy, glibc, nix_ld)
    root = RootSpec(kind, "d" * 16, store_paths=(glibc_path,), links=(Link("/bin/sh", "/nix/store/x/bin/busybox"),))
    mounts = (Mount(tmp_path / "home", "/home/user", writable=True),
              Mount(tmp_path / "nixld", "/nix/store/" + "b" * 32 + "-nix-ld-1.2.3"),
              Mount(tmp_path / "overlay" / "lib64", "/lib64"))
    return PreparedCell(cell, root, mounts, argv or ("/home/user/bin/hello",), env or (("HOME", "/home/user"),),
                        "/home/user", 20.0, tmp_path / "work")


def nix_eval_json(expr: str) -> object:
    exe = shutil.which("nix-instantiate")
    if exe is None:
        pytest.skip("nix-instantiate not found: apt-get install -y nix-bin")
    proc = subprocess.run([exe, "--eval", "--strict", "--json", "-E", expr], capture_output=True, text=True,
                          env=nix_env())
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def nix_env() -> dict[str, str]:
    # --parse and pure --eval need no store and no daemon; keep whatever NIX_* the host set
    # from sending them to a daemon or remote store.
    env = {k: v for k, v in os.environ.items() if k != "NIX_REMOTE"}
    env.setdefault("NIX_PATH", "")
    return env


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


# --------------------------------------------------------------------------- generate_test


def test_generated_test_has_nix_ld_and_the_cell(tmp_path: Path) -> None:
    text = generate_test(PIN, [prepared(tmp_path)], "nix-ld")
    assert "pkgs.testers.runNixOSTest" in text
    assert "programs.nix-ld.enable = true;" in text
    assert "programs.nix-ld.package = pkgs.nix-ld;" in text
    assert 'builtins.fetchTarball { url = "https://github.com/NixOS/nixpkgs/archive/x.tar.gz"; }' in text
    assert nix_string("c-hello.nix-ld-1.2.3.glibc-2.39") in text
    # store paths go in at their own names; /lib64 is left to NixOS's programs.nix-ld
    assert nix_string("/nix/store/" + "a" * 32 + "-glibc-2.36-9") in text
    assert 'left_to_nixos = [ "/lib64" ];' in text
    assert "programs.nix-ld.package" not in generate_test(PIN, [prepared(tmp_path)])


def test_binaries_bound_into_home_are_copied_into_the_vm(tmp_path: Path) -> None:
    """Cells bind their (shared, patched) binaries into HOME; the VM gets them copied to the same place."""
    cell = prepared(tmp_path)
    shared = tmp_path / "cache" / "patched" / "k" / "hello"
    cell = PreparedCell(cell.cell, cell.root, (*cell.mounts, Mount(shared, "/home/user/bin/hello")), cell.argv,
                        cell.env, cell.cwd, cell.timeout, cell.workdir)
    text = generate_test(PIN, [cell])
    assert f"home0file0 = builtins.path {{ path = /. + {nix_string(str(shared))};" in text
    assert 'files = [ { src = "${home0file0}"; dest = "/home/user/bin/hello"; } ];' in text
    assert 'left_to_nixos = [ "/lib64" ];' in text  # not left to NixOS: it is copied
    assert "cp {q(item['src'])} {q(item['dest'])}" in text  # the testScript copies them


def test_pinned_sha256_is_used(tmp_path: Path) -> None:
    pin = NixpkgsPin("23.11", "https://example.invalid/n.tar.gz", "2.38", sha256="0" * 52)
    assert f'sha256 = "{"0" * 52}";' in generate_test(pin, [prepared(tmp_path)])


def test_nasty_strings_and_env_order_survive(tmp_path: Path) -> None:
    env = (("ZED", "1"), ("NIX_LD_LIBRARY_PATH", "/run/x"), ("NIX_PATH", NASTY), ("A", "x=y"))
    argv = ("/home/user/bin/hello", NASTY, "--flag=${HOME}")
    cell = prepared(tmp_path, argv=argv, env=env)
    text = generate_test(PIN, [cell], "nix-ld")
    start = text.index("  cells = [")
    end = text.index("  spec = ")
    cells_expr = 'let\n  home0 = "/nix/store/home";\n' + text[start:end] + "in cells"
    value = nix_eval_json(cells_expr)
    assert isinstance(value, list) and len(value) == 1
    got = value[0]
    assert got["argv"] == list(argv)
    assert [tuple(kv) for kv in got["env"]] == list(env)  # the order is the cell's
    # the command the test script builds keeps that order: env -i -- K=V ... in sequence
    assert "env -i -- {env} {argv}" in text
    # the raw value never appears unescaped
    assert NASTY not in text


def test_generated_text_parses(tmp_path: Path) -> None:
    exe = shutil.which("nix-instantiate")
    if exe is None:
        pytest.skip("nix-instantiate not found: apt-get install -y nix-bin")
    cells = [prepared(tmp_path, argv=("/home/user/bin/x", NASTY), env=(("K", NASTY), ("L", "2"))),
             prepared(tmp_path, name="rust-spawn-env", nix_ld=None)]
    path = tmp_path / "test.nix"
    path.write_text(generate_test(PIN, cells, "nix-ld"))
    proc = subprocess.run([exe, "--parse", str(path)], capture_output=True, text=True, env=nix_env())
    assert proc.returncode == 0, proc.stderr


def test_test_script_is_python(tmp_path: Path) -> None:
    """The testScript Nix builds is valid Python (checked by evaluating the string, spec path stubbed)."""
    text = generate_test(PIN, [prepared(tmp_path)])
    expr = text[text.index("testScript = ") + len("testScript = "):text.rindex(";\n}")]
    script = nix_eval_json(f"let spec = \"/nix/store/spec.json\"; in {expr}")
    assert isinstance(script, str) and script.startswith('SPEC = "/nix/store/spec.json"\n')
    compile(script, "testScript", "exec")


def test_store_paths_are_shared_between_cells(tmp_path: Path) -> None:
    text = generate_test(PIN, [prepared(tmp_path), prepared(tmp_path, name="c-envprint")])
    # one builtins.path for the glibc both cells use
    assert text.count(f'builtins.path {{ path = /. + "{tmp_path}/store-glibc"') == 1
    assert "home1 = builtins.path" in text


def test_fhs_cells_are_refused(tmp_path: Path) -> None:
    with pytest.raises(LdmatrixError, match="container strategy"):
        generate_test(PIN, [prepared(tmp_path, kind=RootKind.FHS)])


def test_bad_env_key_is_refused(tmp_path: Path) -> None:
    with pytest.raises(LdmatrixError, match="env -i"):
        generate_test(PIN, [prepared(tmp_path, env=(("A=B", "x"),))])


# --------------------------------------------------------------------------- results, pins, runner


def test_parse_results_round_trip() -> None:
    import base64

    record = {"id": "c", "rc": 1, "timed_out": False, "duration": 0.5,
              "stdout": base64.b64encode(b"LDMATRIX-CHECK: ok\n").decode(),
              "stderr": base64.b64encode("é\n".encode()).decode()}
    log = f"machine: noise\n(finished) {RESULT_TAG}{json.dumps(record)}\n{RESULT_TAG}{{cut"
    assert parse_results(log) == {"c": CommandResult(1, "LDMATRIX-CHECK: ok\n", "é\n", 0.5, False)}


def test_pins_cover_the_releases() -> None:
    pins = load_pins()
    assert {k: p.glibc for k, p in pins.items()} == {"23.11": "2.38", "24.05": "2.39", "24.11": "2.40",
                                                     "25.05": "2.40"}
    for pin in pins.values():
        assert pin.url.startswith("https://github.com/NixOS/nixpkgs/archive/")
        assert pin.nix_ld


def test_unavailable_gives_a_reason_here() -> None:
    runner = get_runner("nixos-vm")
    assert runner.name == "nixos-vm"
    reason = runner.unavailable()
    if reason is None:
        pytest.skip("this machine can run NixOS VM tests (nix, KVM and a binary cache reachable)")
    assert "\n" not in reason and "nix" in reason and "/dev/kvm" in reason and "here" in reason


def test_unavailable_names_what_is_missing(tmp_path: Path) -> None:
    runner = NixosVmRunner(kvm_device=str(tmp_path / "no-kvm"), check_network=False)
    runner.nix_build = "/usr/bin/nix-build"
    assert runner.unavailable() == ("needs nix and /dev/kvm: run on a NixOS or Nix machine with KVM and network "
                                    f"access to a binary cache; here {tmp_path / 'no-kvm'} is missing")
    runner = NixosVmRunner(check_network=False)
    runner.nix_build = None
    assert "nix-build is not on PATH" in (runner.unavailable() or "")


def test_cells_without_a_pin_are_not_run(tmp_path: Path) -> None:
    runner = NixosVmRunner(pins={"24.05": PIN}, check_network=False)
    result = runner.run(prepared(tmp_path, glibc="2.36"))
    assert isinstance(result, NotRun) and not result.error and "no nixpkgs pin has glibc 2.36" in result.reason
    result = runner.run(prepared(tmp_path, nix_ld="2.0.6"))
    assert isinstance(result, NotRun) and not result.error and "nix-ld 2.0.6" in result.reason


def _fake_nix_build(tmp_path: Path, script: str) -> str:
    exe = tmp_path / "nix-build"
    exe.write_text(f"#!/bin/sh\n{script}\n")
    exe.chmod(0o755)
    return str(exe)


def test_vm_cell_not_run_is_not_a_fake_exit_code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A VM that never ran the cell (nix-build failed) gives the cell `error` with that reason, no rc."""
    from harness.session import run_one

    cell_prepared = prepared(tmp_path)
    runner = NixosVmRunner(pins={"24.05": PIN}, check_network=False)
    runner.nix_build = _fake_nix_build(tmp_path, "echo 'error: cannot build' >&2; exit 1")
    result = runner.run(cell_prepared)
    assert isinstance(result, NotRun) and result.error and "nix-build exited 1" in result.reason

    class Matrix:  # what run_one reads of a matrix
        binaries = {"c-hello": type("Spec", (), {"child": None})()}
        timeout = 5.0

        @staticmethod
        def expectation(cell):
            from harness.model import Expectation, Outcome
            return Expectation(Outcome.OK, "test:1")

    from harness.outdir import RunDirectory

    monkeypatch.setattr("harness.session.prepare", lambda *args, **kwargs: cell_prepared)
    with RunDirectory(tmp_path / "out", "t") as rundir:
        rundir.begin({"matrix": "t"}).close()
        record = run_one(Matrix, cell_prepared.cell, None, runner, rundir)
    assert record.outcome is Outcome.ERROR and record.rc is None
    assert record.evidence.startswith("nixos-vm did not run this cell: nix-build exited 1")


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
