"""The NixOS VM test of one nixpkgs pin, generated as text: its Nix expression and its driver script.

``plan_vm(cells)`` groups a pin's prepared cells by the machine they need, ``generate_test(plan)``
gives one ``pkgs.testers.runNixOSTest`` (nixpkgs >= 23.05) with one machine per group, all of the
pin's own NixOS, booted one after the other:

- cells that use no nix-ld run on a machine without it (``programs.nix-ld.enable = false``, so no
  /lib64 at all, as the sandbox's NixOS-like root);
- nix-ld cells run on a machine with ``programs.nix-ld.enable = true``: the pin's own nix-ld when
  the cell's nix-ld is the pin's (``pkgs.nix-ld``), else ``programs.nix-ld.package`` set to the
  nix-ld build the cell names (built from its source by harness/nixld/, as in the sandbox), packaged
  as nixpkgs packages nix-ld (``libexec/nix-ld`` and the tmpfiles rule NixOS installs).

The glibc is the VM's own: the cells' store paths are the pin's, realised on the host
(harness/nixpkgs/realise.py) with the same nixpkgs, so the binaries patched on the host point at
the VM's glibc. Paths in the Nix store become the test's inputs (``builtins.storePath``); others
(Debian-derived tools, patched binaries, the cells' homes) are copied in with ``builtins.path``.
The Rust launchers, which stand for Nix-built programs, are built here with the pin's rustc
(``pkgs.rustc``), as the seed built its launcher; the foreign children are the Debian builds.
The launch styles use the VM's own bash, /etc/profile and python3 (the links and files the sandbox
lays out at /run, /etc and /lib64 are left to NixOS).

The driver script (``TEST_SCRIPT``) runs every cell as the user ``user`` (uid 1000, group users)
through ``su`` and ``env -i`` (so the environment's order is the cell's), with
``machine.execute(command, timeout=...)``: the driver's own status, the driver's own time limit.
The command ends with a marker line only a command that finished prints, so a program that exits
124 is not taken for the driver's ``timeout`` (which exits 124 and prints nothing after). A cell
whose setup or run raises is recorded with the error and the next cell runs. Each cell gives one
``LDMATRIX-VM-RESULT {json}`` line, also written to ``$out/ldmatrix-results``; ``parse_results``
reads them back.

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
from harness.environments import HOME
from harness.errors import LdmatrixError
from harness.limits import CELL, CELL_GROUP, CELL_UID, CELL_USER
from harness.model import CommandResult, NixpkgsSource, NotRun, PreparedCell, RootKind, StorePath
from harness.reproducers import REPRODUCERS, Language
from harness.runners.output import Bounded
from harness.system import SW_BIN

RESULT_TAG = "LDMATRIX-VM-RESULT "
RESULTS_FILE = "ldmatrix-results"
FINISHED = "LDMATRIX-VM-FINISHED"  # printed by a cell's command only once its program has ended
SYSTEM = "x86_64-linux"
SU = "/run/wrappers/bin/su"  # NixOS's su; as root it asks nothing
ENV = f"{SW_BIN}/env"
PYTHON = f"{SW_BIN}/python3"
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
            f"{{ nativeBuildInputs = [ pkgs.rustc ]; }} {nix_string(script).replace(chr(92) + '${rustRepro}', '${rustRepro}')}")


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
    machines = []
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


def spec(plan: VmPlan, store_dir: Path = Path("/nix/store")) -> dict:
    """The test's spec: machines and their cells, the store paths to copy or require. Paths are Refs.

    ``store_dir``: where the host's Nix store keeps its files (``NixStore``): paths there are the
    test's inputs (``builtins.storePath``), any other is copied (``builtins.path``)."""
    copies: dict[str, Ref] = {}
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
            for mount in prepared.mounts:
                if mount.target == HOME:
                    continue
                if mount.target.startswith(f"{HOME}/"):
                    src: Ref = (NixBuilt(by_path[mount.target].reproducer, mount.host) if mount.target in launchers
                                else HostPath(mount.host, "ldmatrix-" + PurePosixPath(mount.target).name))
                    files.append({"src": src, "dest": mount.target})
                elif re.fullmatch(r"/nix/store/[^/]+", mount.target):
                    if prepared.nix_ld is not None and mount.target == prepared.nix_ld.store_path:
                        continue  # the machine's programs.nix-ld.package
                    ref = _store_ref(mount.host, mount.target, store_dir)
                    (requires if isinstance(ref, InStore) else copies).setdefault(mount.target, ref)
                # anything else (/lib64, /run, /etc) is NixOS's own in the VM
            for store_path in prepared.root.store_paths:
                ref = _store_ref(store_path.host_path, store_path.store_path, store_dir)
                (requires if isinstance(ref, InStore) else copies).setdefault(store_path.store_path, ref)
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
            })
        nix_ld: dict = {"label": machine.nix_ld}
        if machine.nix_ld_build is not None:
            nix_ld["build"] = _store_ref(machine.nix_ld_build.host_path, machine.nix_ld_build.store_path, store_dir)
            nix_ld["store_path"] = machine.nix_ld_build.store_path
        machines.append({"name": machine.name, "nix_ld": nix_ld, "cells": cells,
                         "libraries": None if machine.libraries is None else list(machine.libraries)})
    return {
        "pin": {"name": plan.pin.name, "rev": plan.pin.rev, "glibc": plan.glibc, "nix_ld": plan.pin.nix_ld},
        "output_limit": CELL.output,
        "machines": machines,
        "copies": [{"src": ref, "dest": dest} for dest, ref in sorted(copies.items())],
        "requires": [{"src": ref, "dest": dest} for dest, ref in sorted(requires.items())],
    }


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


