"""The driver script of ldmatrix's NixOS VM test (the ``testScript`` of harness/runners/nixgen.py), and its
time limits.

nixpkgs' test framework (nixos/lib/testing/driver.nix, test-driver/; NixOS/nixpkgs@01fbdeef,
@003d5816, @019697db read) checks a testScript before it runs it: pyflakes, with the names the
driver gives the script as builtins (each node by its name, ``subtest``, ... but not ``machines``,
which the newer drivers do not export), and mypy, with the driver's types put before it (each node
typed as the driver's machine class). Either failing fails the test's derivation, so every cell
of the pin. The script therefore imports only what it uses, reaches its machines through the node
variables by name (``run({"NAME": NAME, ...})``, the last line, generated), and declares what it
needs of a machine as a ``Protocol`` that the driver's class must satisfy (``Node``).

The driver's wait for a machine to boot (``connect``) has no bound of its own and the test's
``globalTimeout`` ends the whole test, so the script bounds each machine: a boot (``start`` and
``multi-user.target``) or a shutdown that takes longer than its limit crashes that machine (the
driver's ``crash``: QEMU quits, the wait ends in an error), its cells are reported as errors with
that reason, and the next machine boots. ``global_timeout`` is then the sum of every machine's and
cell's limits, and the runner's own limit on ``nix-build`` that plus the time to fetch and build.

The script never writes into ``/nix/store``, which NixOS mounts read-only: the pin's store paths
are the test's inputs, in the VM's store as part of its closure, and the cells' files are copied
to their home directory.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from harness.root.system import SW_BIN

RESULT_TAG = "LDMATRIX-VM-RESULT "
RESULTS_FILE = "ldmatrix-results"
FINISHED = "LDMATRIX-VM-FINISHED"  # printed by a cell's command only once its program has ended
SU = "/run/wrappers/bin/su"  # NixOS's su; as root it asks nothing
ENV = f"{SW_BIN}/env"

BOOT_TIMEOUT = 600  # seconds for one machine to boot (with KVM a NixOS test VM takes well under a minute)
SHUTDOWN_TIMEOUT = 120  # seconds for one machine to power off
CELL_ALLOWANCE = 60  # seconds to set a cell up and read its output, on top of its own time limit
DRIVER_ALLOWANCE = 300  # the driver's own start and end
BUILD_ALLOWANCE = 1800  # seconds for nix-build to fetch the closure (~1 GB) and build the machines


def global_timeout(cell_timeouts: Iterable[int], machines: int, boot: int = BOOT_TIMEOUT,
                   shutdown: int = SHUTDOWN_TIMEOUT) -> int:
    """The test's ``globalTimeout``: every machine's boot and shutdown limits and every cell's, in turn."""
    return DRIVER_ALLOWANCE + machines * (boot + shutdown) + sum(t + CELL_ALLOWANCE for t in cell_timeouts)


