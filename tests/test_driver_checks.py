"""The generated driver script passes the checks nixpkgs runs on every testScript before a VM boots
(nixos/lib/testing/driver.nix): pyflakes with the driver's names as builtins, and mypy against the
driver's types (tests/fixtures/driver_api.py), with nixpkgs' flags. Either failing fails the test's
derivation, and every cell of the pin with it. Each check is also shown to fail on what it must
catch (a stray import, the ``machines`` global, a method the driver's machine lacks), and the VM
stand-in (tests/vm_standin.py) is held to the typed API.
"""

from __future__ import annotations

import ast
import importlib.util
import inspect
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.runners.nixgen import generate_test, plan_vm
from harness.runners.vm_script import driver_script

from test_nixos_vm import prepared

API = Path(__file__).resolve().parent / "fixtures" / "driver_api.py"
MYPY_FLAGS = ("--no-implicit-optional", "--pretty", "--no-color-output")  # driver.nix's
STRICTER = ("--disallow-untyped-defs", "--warn-unused-ignores")  # ours: every function body is checked


def driver_symbols() -> list[str]:
    """The globals the driver gives every script: the names tests/fixtures/driver_api.py annotates."""
    tree = ast.parse(API.read_text())
    return [node.target.id for node in tree.body if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)]


def node_names(nodes: list[str]) -> list[str]:
    """The node variables the driver defines: each node, and ``machine`` when there is exactly one."""
    return [*nodes, *(["machine"] if len(nodes) == 1 and "machine" not in nodes else [])]


def _require(module: str) -> None:
    if importlib.util.find_spec(module) is None:
        pytest.fail(f"{module} is not installed: it is a test dependency (tox.ini installs it)")


def pyflakes(script: str, nodes: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    _require("pyflakes")
    path = tmp_path / "test-script"
    path.write_text(script)
    env = {**os.environ, "PYFLAKES_BUILTINS": ",".join([*node_names(nodes), *driver_symbols()])}
    return subprocess.run([sys.executable, "-m", "pyflakes", str(path)], capture_output=True, text=True, env=env)


def mypy(script: str, nodes: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    _require("mypy")
    hints = " ".join(f"{name}: Machine;" for name in node_names(nodes))
    path = tmp_path / "testScriptWithTypes"
    path.write_text(API.read_text() + "\n" + hints + "\n" + script)
    return subprocess.run([sys.executable, "-m", "mypy", *MYPY_FLAGS, *STRICTER, "--cache-dir", str(tmp_path / "cache"),
                           "--python-version", "3.11", str(path)], capture_output=True, text=True)


def scripts(tmp_path: Path) -> list[tuple[str, list[str]]]:
    """The scripts of a test with three machines and of one with a single machine (the driver then
    also names it ``machine``), as the generated Nix gives them."""
    many = plan_vm([prepared(tmp_path, name="a", nix_ld=None), prepared(tmp_path, name="b", nix_ld="pin"),
                    prepared(tmp_path, name="c", nix_ld="build")])
    one = plan_vm([prepared(tmp_path, name="d", nix_ld=None)])
    out = []
    for plan in (many, one):
        nodes = [m.name for m in plan.machines]
        assert f'run({{"{nodes[0]}": {nodes[0]}' in generate_test(plan).replace('\\"', '"')
        out.append((driver_script("/nix/store/x-ldmatrix-spec.json", nodes), nodes))
    return out


def test_the_driver_script_passes_pyflakes_with_the_drivers_builtins(tmp_path: Path) -> None:
    for script, nodes in scripts(tmp_path):
        proc = pyflakes(script, nodes, tmp_path)
        assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_driver_script_passes_mypy_against_the_drivers_types(tmp_path: Path) -> None:
    for script, nodes in scripts(tmp_path):
        proc = mypy(script, nodes, tmp_path)
        assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("change, complaint", [
    (lambda s: "import base64\n" + s, "'base64' imported but unused"),
    (lambda s: s + "for vm in machines:\n    vm.shutdown()\n", "undefined name 'machines'"),
])
def test_pyflakes_catches_what_nixpkgs_refuses(tmp_path: Path, change, complaint: str) -> None:
    script, nodes = scripts(tmp_path)[0]
    proc = pyflakes(change(script), nodes, tmp_path)
    assert proc.returncode != 0 and complaint in proc.stdout, proc.stdout + proc.stderr


@pytest.mark.parametrize("change, complaint", [
    (lambda s: s.replace("    def crash(self) -> None: ...\n", "    def crash(self) -> None: ...\n\n"
                         "    def reboot_now(self) -> None: ...\n"), "incompatible type"),
    (lambda s: s.replace('vm.execute(command, timeout=cell["timeout"])', 'vm.execute(command, seconds=1)'),
     'Unexpected keyword argument "seconds"'),
    (lambda s: s + "machine = 1\n", "Incompatible types in assignment"),
    (lambda s: s.replace("import typing ", "from typing import Protocol\nimport typing "),
     'Incompatible import of "Protocol"'),
])
def test_mypy_catches_what_the_drivers_types_refuse(tmp_path: Path, change, complaint: str) -> None:
    """A method the driver's machine lacks, a wrong argument, a node name reused, a name of nixpkgs' prefix
    imported otherwise: each fails the type check."""
    script, nodes = scripts(tmp_path)[1]
    changed = change(script)
    assert changed != script
    proc = mypy(changed, nodes, tmp_path)
    assert proc.returncode != 0 and complaint in proc.stdout, proc.stdout + proc.stderr


def test_the_vm_stand_in_has_the_drivers_signatures() -> None:
    """The stand-in's methods take what the driver's take (names, defaults, kinds), so a script the
    stand-in runs does not call the real machine differently."""
    import vm_standin

    spec = importlib.util.spec_from_file_location("driver_api", API)
    assert spec is not None and spec.loader is not None
    api = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(api)
    methods = [name for name, _ in inspect.getmembers(api.Machine, inspect.isfunction)]
    used = {"start", "wait_for_unit", "execute", "succeed", "fail", "shutdown", "crash"}
    assert used <= set(methods)
    for name in used:
        want = inspect.signature(getattr(api.Machine, name))
        got = inspect.signature(getattr(vm_standin.StandinMachine, name))
        assert [(p.name, p.kind, p.default) for p in got.parameters.values()] == \
            [(p.name, p.kind, p.default) for p in want.parameters.values()], name