# --------------------------------------------------------------------------- the driver script

# Fixed Python; every cell-specific value comes from the spec (SPEC, the path of its JSON).
TEST_SCRIPT = r'''
import base64, json, os, shlex, time

spec = json.load(open(SPEC))
q = shlex.quote
OUT, ERR = "/tmp/ldmatrix.out", "/tmp/ldmatrix.err"
results = open(os.path.join(os.environ["out"], RESULTS_FILE), "w")
vms = {vm.name: vm for vm in machines}


def report(record):
    line = RESULT_TAG + json.dumps(record, sort_keys=True)
    print(line, flush=True)
    results.write(line + "\n")
    results.flush()


def read_output(vm, path, limit):
    """A file of the VM, base64: whole up to the limit, else its head and tail (the rest counted)."""
    size = int(vm.succeed(f"stat -c %s {path}").strip())
    if size <= limit:
        return {"size": size, "head": vm.succeed(f"base64 -w0 {path}").strip(), "tail": ""}
    tail = limit // 4
    return {"size": size, "head": vm.succeed(f"head -c {limit - tail} {path} | base64 -w0").strip(),
            "tail": vm.succeed(f"tail -c {tail} {path} | base64 -w0").strip()}


def run_cell(vm, cell):
    home, user = q(cell["home_target"]), q(cell["user"])
    owner = q(cell["user"] + ":" + cell["group"])
    vm.succeed(f"rm -rf {home} {OUT} {ERR} && cp -a {q(cell['home'])} {home} && chmod -R u+w {home}"
               f" && chown -R {owner} {home} && mkdir -p {q(cell['cwd'])}")
    for item in cell["files"]:  # the binaries, shared on the host and bound into HOME there
        vm.succeed(f"cp {q(item['src'])} {q(item['dest'])} && chmod 555 {q(item['dest'])}")
    env = " ".join(q(f"{key}={value}") for key, value in cell["env"])
    argv = " ".join(q(arg) for arg in cell["argv"])
    inner = f"cd {q(cell['cwd'])} && exec {ENV} -i -- {env} {argv}"
    command = (f"rc=0; {SU} -s /bin/sh {user} -c {q(inner)} </dev/null >{OUT} 2>{ERR} || rc=$?; "
               f"echo {FINISHED}; exit $rc")
    started = time.monotonic()
    status, said = vm.execute(command, timeout=cell["timeout"])
    duration = time.monotonic() - started
    finished = FINISHED in said
    return {"id": cell["id"], "rc": status, "finished": finished, "timed_out": not finished and status == 124,
            "duration": duration, "stdout": read_output(vm, OUT, spec["output_limit"]),
            "stderr": read_output(vm, ERR, spec["output_limit"])}


for machine in spec["machines"]:
    vm = vms[machine["name"]]
    try:
        vm.start()
        vm.wait_for_unit("multi-user.target")
        for store in spec["copies"]:  # store paths that are not the pin's own: to their places
            vm.succeed(f"test -e {q(store['dest'])} || cp -a {q(store['src'])} {q(store['dest'])}")
    except Exception as err:  # the machine did not come up: each of its cells says so
        for cell in machine["cells"]:
            report({"id": cell["id"], "error": f"{machine['name']} did not start: {type(err).__name__}: {err}"})
        continue
    for cell in machine["cells"]:
        try:
            with subtest(cell["id"]):
                record = run_cell(vm, cell)
        except Exception as err:  # this cell's failure, not the test's end
            record = {"id": cell["id"], "error": f"{type(err).__name__}: {err}"}
        report(record)
    vm.shutdown()
results.close()
'''