# Fixed Python; every cell-specific value comes from the spec (SPEC, the path of its JSON).
TEST_SCRIPT = r'''
import json
import os
import shlex
import threading
import time
import typing  # by its module name: nixpkgs puts `from typing_extensions import Protocol`, ... before the script


class Node(typing.Protocol):
    """What this script asks of a machine of the driver, with the driver's names."""

    def start(self) -> None: ...

    def wait_for_unit(self, unit: str, *, timeout: int = ...) -> None: ...

    def execute(self, command: str, *, timeout: int | None = ...) -> tuple[int, str]: ...

    def succeed(self, *commands: str, timeout: int | None = ...) -> str: ...

    def shutdown(self) -> None: ...

    def crash(self) -> None: ...


spec: dict[str, typing.Any] = json.load(open(SPEC))
q = shlex.quote
OUT, ERR = "/tmp/ldmatrix.out", "/tmp/ldmatrix.err"
results = open(os.path.join(os.environ["out"], RESULTS_FILE), "w")


def report(record: dict[str, typing.Any]) -> None:
    line = RESULT_TAG + json.dumps(record, sort_keys=True)
    print(line, flush=True)
    results.write(line + "\n")
    results.flush()


def within(vm: Node, seconds: int, what: str, action: typing.Callable[[], None]) -> None:
    """``action`` (a boot, a shutdown) in ``seconds`` at most: past them the machine is crashed,
    which ends the driver's wait in an error, and TimeoutError says so."""
    done, expired = threading.Event(), threading.Event()

    def watch() -> None:
        if not done.wait(seconds):
            expired.set()
            vm.crash()

    threading.Thread(target=watch, daemon=True).start()
    late = f"{what} took longer than {seconds}s, so the machine was stopped"
    try:
        action()
    except Exception as err:
        if expired.is_set():
            raise TimeoutError(late) from err
        raise
    finally:
        done.set()
    if expired.is_set():
        raise TimeoutError(late)


def boot(vm: Node, seconds: int) -> None:
    def up() -> None:
        vm.start()
        vm.wait_for_unit("multi-user.target", timeout=seconds)

    within(vm, seconds, "booting", up)


def read_output(vm: Node, path: str, limit: int) -> dict[str, typing.Any]:
    """A file of the VM, base64: whole up to the limit, else its head and tail (the rest counted)."""
    allowance = spec["cell_allowance"]
    size = int(vm.succeed(f"stat -c %s {path}", timeout=allowance).strip())
    if size <= limit:
        return {"size": size, "head": vm.succeed(f"base64 -w0 {path}", timeout=allowance).strip(), "tail": ""}
    tail = limit // 4
    return {"size": size,
            "head": vm.succeed(f"head -c {limit - tail} {path} | base64 -w0", timeout=allowance).strip(),
            "tail": vm.succeed(f"tail -c {tail} {path} | base64 -w0", timeout=allowance).strip()}


def run_cell(vm: Node, cell: dict[str, typing.Any]) -> dict[str, typing.Any]:
    allowance = spec["cell_allowance"]
    home, user = q(cell["home_target"]), q(cell["user"])
    owner = q(cell["user"] + ":" + cell["group"])
    vm.succeed(f"rm -rf {home} {OUT} {ERR} && cp -a {q(cell['home'])} {home} && chmod -R u+w {home}"
               f" && chown -R {owner} {home} && mkdir -p {q(cell['cwd'])}", timeout=allowance)
    for item in cell["files"]:  # the binaries, bound into HOME on the host
        vm.succeed(f"cp {q(item['src'])} {q(item['dest'])} && chmod 555 {q(item['dest'])}", timeout=allowance)
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


def run_machine(vm: Node, machine: dict[str, typing.Any]) -> None:
    try:
        boot(vm, spec["boot_timeout"])
    except Exception as err:  # the machine did not come up: each of its cells says so
        for cell in machine["cells"]:
            report({"id": cell["id"], "error": f"{machine['name']} did not start: {type(err).__name__}: {err}"})
        return
    for cell in machine["cells"]:
        if cell["missing"]:  # it names store paths the VM cannot have
            report({"id": cell["id"], "error": cell["missing"]})
            continue
        try:
            with subtest(cell["id"]):
                record = run_cell(vm, cell)
        except Exception as err:  # this cell's failure, not the test's end
            record = {"id": cell["id"], "error": f"{type(err).__name__}: {err}"}
        report(record)
    try:
        within(vm, spec["shutdown_timeout"], "shutting down", vm.shutdown)
    except Exception as err:  # its cells are reported; the next machine boots all the same
        print(f"ldmatrix: {machine['name']}: {type(err).__name__}: {err}", flush=True)


def run(nodes: typing.Mapping[str, Node]) -> None:
    for machine in spec["machines"]:
        run_machine(nodes[machine["name"]], machine)
    results.close()
'''


def script_constants() -> str:
    return "".join(f"{name} = {json.dumps(value)}\n" for name, value in
                   (("RESULTS_FILE", RESULTS_FILE), ("RESULT_TAG", RESULT_TAG), ("FINISHED", FINISHED),
                    ("SU", SU), ("ENV", ENV)))


def script_body(nodes: Iterable[str]) -> str:
    """The script after its SPEC line: the constants, the fixed script, and the call naming each node."""
    names = list(nodes)
    for name in names:
        if not name.isidentifier():
            raise ValueError(f"{name!r} is not a node name the driver can give the script")
    call = "run({" + ", ".join(f"{json.dumps(name)}: {name}" for name in names) + "})\n"
    return script_constants() + TEST_SCRIPT + "\n\n" + call


def driver_script(spec_path: str, nodes: Iterable[str]) -> str:
    """The driver script as the test runs it, reading its spec from ``spec_path``."""
    return f"SPEC = {json.dumps(spec_path)}\n" + script_body(nodes)
