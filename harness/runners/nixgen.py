"""The NixOS VM test of one nixpkgs pin, generated as text: its Nix expression and its driver script.

``plan_vm(cells)`` groups a pin's prepared cells by the machine they need, ``generate_test(plan)``
gives one ``pkgs.testers.runNixOSTest`` (nixpkgs >= 23.05) with one machine per group, all of the
pin's own NixOS, booted one after the other:

- cells that use no nix-ld run on a machine without it (``programs.nix-ld.enable = false``): the
  pin's NixOS as it comes, so no /lib64 before 24.05 and stub-ld at /lib64/ld-linux-x86-64.so.2
  from 24.05 on (nixos/modules/config/stub-ld.nix, on by default; harness/root/release.py);
- nix-ld cells run on a machine with ``programs.nix-ld.enable = true``: the pin's own nix-ld when
  the cell's nix-ld is the pin's (``pkgs.nix-ld``), else ``programs.nix-ld.package`` set to the
  nix-ld build the cell names (built from its source by harness/nixld/, as in the sandbox), packaged
  as nixpkgs packages nix-ld (``libexec/nix-ld`` and the tmpfiles rule NixOS installs);
- ``programs.nix-ld.libraries``: left alone for ``libs: default``; ``lib.mkForce [ ]`` for ``none``
  (from 24.05 on the module adds its base list in ``config`` and list options merge, so ``[ ]``
  alone would leave all 14); a listed set written plainly, so that it does what it does on the
  pin's release: added to the base list from 24.05 on, replacing it on 23.11.

The glibc is the VM's own: the cells' store paths are the pin's, realised on the host
(harness/nixpkgs/realise.py) with the same nixpkgs, so the binaries patched on the host point at
the VM's glibc. Paths in the host's Nix store become the test's inputs (``builtins.storePath``),
so they are in the VM's store as part of the test's closure; the patched binaries and the cells'
homes are copied in with ``builtins.path`` and from there to the home directory. Nothing is
written into the VM's /nix/store, which NixOS mounts read-only. A store path that ldmatrix made
from Debian's packages (the sandbox's system layout, Debian-built tools) cannot be in the VM: the
VM has its own system, and a cell that names such a path in its command, environment, interpreter
or RUNPATH is reported as an error saying so (``missing``) instead of run.
The Rust launchers, which stand for Nix-built programs, are built here with the pin's rustc
(``pkgs.rustc``), as the seed built its launcher; the foreign children are the Debian builds.
The launch styles use the VM's own bash, /etc/profile and python3 (the links and files the sandbox
lays out at /run, /etc and /lib64 are left to NixOS).

The driver script (harness/runners/vm_script.py) runs every cell as the user ``user`` (uid 1000, group
users) through ``su`` and ``env -i`` (so the environment's order is the cell's), with
``execute(command, timeout=...)``: the driver's own status, the driver's own time limit. The
command ends with a marker line only a command that finished prints, so a program that exits 124
is not taken for the driver's ``timeout`` (which exits 124 and prints nothing after). A cell whose
setup or run raises is recorded with the error and the next cell runs; a machine that does not
boot in time is stopped and its cells are errors with that reason. Each cell gives one
``LDMATRIX-VM-RESULT {json}`` line, also written to ``$out/ldmatrix-results``; ``parse_results``
reads them back. The test's ``globalTimeout`` is the sum of the machines' and cells' limits.

The same spec is rendered twice: as Nix (store paths interpolated) for nix-build, and as JSON with
host paths for a stand-in of the driver's Machine (tests/vm_standin.py) that runs the script here.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from harness.cache import REPO_ROOT
from harness.errors import LdmatrixError
from harness.model import CommandResult, NixpkgsSource, NotRun, PreparedCell, RootKind, StorePath
from harness.reproducers import REPRODUCERS, Language
from harness.root.environments import HOME
from harness.root.limits import CELL, CELL_GROUP, CELL_UID, CELL_USER
from harness.root.system import SW_BIN
from harness.runners.output import Bounded
from harness.runners.vm_script import (
    BOOT_TIMEOUT,
    CELL_ALLOWANCE,
    RESULT_TAG,
    SHUTDOWN_TIMEOUT,
    global_timeout,
    script_body,
)

SYSTEM = "x86_64-linux"
PYTHON = f"{SW_BIN}/python3"
_STORE_PATH = re.compile(r"/nix/store/[0-9a-z]{32}-[^/\s:'\"]+")
NO_NIX_LD = "no-nix-ld"
PIN_NIX_LD = "pin"
_STORE_NAME_BAD = re.compile(r"[^A-Za-z0-9+\-._?=]")


# --------------------------------------------------------------------------- Nix text

def nix_string(s: str) -> str:
    """``s`` as a double-quoted Nix string literal: escapes \\, ", ${ and control characters."""
    if "\0" in s:
        raise ValueError("a Nix string cannot hold a NUL byte")
    out = (s.replace("\\", "\\\\").replace('"', '\\"').replace("${", "\\${")
           .replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t"))
    return f'"{out}"'


def nix_list(items: Iterable[str]) -> str:
    items = list(items)
    return "[ " + " ".join(items) + " ]" if items else "[ ]"


def store_name(text: str) -> str:
    """A valid store path name (``builtins.path``'s name) made from ``text``."""
    name = _STORE_NAME_BAD.sub("-", text).lstrip(".")[:200]
    return name or "unnamed"


# --------------------------------------------------------------------------- spec values

@dataclass(frozen=True)
class HostPath:
    """A file or tree of this machine: ``builtins.path`` in Nix, the host path for a stand-in."""

    host: Path
    name: str


@dataclass(frozen=True)
class InStore:
    """A path of the Nix store itself (a pin's own): ``builtins.storePath``, an input of the test."""

    store_path: str
    host: Path


@dataclass(frozen=True)
class NixBuilt:
    """A Rust launcher, built with the pin's rustc in Nix; ``host`` is the Debian build a stand-in runs."""

    reproducer: str
    host: Path


Ref = HostPath | InStore | NixBuilt


@dataclass
class _Refs:
    """The let-bindings of the generated Nix, one per distinct ref."""

    names: dict[Ref, str] = field(default_factory=dict)

    def var(self, ref: Ref) -> str:
        if ref not in self.names:
            prefix = {HostPath: "path", InStore: "inStore", NixBuilt: "launcher"}[type(ref)]
            self.names[ref] = f"{prefix}{len(self.names)}"
        return self.names[ref]

    def bindings(self) -> list[str]:
        out = []
        for ref, var in self.names.items():
            if isinstance(ref, HostPath):
                out.append(f"  {var} = builtins.path {{ path = /. + {nix_string(str(Path(ref.host).absolute()))}; "
                           f"name = {nix_string(store_name(ref.name))}; }};")
            elif isinstance(ref, InStore):
                out.append(f"  {var} = builtins.storePath {nix_string(ref.store_path)};")
            else:
                out.append(f"  {var} = {_launcher_build(ref.reproducer)};")
        return out


def _launcher_build(reproducer: str) -> str:
    """The Rust launcher compiled with nixpkgs' rustc, with the flags harness/reproducers.py uses."""
    spec = REPRODUCERS[reproducer]
    if spec.language is not Language.RUST:
        raise LdmatrixError(f"{reproducer}: only the Rust launchers are built in Nix")
    command = [arg.replace("/src/", "${rustRepro}/").replace(f"/out/{spec.name}", f"$out/bin/{spec.name}")
               for arg in spec.compile_command()]
    script = "mkdir -p $out/bin\n" + " ".join(command) + "\n"
    return (f"pkgs.runCommandCC {nix_string(store_name('ldmatrix-' + spec.name))} "
            "{ nativeBuildInputs = [ pkgs.rustc ]; } "
            f"{nix_string(script).replace(chr(92) + '${rustRepro}', '${rustRepro}')}")


# --------------------------------------------------------------------------- the plan

@dataclass(frozen=True)
class Machine:
    """One VM of the test: its nix-ld (none, the pin's own, or a build) and its cells, in order."""

    name: str  # a Python identifier: the driver's name for it
    nix_ld: str  # NO_NIX_LD, PIN_NIX_LD, or the label of the build it is given
    nix_ld_build: StorePath | None  # the build (label not the pin's)
    cells: tuple[PreparedCell, ...]
    libraries: tuple[str, ...] | None = None  # programs.nix-ld.libraries (nixpkgs attributes); None: NixOS's


@dataclass(frozen=True)
class VmPlan:
    pin: NixpkgsSource
    glibc: str  # its glibc version, for the header
    machines: tuple[Machine, ...]

    @property
    def cells(self) -> tuple[PreparedCell, ...]:
        return tuple(c for m in self.machines for c in m.cells)


def _machine_key(prepared: PreparedCell) -> tuple[str, StorePath | None, tuple[str, ...] | None]:
    """(nix-ld label, its build, its libraries): the cells that share a machine."""
    if prepared.nix_ld is None:
        return NO_NIX_LD, None, None
    assert prepared.nixpkgs is not None
    if prepared.nix_ld.store_path == prepared.nixpkgs.nix_ld:
        return PIN_NIX_LD, None, prepared.nix_ld_libraries
    return prepared.cell.nix_ld or prepared.nix_ld.version, prepared.nix_ld, prepared.nix_ld_libraries


def _machine_name(label: str, libraries: tuple[str, ...] | None) -> str:
    name = {NO_NIX_LD: "nixos_without_nix_ld", PIN_NIX_LD: "nixos_with_its_nix_ld"}.get(
        label, f"nixos_with_nix_ld_{_identifier(label)}")
    if libraries is not None:  # NixOS's default needs no word; any other set is named
        name += "_libs_" + ("_".join(_identifier(a) for a in libraries) if libraries else "none")
    return name


def _identifier(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", text)


def plan_vm(cells: list[PreparedCell]) -> VmPlan:
    """The machines one pin's cells need; every cell must be a NixOS cell of that one pin."""
    if not cells:
        raise ValueError("plan_vm needs at least one cell")
    pins = {c.nixpkgs for c in cells}
    if len(pins) != 1 or None in pins:
        raise LdmatrixError("a VM test runs the cells of one nixpkgs pin")
    groups: dict[tuple, tuple[tuple[str, StorePath | None, tuple[str, ...] | None], list[PreparedCell]]] = {}
    for prepared in cells:
        if prepared.root.kind is not RootKind.NIXOS:
            raise LdmatrixError(f"{prepared.cell.id}: the nixos-vm runner runs NixOS cells only")
        key = _machine_key(prepared)
        groups.setdefault((key[0], key[1].store_path if key[1] else None, key[2]), (key, []))[1].append(prepared)
    machines: list[Machine] = []
    for (label, build, libraries), members in groups.values():
        name = _machine_name(label, libraries)
        while name in {m.name for m in machines}:
            name += "_"
        machines.append(Machine(name, label, build, tuple(members), libraries))
    pin = cells[0].nixpkgs
    assert pin is not None
    return VmPlan(pin, cells[0].cell.glibc, tuple(machines))


# --------------------------------------------------------------------------- the spec

def _in_store(host: Path, store_path: str, store_dir: Path) -> bool:
    return Path(host) == store_dir / PurePosixPath(store_path).name


def _store_ref(host: Path, store_path: str, store_dir: Path) -> Ref:
    if _in_store(host, store_path, store_dir):
        return InStore(store_path, Path(host))
    return HostPath(Path(host), "ldmatrix-" + PurePosixPath(store_path).name)


def _check_env(prepared: PreparedCell) -> None:
    for key, _ in prepared.env:
        if not key or "=" in key:
            raise LdmatrixError(f"{prepared.cell.id}: environment key {key!r} cannot be passed through env -i")


def _argv(prepared: PreparedCell) -> list[str]:
    """The cell's argv in the VM: the python launch style starts the VM's own python3."""
    argv = list(prepared.argv)
    if argv and argv[0].endswith("/bin/python3"):
        argv[0] = PYTHON
    return argv


def _named_store_paths(prepared: PreparedCell) -> set[str]:
    """The store paths the cell names: in its command, its environment, its binaries' interpreter and RUNPATH."""
    texts = [*_argv(prepared), *(value for _, value in prepared.env)]
    for binary in prepared.binaries:
        texts += [binary.interpreter or "", *binary.runpath]
    return {found for text in texts for found in _STORE_PATH.findall(text)}


def _missing(prepared: PreparedCell, made_here: dict[str, Ref]) -> str:
    """Why the cell cannot run in the VM ("" when it can): it names a store path ldmatrix made itself."""
    named = sorted(path for path in _named_store_paths(prepared) if path in made_here)
    if not named:
        return ""
    return (f"it needs {named[0]}" + (f" (and {len(named) - 1} more)" if len(named) > 1 else "")
            + ", which ldmatrix made from Debian's packages: no store path of "
            + (prepared.nixpkgs.name if prepared.nixpkgs else "the pin")
            + ", so a VM of the pin cannot have it (its store is its own, and read-only); the sandbox and docker "
            "runners run this cell")


def spec(plan: VmPlan, store_dir: Path = Path("/nix/store"), boot_timeout: int = BOOT_TIMEOUT) -> dict:
    """The test's spec: machines and their cells, the pin's store paths they require. Paths are Refs.

    ``store_dir``: where the host's Nix store keeps its files (``NixStore``): paths there are the
    test's inputs (``builtins.storePath``); a store path elsewhere (made by ldmatrix from Debian's
    packages) is never put in the VM, and a cell that names one is ``missing`` it."""
    requires: dict[str, Ref] = {}
    machines = []
    for machine in plan.machines:
        cells = []
        for prepared in machine.cells:
            _check_env(prepared)
            homes = [m.host for m in prepared.mounts if m.target == HOME]
            if len(homes) != 1:
                raise LdmatrixError(f"{prepared.cell.id}: expected one mount at {HOME}, got {len(homes)}")
            launchers = {b.path for b in prepared.binaries
                         if b.reproducer in REPRODUCERS and REPRODUCERS[b.reproducer].language is Language.RUST}
            by_path = {b.path: b for b in prepared.binaries}
            files = []
            made_here: dict[str, Ref] = {}
            store_mounts = [(m.host, m.target) for m in prepared.mounts if re.fullmatch(r"/nix/store/[^/]+", m.target)]
            for mount in prepared.mounts:
                if mount.target.startswith(f"{HOME}/"):
                    src: Ref = (NixBuilt(by_path[mount.target].reproducer, mount.host) if mount.target in launchers
                                else HostPath(mount.host, "ldmatrix-" + PurePosixPath(mount.target).name))
                    files.append({"src": src, "dest": mount.target})
                # anything else outside the store (/lib64, /run, /etc) is NixOS's own in the VM
            for host, target in [*store_mounts, *((p.host_path, p.store_path) for p in prepared.root.store_paths)]:
                if prepared.nix_ld is not None and target == prepared.nix_ld.store_path:
                    continue  # the machine's programs.nix-ld.package
                ref = _store_ref(host, target, store_dir)
                if isinstance(ref, InStore):
                    requires.setdefault(target, ref)
                else:
                    made_here.setdefault(target, ref)
            cells.append({
                "id": prepared.cell.id,
                "home": HostPath(homes[0], f"ldmatrix-home-{prepared.cell.id}"),
                "home_target": HOME,
                "user": CELL_USER,
                "group": CELL_GROUP,
                "files": files,
                "cwd": prepared.cwd,
                "argv": _argv(prepared),
                "env": [[k, v] for k, v in prepared.env],
                "timeout": max(1, int(prepared.timeout + 0.999)),
                "missing": _missing(prepared, made_here),
            })
        nix_ld: dict = {"label": machine.nix_ld}
        if machine.nix_ld_build is not None:
            nix_ld["build"] = _store_ref(machine.nix_ld_build.host_path, machine.nix_ld_build.store_path, store_dir)
            nix_ld["store_path"] = machine.nix_ld_build.store_path
        machines.append({"name": machine.name, "nix_ld": nix_ld, "cells": cells,
                         "libraries": None if machine.libraries is None else list(machine.libraries)})
    release = plan.pin.release
    return {
        "pin": {"name": plan.pin.name, "rev": plan.pin.rev, "glibc": plan.glibc, "nix_ld": plan.pin.nix_ld,
                "release": None if release is None else {"version": release.version, "stub_ld": release.stub_ld,
                                                         "nix_ld_libraries": release.libraries.value}},
        "output_limit": CELL.output,
        "boot_timeout": boot_timeout,
        "shutdown_timeout": SHUTDOWN_TIMEOUT,
        "cell_allowance": CELL_ALLOWANCE,
        "machines": machines,
        "requires": [{"src": ref, "dest": dest} for dest, ref in sorted(requires.items())],
    }


def spec_timeout(value: dict) -> int:
    """The test's globalTimeout for a spec: its machines' boot and shutdown limits and its cells'."""
    cells = [cell["timeout"] for machine in value["machines"] for cell in machine["cells"]]
    return global_timeout(cells, len(value["machines"]), value["boot_timeout"], value["shutdown_timeout"])


def host_spec(value: object) -> object:
    """The spec with every Ref as its host path: what a stand-in of the driver reads."""
    if isinstance(value, (HostPath, InStore, NixBuilt)):
        return str(value.host)
    if isinstance(value, dict):
        return {k: host_spec(v) for k, v in value.items()}
    if isinstance(value, list):
        return [host_spec(v) for v in value]
    return value


def nix_value(value: object, refs: _Refs) -> str:
    """The spec as a Nix expression: every Ref a store path interpolated into a string."""
    if isinstance(value, (HostPath, InStore)):
        return f'"${{{refs.var(value)}}}"'
    if isinstance(value, NixBuilt):
        return f'"${{{refs.var(value)}}}/bin/{REPRODUCERS[value.reproducer].name}"'
    if isinstance(value, dict):
        return "{ " + " ".join(f"{nix_string(k)} = {nix_value(v, refs)};" for k, v in value.items()) + " }"
    if isinstance(value, list):
        return nix_list(nix_value(v, refs) for v in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if value is None:
        return "null"
    return nix_string(str(value))


# --------------------------------------------------------------------------- the test

def _nix_ld_package(var: str, label: str) -> str:
    """A nix-ld build as a package the way nixpkgs lays out nix-ld (NixOS links /lib64 from its tmpfiles rule)."""
    script = ("mkdir -p $out/bin $out/libexec $out/nix-support $out/lib/tmpfiles.d\n"
              f"cp ${{{var}}}/libexec/nix-ld $out/libexec/nix-ld\n"
              "chmod 555 $out/libexec/nix-ld\n"
              "ln -s ../libexec/nix-ld $out/bin/nix-ld\n"
              "echo /lib64/ld-linux-x86-64.so.2 > $out/nix-support/ldpath\n"
              "echo \"L+ /lib64/ld-linux-x86-64.so.2 - - - - $out/libexec/nix-ld\" > $out/lib/tmpfiles.d/nix-ld.conf\n")
    literal = nix_string(script).replace(f"\\${{{var}}}", f"${{{var}}}")
    return f"pkgs.runCommand {nix_string(store_name('nix-ld-' + label))} {{ }} {literal}"


def nix_libraries(attributes: tuple[str, ...]) -> str:
    """``programs.nix-ld.libraries`` for a library set: ``none`` forced empty (24.05+ adds the base list
    in config, and ``[ ]`` alone would merge with it); a listed set as written, merging or replacing
    as the pin's release does."""
    if not attributes:
        return "lib.mkForce [ ]"
    return nix_list(f"pkgs.{attr}" for attr in attributes)


def generate_test(plan: VmPlan, store_dir: Path = Path("/nix/store")) -> str:
    """The Nix text of one runNixOSTest for the plan's pin, running its cells machine by machine."""
    pin = plan.pin
    refs = _Refs()
    value = spec(plan, store_dir)
    spec_expr = nix_value(value, refs)
    python = any(arg == PYTHON for c in value["machines"] for cell in c["cells"] for arg in cell["argv"][:1])
    nodes = []
    for machine, entry in zip(plan.machines, value["machines"]):
        lines = [f"programs.nix-ld.enable = {'false' if machine.nix_ld == NO_NIX_LD else 'true'};"]
        if "build" in entry["nix_ld"]:
            var = refs.var(entry["nix_ld"]["build"])
            lines.append(f"programs.nix-ld.package = {_nix_ld_package(var, machine.nix_ld)};")
        if machine.nix_ld != NO_NIX_LD and machine.libraries is not None:
            lines.append(f"programs.nix-ld.libraries = {nix_libraries(machine.libraries)};")
        nodes.append(f"    {machine.name} = {{ pkgs, lib, ... }}: {{ imports = [ base ]; {' '.join(lines)} }};")
    launchers = any(isinstance(r, NixBuilt) for r in refs.names)
    rust = (f"  rustRepro = builtins.path {{ path = /. + {nix_string(str(REPO_ROOT / 'rust-repro'))}; "
            f"name = \"ldmatrix-rust-repro\"; }};\n") if launchers else ""
    script = script_body(m.name for m in plan.machines)
    return f"""# Generated by ldmatrix (harness/runners/nixgen.py): NixOS {pin.name} ({pin.rev}), glibc {plan.glibc}:
# {len(plan.cells)} cells on {len(plan.machines)} machines, booted in turn. Do not edit.
let
  nixpkgs = builtins.fetchTarball {{ url = {nix_string(pin.url)}; sha256 = {nix_string(pin.sha256)}; }};
  pkgs = import nixpkgs {{ system = "{SYSTEM}"; config = {{ }}; overlays = [ ]; }};
{rust}{chr(10).join(refs.bindings())}
  spec = {spec_expr};
  base = {{ pkgs, ... }}: {{
    users.users.{CELL_USER} = {{ isNormalUser = true; uid = {CELL_UID}; group = "{CELL_GROUP}"; home = "{HOME}"; }};
    virtualisation.memorySize = 1024;
    environment.systemPackages = {"[ pkgs.python3 ]" if python else "[ ]"};
  }};
in
pkgs.testers.runNixOSTest {{
  name = {nix_string(store_name(f"ldmatrix-{pin.name}"))};
  globalTimeout = {spec_timeout(value)};
  nodes = {{
{chr(10).join(nodes)}
  }};
  testScript = "SPEC = \\"${{pkgs.writeText "ldmatrix-spec.json" (builtins.toJSON spec)}}\\"\\n" + {nix_string(script)};
}}
"""


# --------------------------------------------------------------------------- results

def _output(record: dict, name: str, limit: int) -> tuple[str, int]:
    kept = Bounded(limit, name)
    head, tail = base64.b64decode(record["head"]), base64.b64decode(record["tail"])
    kept.feed(head)
    kept.skip(int(record["size"]) - len(head) - len(tail))
    kept.feed(tail)
    return kept.result()


def parse_results(text: str, limit: int = CELL.output) -> dict[str, CommandResult | NotRun]:
    """The ``LDMATRIX-VM-RESULT`` lines of a test's output (or results file), by cell id: a run
    cell's CommandResult, or a NotRun (error) for a cell the script could not run."""
    out: dict[str, CommandResult | NotRun] = {}
    for line in text.splitlines():
        at = line.find(RESULT_TAG)
        if at < 0:
            continue
        try:
            record = json.loads(line[at + len(RESULT_TAG):])
            cell_id = str(record["id"])
            if "error" in record:
                out[cell_id] = NotRun(f"the VM test could not run it: {record['error']}", error=True)
                continue
            stdout, stdout_cut = _output(record["stdout"], "stdout", limit)
            stderr, stderr_cut = _output(record["stderr"], "stderr", limit)
            out[cell_id] = CommandResult(rc=int(record["rc"]), stdout=stdout, stderr=stderr,
                                         duration=float(record["duration"]), timed_out=bool(record["timed_out"]),
                                         stdout_cut=stdout_cut, stderr_cut=stderr_cut)
        except (ValueError, KeyError, TypeError):
            continue  # a line cut by the log: that cell counts as not reported
    return out