def script_constants() -> str:
    return "".join(f"{name} = {json.dumps(value)}\n" for name, value in
                   (("RESULTS_FILE", RESULTS_FILE), ("RESULT_TAG", RESULT_TAG), ("FINISHED", FINISHED),
                    ("SU", SU), ("ENV", ENV)))


def driver_script(spec_path: str) -> str:
    """The driver script as the test runs it, reading its spec from ``spec_path``."""
    return f"SPEC = {json.dumps(spec_path)}\n" + script_constants() + TEST_SCRIPT


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
            lines.append(f"programs.nix-ld.libraries = {nix_list(f'pkgs.{attr}' for attr in machine.libraries)};")
        nodes.append(f"    {machine.name} = {{ pkgs, ... }}: {{ imports = [ base ]; {' '.join(lines)} }};")
    launchers = any(isinstance(r, NixBuilt) for r in refs.names)
    rust = (f"  rustRepro = builtins.path {{ path = /. + {nix_string(str(REPO_ROOT / 'rust-repro'))}; "
            f"name = \"ldmatrix-rust-repro\"; }};\n") if launchers else ""
    script = script_constants() + TEST_SCRIPT
    return f"""# Generated by ldmatrix (harness/nixgen.py): NixOS {pin.name} ({pin.rev}), glibc {plan.glibc}:
# {len(plan.cells)} cells on {len(plan.machines)} machines, booted in turn. Do not edit.
let
  nixpkgs = builtins.fetchTarball {{ url = {nix_string(pin.url)}; sha256 = {nix_string(pin.sha256)}; }};
  pkgs = import nixpkgs {{ system = "{SYSTEM}"; config = {{ }}; overlays = [ ]; }};
{rust}{chr(10).join(refs.bindings())}
  spec = {spec_expr};
  base = {{ pkgs, ... }}: {{
    users.users.{CELL_USER} = {{ isNormalUser = true; uid = {CELL_UID}; group = "{CELL_GROUP}"; home = "{HOME}"; }};
    virtualisation.memorySize = 1024;
    virtualisation.writableStore = true;
    environment.systemPackages = {"[ pkgs.python3 ]" if python else "[ ]"};
  }};
in
pkgs.testers.runNixOSTest {{
  name = {nix_string(store_name(f"ldmatrix-{pin.name}"))};
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
