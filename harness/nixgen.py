"""Generate the Nix expression of a NixOS VM test that runs prepared cells: pure text, no I/O but the pins.

``generate_test(pin, cells)`` gives one ``pkgs.testers.runNixOSTest`` (nixpkgs >= 23.05) for one
nixpkgs pin: a machine with ``programs.nix-ld.enable = true`` (so the *real* nix-ld and the
*real* NixOS layout of that release: /lib64 link, NIX_LD, NIX_LD_LIBRARY_PATH), the cells' files
copied in, and a Python testScript that runs each cell's argv under ``env -i K=V ...`` (so the
environment's order is the cell's) and prints one ``LDMATRIX-VM-RESULT {json}`` line per cell,
also written to ``$out/ldmatrix-results``. ``parse_results`` reads those lines back.

What goes in: the cell's home, the binaries bound into it (shared on the host, copied into the
VM's home), and every store path it names under /nix/store
(the store glibc/libxcrypt/gcc-lib a patchelf'ed binary points at) as ``builtins.path`` inputs,
copied to the same places in the VM. What does not: links and mounts outside /home and /nix/store
(the nix-ld strategy's /lib64 and /run/current-system/... layout) — in the VM, NixOS itself lays
those out. Version mapping: the pin fixes nix-ld and glibc (nixpkgs-pins.json); a cell's nix-ld
label selects ``programs.nix-ld.package`` from the pin's ``nix_ld`` table.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from harness.environments import HOME
from harness.errors import LdmatrixError
from harness.model import CommandResult, PreparedCell, RootKind

RESULT_TAG = "LDMATRIX-VM-RESULT "
RESULTS_FILE = "ldmatrix-results"
_STORE_NAME_BAD = re.compile(r"[^A-Za-z0-9+\-._?=]")


@dataclass(frozen=True)
class NixpkgsPin:
    release: str  # "24.05"
    url: str  # github.com/NixOS/nixpkgs archive
    glibc: str  # "2.39"
    sha256: str | None = None  # NAR hash of the unpacked archive; None: fetched without it
    rev: str | None = None
    nix_ld: dict[str, str] = field(default_factory=dict)  # nix-ld label -> pkgs attribute


def load_pins(path: Path | None = None) -> dict[str, NixpkgsPin]:
    """The pins of harness/data/nixpkgs-pins.json (or ``path``), by NixOS release."""
    if path is None:
        text = resources.files("harness").joinpath("data/nixpkgs-pins.json").read_text(encoding="utf-8")
        where = "harness/data/nixpkgs-pins.json"
    else:
        text, where = path.read_text(encoding="utf-8"), str(path)
    try:
        releases = json.loads(text)["releases"]
        return {
            release: NixpkgsPin(release=release, url=entry["url"], glibc=entry["glibc"], sha256=entry.get("sha256"),
                                rev=entry.get("rev"), nix_ld=dict(entry.get("nix_ld") or {}))
            for release, entry in releases.items()
        }
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise LdmatrixError(f"{where}: not a pins file (releases -> {{url, glibc, sha256, rev, nix_ld}}): {err!r}") from err


def nix_string(s: str) -> str:
    """``s`` as a double-quoted Nix string literal: escapes \\, ", ${ and control characters."""
    if "\0" in s:
        raise ValueError("a Nix string cannot hold a NUL byte")
    out = (s.replace("\\", "\\\\").replace('"', '\\"').replace("${", "\\${")
           .replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t"))
    return f'"{out}"'


def nix_list(items: list[str]) -> str:
    return "[ " + " ".join(items) + " ]" if items else "[ ]"


def store_name(text: str) -> str:
    """A valid store path name (``builtins.path``'s name) made from ``text``."""
    name = _STORE_NAME_BAD.sub("-", text).lstrip(".")[:200]
    return name or "unnamed"


def _host_path(path: Path, name: str) -> str:
    """A ``builtins.path`` copying a host path into the store (any characters: ``/. + "..."``)."""
    absolute = str(Path(path).absolute())
    return f"builtins.path {{ path = /. + {nix_string(absolute)}; name = {nix_string(store_name(name))}; }}"


@dataclass(frozen=True)
class CellFiles:
    """What of a prepared cell goes into the VM, and what NixOS itself provides there."""

    home: Path
    home_files: tuple[tuple[Path, str], ...]  # (host, /home/user/...): files bound into HOME (the binaries)
    stores: tuple[tuple[Path, str], ...]  # (host, /nix/store/...)
    left_to_nixos: tuple[str, ...]  # mount targets the VM's NixOS provides (/lib64, /run)


def cell_files(prepared: PreparedCell) -> CellFiles:
    if prepared.root.kind is not RootKind.NIXOS:
        raise LdmatrixError(f"{prepared.cell.id}: the nixos-vm runner runs NixOS cells only "
                            f"(root {prepared.root.kind.value}); run the container strategy with sandbox or docker")
    home = [m.host for m in prepared.mounts if m.target == HOME]
    if len(home) != 1:
        raise LdmatrixError(f"{prepared.cell.id}: expected one mount at {HOME}, got {len(home)}")
    stores: dict[str, Path] = {p.store_path: p.host_path for p in prepared.root.store_paths}
    left: list[str] = []
    home_files: list[tuple[Path, str]] = []
    for mount in prepared.mounts:
        if mount.target == HOME:
            continue
        if mount.target.startswith(f"{HOME}/"):
            home_files.append((mount.host, mount.target))
        elif mount.target.startswith("/nix/store/") and mount.target.count("/") == 3:
            stores.setdefault(mount.target, mount.host)
        else:
            left.append(mount.target)
    return CellFiles(home[0], tuple(home_files), tuple((host, dest) for dest, host in sorted(stores.items())),
                     tuple(left))


def _check_env(prepared: PreparedCell) -> None:
    for key, _ in prepared.env:
        if not key or "=" in key:
            raise LdmatrixError(f"{prepared.cell.id}: environment key {key!r} cannot be passed through env -i")


# The testScript: fixed Python; every cell-specific value comes from the JSON spec file.
TEST_SCRIPT = r'''
import base64, json, os, shlex, time

spec = json.load(open(SPEC))
q = shlex.quote
machine.wait_for_unit("multi-user.target")
# Store paths of the cells (the store glibc a patchelf'ed binary points at) go to their own names.
machine.succeed("mount -o remount,rw /nix/store || mount -o remount,bind,rw /nix/store")
for store in spec["stores"]:
    machine.succeed(f"rm -rf {q(store['dest'])} && cp -a {q(store['src'])} {q(store['dest'])}")
results = open(os.path.join(os.environ["out"], RESULTS_FILE), "w")
for cell in spec["cells"]:
    with subtest(cell["id"]):
        home = q(cell["home_target"])
        machine.succeed(f"rm -rf {home} /tmp/ldm.out /tmp/ldm.err /tmp/ldm.rc")
        machine.succeed(f"mkdir -p $(dirname {home}) && cp -a {q(cell['home'])} {home} && chmod -R u+w {home}"
                        f" && mkdir -p {q(cell['cwd'])}")
        for item in cell["files"]:  # the binaries, shared on the host and bound into HOME there
            machine.succeed(f"cp {q(item['src'])} {q(item['dest'])}")
        env = " ".join(q(f"{key}={value}") for key, value in cell["env"])
        argv = " ".join(q(arg) for arg in cell["argv"])
        command = (f"cd {q(cell['cwd'])} && timeout -k 5 {cell['timeout']} env -i -- {env} {argv} "
                   "</dev/null >/tmp/ldm.out 2>/tmp/ldm.err; echo $? >/tmp/ldm.rc")
        started = time.monotonic()
        machine.execute(command)
        duration = time.monotonic() - started
        rc = int(machine.succeed("cat /tmp/ldm.rc").strip())
        record = {
            "id": cell["id"],
            "rc": rc,
            "timed_out": rc == 124,
            "duration": duration,
            "stdout": machine.succeed("base64 -w0 /tmp/ldm.out").strip(),
            "stderr": machine.succeed("base64 -w0 /tmp/ldm.err").strip(),
        }
        line = RESULT_TAG + json.dumps(record, sort_keys=True)
        print(line, flush=True)
        results.write(line + "\n")
        results.flush()
results.close()
'''


def generate_test(pin: NixpkgsPin, cells: list[PreparedCell], nix_ld_attr: str | None = None) -> str:
    """The Nix text of one runNixOSTest for ``pin`` that runs ``cells`` in order.

    ``nix_ld_attr``: the attribute of pkgs to use as ``programs.nix-ld.package``; None keeps the
    release's default nix-ld.
    """
    if not cells:
        raise ValueError("generate_test needs at least one cell")
    if nix_ld_attr is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_'\-]*", nix_ld_attr):
        raise ValueError(f"not a Nix attribute name: {nix_ld_attr!r}")
    lets: list[str] = []
    store_vars: dict[str, str] = {}  # /nix/store/... -> let name
    cell_exprs: list[str] = []
    for index, prepared in enumerate(cells):
        _check_env(prepared)
        files = cell_files(prepared)
        home_var = f"home{index}"
        lets.append(f"  {home_var} = {_host_path(files.home, f'ldmatrix-home-{prepared.cell.id}')};")
        home_files = []
        for number, (host, dest) in enumerate(files.home_files):
            var = f"home{index}file{number}"
            lets.append(f"  {var} = {_host_path(host, 'ldmatrix-' + dest.rsplit('/', 1)[1])};")
            home_files.append(f'{{ src = "${{{var}}}"; dest = {nix_string(dest)}; }}')
        for host, dest in files.stores:
            if dest not in store_vars:
                var = f"store{len(store_vars)}"
                store_vars[dest] = var
                lets.append(f"  {var} = {_host_path(host, 'ldmatrix-' + dest.rsplit('/', 1)[1])};")
        env = " ".join(f"[ {nix_string(k)} {nix_string(v)} ]" for k, v in prepared.env)
        cell_exprs.append(
            "    {\n"
            f"      id = {nix_string(prepared.cell.id)};\n"
            f"      home = \"${{{home_var}}}\";\n"
            f"      home_target = {nix_string(HOME)};\n"
            f"      files = {nix_list(home_files)};\n"
            f"      cwd = {nix_string(prepared.cwd)};\n"
            f"      argv = {nix_list([nix_string(a) for a in prepared.argv])};\n"
            f"      env = [ {env} ];\n"
            f"      timeout = {max(1, int(prepared.timeout + 0.999))};\n"
            f"      left_to_nixos = {nix_list([nix_string(t) for t in files.left_to_nixos])};\n"
            "    }"
        )
    stores = [f'{{ src = "${{{var}}}"; dest = {nix_string(dest)}; }}' for dest, var in store_vars.items()]
    fetch = f"url = {nix_string(pin.url)};"
    if pin.sha256:
        fetch += f" sha256 = {nix_string(pin.sha256)};"
    package = f"\n    programs.nix-ld.package = pkgs.{nix_ld_attr};" if nix_ld_attr else ""
    constants = f"RESULTS_FILE = {json.dumps(RESULTS_FILE)}\nRESULT_TAG = {json.dumps(RESULT_TAG)}\n"
    return f"""# Generated by ldmatrix (harness/nixgen.py): NixOS {pin.release}, glibc {pin.glibc}. Do not edit.
# Pin: {pin.rev or pin.url}{'' if pin.sha256 else ' (no sha256 recorded: fetched unverified, fixed by rev)'}
let
  nixpkgs = builtins.fetchTarball {{ {fetch} }};
  pkgs = import nixpkgs {{ system = "x86_64-linux"; config = {{ }}; overlays = [ ]; }};
{chr(10).join(lets)}
  cells = [
{chr(10).join(cell_exprs)}
  ];
  spec = pkgs.writeText "ldmatrix-cells.json" (builtins.toJSON {{
    stores = {nix_list(stores)};
    inherit cells;
  }});
in
pkgs.testers.runNixOSTest {{
  name = {nix_string(store_name(f"ldmatrix-nixos-{pin.release}"))};
  nodes.machine = {{ pkgs, ... }}: {{
    programs.nix-ld.enable = true;{package}
    virtualisation.memorySize = 1024;
  }};
  testScript = "SPEC = \\"${{spec}}\\"\\n" + {nix_string(constants + TEST_SCRIPT)};
}}
"""


def parse_results(text: str) -> dict[str, CommandResult]:
    """The ``LDMATRIX-VM-RESULT`` lines of a test's output (or results file), by cell id."""
    out: dict[str, CommandResult] = {}
    for line in text.splitlines():
        at = line.find(RESULT_TAG)
        if at < 0:
            continue
        try:
            record = json.loads(line[at + len(RESULT_TAG):])
            out[record["id"]] = CommandResult(
                rc=int(record["rc"]),
                stdout=base64.b64decode(record["stdout"]).decode(errors="replace"),
                stderr=base64.b64decode(record["stderr"]).decode(errors="replace"),
                duration=float(record["duration"]),
                timed_out=bool(record.get("timed_out", False)),
            )
        except (ValueError, KeyError, TypeError):
            continue  # a line cut by the log: that cell counts as not reported
    return out
