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

from harness import data_text
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
TEST_SCRIPT = data_text("vm_test_script.py")  # harness/data/vm_test_script.py


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
