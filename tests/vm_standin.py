"""TEST FIXTURE: a stand-in of the NixOS test driver's ``Machine``, so the driver script ldmatrix
generates (harness/runners/vm_script.py) runs here, line for line, where no VM boots (no KVM, no binary cache).

It is not a VM and not NixOS. It gives the script the driver's API with the driver's signatures
(tests/fixtures/driver_api.py types them, as nixpkgs does for mypy; a test holds this class to
them) and no more globals than the driver gives (each node by name, ``subtest``; not ``machines``):
``start``, ``wait_for_unit``, ``shutdown``, ``crash``, ``execute(command, timeout=...)`` (the
command run by bash under ``set -euo pipefail``; the command's stdout and exit status returned; at
the time limit everything killed and status 124, as the driver's ``timeout`` gives), ``succeed``
(raises on a non-zero status, as the driver does) and ``fail``. A machine told to hang while
booting waits in ``wait_for_unit`` as the driver's ``connect`` does, until ``crash`` ends it with
the driver's "Shell disconnected" (or, past ``HANG_LIMIT``, fails the test: the script did not bound
it). Each command runs in a bubblewrap sandbox laid out like the VM's root as far as the script and
the cells need it:

- a read-only /nix/store (as NixOS mounts it) holding the test's inputs (the pin's store paths);
  the homes and files the spec names at their host paths, as the VM sees the test's inputs; /home
  and /tmp writable and kept from command to command;
- root's shell: uid 0 holding only the capabilities to change user and own files
  (harness/root/bwrap.py ``as_root``), so the script's own ``su`` makes the cell user;
- ``/run/current-system/sw/bin``, ``/run/wrappers/bin/su`` and ``/bin/sh`` from Debian's static
  busybox and bash, ``/etc/passwd`` and ``/etc/group`` with ``user`` (1000, users), and
  ``/etc/profile`` with ``/etc/set-environment`` as ldmatrix's sandbox writes them;
- on a machine with nix-ld, the layout of ``programs.nix-ld.enable`` made by ldmatrix's nix-ld
  strategy (harness/strategies/nix_ld.py) with the real nix-ld the machine names: the pin's own
  (its realised ``pkgs.nix-ld``) or the build given as ``programs.nix-ld.package``, linking the
  pin's default ``programs.nix-ld.libraries`` or none, as the machine's spec says;
- on a machine without nix-ld, what the pin's release has at ``/lib64/ld-linux-x86-64.so.2``
  (the spec's ``pin.release``, read from the pin's tree): stub-ld (harness/provision/stub_ld.py, as the
  sandbox root has it) from 24.05 on, nothing before.

What runs in the cells is real (the binaries, glibc and nix-ld); what stands in is the VM around them.
"""

from __future__ import annotations

import contextlib
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from harness.cache import installed
from harness.root.bwrap import Bind, parent_dirs, sandbox_argv
from harness.cache import Cache
from harness.root.environments import NIXOS_BASE, set_environment
from harness.root.system import PROFILE
from harness.root.limits import CELL_GID, CELL_GROUP, CELL_UID, CELL_USER
from harness.model import GlibcSet, LibrarySet, Link, StorePath
from harness.runners.sandbox import run_bounded
from harness.strategies.base import Plan, StrategyContext
from harness.strategies.nix_ld import apply as nix_ld_layout

SW_BIN = "/run/current-system/sw/bin"
APPLETS = ("cat", "chmod", "chown", "cp", "echo", "env", "head", "id", "ls", "mkdir", "rm", "sleep", "stat",
           "tail", "test", "timeout", "base64", "true", "false")
PATH = f"/run/wrappers/bin:{SW_BIN}"
LOADER = "/lib64/ld-linux-x86-64.so.2"
HANG_LIMIT = 120.0  # seconds a hanging machine waits for the script to crash it before the test fails


@dataclass
class StandinMachine:
    """TEST FIXTURE: one machine of a NixOS VM test, as the generated driver script uses it."""

    name: str
    root: Path  # this machine's state on the host: home/, tmp/
    busybox: StorePath
    bash: StorePath
    binds: tuple[tuple[Path, str], ...]  # read-only: (host, path in the machine)
    nix_ld: StorePath | None  # the machine's programs.nix-ld, or None (not enabled)
    glibc: GlibcSet  # the pin's: what the nix-ld layout's ld.so and libraries point at
    cache: Cache
    fail_start: bool = False  # stands for a machine that does not boot
    hang_boot: bool = False  # stands for a machine that never finishes booting
    libraries: tuple[StorePath, ...] = ()  # what its programs.nix-ld.libraries links
    stub_ld: StorePath | None = None  # NixOS 24.05+ without nix-ld: stub-ld at /lib64/ld-linux-x86-64.so.2
    log: list[tuple[str, object]] = field(default_factory=list)  # (method, argument): what the script asked

    def __post_init__(self) -> None:
        for part in ("home", "tmp"):
            (self.root / part).mkdir(parents=True, exist_ok=True)
        (self.root / "tmp").chmod(0o1777)
        self.booted = False
        self.crashed = threading.Event()
        self.console: list[str] = []

    # ---------------------------------------------------------------- the driver's API

    def start(self, allow_reboot: bool = False) -> None:
        self.log.append(("start", None))
        if self.fail_start:
            raise RuntimeError(f"{self.name}: the stand-in machine was told not to boot")
        self.booted = True

    def wait_for_unit(self, unit: str, user: str | None = None, timeout: int = 900) -> None:
        self.log.append(("wait_for_unit", unit))
        assert self.booted, "wait_for_unit before start"
        if self.hang_boot:  # the driver's connect(): waiting for the root shell, with no bound of its own
            if not self.crashed.wait(HANG_LIMIT):
                raise AssertionError(f"{self.name} hung for {HANG_LIMIT:.0f}s and nothing stopped it: the script "
                                     "does not bound a machine's boot")
            raise RuntimeError("Shell disconnected")  # what the driver's connect() says once QEMU is gone

    def shutdown(self) -> None:
        self.log.append(("shutdown", None))
        self.booted = False

    def crash(self) -> None:
        self.log.append(("crash", None))
        self.booted = False
        self.crashed.set()

    def execute(self, command: str, check_return: bool = True, check_output: bool = True,
                timeout: int | None = 900) -> tuple[int, str]:
        self.log.append(("execute", (command, timeout)))
        assert self.booted, "execute before start"
        argv = self._argv(["bash", "-c", f"set -euo pipefail; {command}"])
        result = run_bounded(argv, float(timeout if timeout is not None else 3600))
        self.console.append(result.stderr)  # the driver shows a command's stderr on the console, not to the script
        if result.timed_out:
            return 124, result.stdout  # what the driver's `timeout {timeout} bash -c ...` gives
        return result.rc, result.stdout

    def succeed(self, *commands: str, timeout: int | None = None) -> str:
        output = ""
        for command in commands:
            status, out = self.execute(command, timeout=timeout)
            if status != 0:
                raise Exception(f"command `{command}` failed (exit code {status})")  # noqa: TRY002 - as the driver
            output += out
        return output

    def fail(self, *commands: str, timeout: int | None = None) -> str:
        output = ""
        for command in commands:
            status, out = self.execute(command, timeout=timeout)
            if status == 0:
                raise Exception(f"command `{command}` unexpectedly succeeded")  # noqa: TRY002 - as the driver
            output += out
        return output

    # ---------------------------------------------------------------- the root

    def _system(self) -> tuple[list[Link], dict[str, str], list[StorePath]]:
        busybox = f"{self.busybox.store_path}/bin/busybox"
        links = [Link(f"{SW_BIN}/{applet}", busybox) for applet in APPLETS]
        links += [Link(f"{SW_BIN}/bash", f"{self.bash.store_path}/bin/bash"), Link("/bin/sh", busybox),
                  Link("/run/wrappers/bin/su", busybox)]
        files = {"/etc/passwd": f"root:x:0:0::/root:/bin/sh\n{CELL_USER}:x:{CELL_UID}:{CELL_GID}::/home/{CELL_USER}:"
                                f"{SW_BIN}/bash\n",
                 "/etc/group": f"root:x:0:\n{CELL_GROUP}:x:{CELL_GID}:\n"}
        store_paths = [self.busybox, self.bash]
        env = NIXOS_BASE
        if self.stub_ld is not None:  # environment.ldso: stub-ld's store path, linked by a tmpfiles rule
            links.append(Link(LOADER, self.stub_ld.store_path))
            store_paths.append(self.stub_ld)
        if self.nix_ld is not None:
            plan = Plan()
            pin_libraries = LibrarySet((), self.libraries, self.libraries)  # the pin's, each a lib output
            nix_ld_layout(plan, StrategyContext(glibc=self.glibc, build_root=None, nix_ld=self.nix_ld,
                                                nix_ld_label=self.nix_ld.version, nix_ld_libraries=pin_libraries))
            links += plan.links
            store_paths += plan.store_paths
            env = (*env, *plan.nix_ld_env)
        files["/etc/profile"] = PROFILE
        files["/etc/set-environment"] = set_environment(tuple(env))
        return links, files, store_paths

    def _argv(self, command: list[str]) -> list[str]:
        links, files, system_paths = self._system()
        root_args: list[str] = []
        made: set[str] = set()
        # /nix/store: directories on bwrap's own root, which it makes read-only last (NixOS mounts the
        # store read-only; as_root has no capability to remount it)
        root_args += [*parent_dirs("/nix/store/x", made)]
        binds: list[Bind] = []
        seen = {"/nix/store"}
        for path in (*system_paths, *self.glibc.store_paths):
            if path.store_path not in seen:
                seen.add(path.store_path)
                binds.append(Bind(path.host_path, path.store_path))
        binds += [Bind(self.root / "home", "/home", writable=True), Bind(self.root / "tmp", "/tmp", writable=True)]
        for host, target in self.binds:  # after /home and /tmp: a test's inputs may live under the host's /tmp
            if target not in seen:
                seen.add(target)
                binds.append(Bind(host, target))
        binds += [Bind(m.host, m.target) for m in installed.overlay_mounts(links, self.cache, files)]
        env = (("PATH", PATH), ("HOME", "/root"), ("USER", "root"))
        # the machine's /tmp is bound after bwrap's own tmpfs there, so it is the one seen
        return sandbox_argv(root_args, tuple(binds), (f"{SW_BIN}/bash", *command[1:]), cwd="/", env=env, as_root=True)


def machines_for(spec: dict, workdir: Path, *, busybox: StorePath, bash: StorePath, glibc: GlibcSet,
                 pin_nix_ld: StorePath, cache: Cache, stub_ld: StorePath | None = None,
                 fail_start: frozenset[str] = frozenset(),
                 hang_boot: frozenset[str] = frozenset()) -> list[StandinMachine]:
    """A stand-in machine for each machine of a host-rendered spec (harness.runners.nixgen.host_spec).

    ``stub_ld``: the stand-in of NixOS's stub-ld, for a pin whose release has it (``pin.release``)."""
    release = spec["pin"]["release"]
    if release is None:
        raise ValueError(f"{spec['pin']['name']}: the pin's release is unknown (run `pins update`): the stand-in "
                         "cannot tell what its NixOS has at /lib64")
    if release["stub_ld"] and stub_ld is None:
        raise ValueError(f"{spec['pin']['name']}: its NixOS has stub-ld: give the stand-in one (stub_ld=...)")
    inputs: list[tuple[Path, str]] = []
    for entry in spec["requires"]:  # the pin's own store paths: the VM has them in its store
        inputs.append((Path(entry["src"]), entry["dest"]))
    for machine in spec["machines"]:
        for cell in machine["cells"]:  # the test's inputs, at the paths the spec names them by
            inputs.append((Path(cell["home"]), cell["home"]))
            inputs += [(Path(item["src"]), item["src"]) for item in cell["files"] if Path(item["src"]).exists()]
    out = []
    for machine in spec["machines"]:
        nix_ld = machine["nix_ld"]
        if nix_ld["label"] == "no-nix-ld":
            chosen = None
        elif nix_ld["label"] == "pin":
            chosen = pin_nix_ld
        else:
            name = PurePosixPath(nix_ld["store_path"]).name
            digest, _, rest = name.partition("-")
            chosen = StorePath("nix-ld", nix_ld["label"], digest, Path(nix_ld["build"]))
            assert rest == f"nix-ld-{nix_ld['label']}", rest
        if machine["libraries"]:
            raise NotImplementedError(f"{machine['name']}: the stand-in lays out NixOS's default libraries or none "
                                      f"(lib.mkForce [ ]), not {machine['libraries']}")
        libraries = (glibc.nix_ld_libraries or ()) if machine["libraries"] is None else ()
        out.append(StandinMachine(machine["name"], workdir / machine["name"], busybox, bash, tuple(inputs), chosen,
                                  glibc, cache, fail_start=machine["name"] in fail_start,
                                  hang_boot=machine["name"] in hang_boot, libraries=libraries,
                                  stub_ld=stub_ld if release["stub_ld"] and chosen is None else None))
    return out


@contextlib.contextmanager
def subtest(name: str) -> Iterator[None]:
    """The driver's ``subtest``: groups a cell's commands; an exception goes on up."""
    yield


def run_script(script: str, machines: list[StandinMachine]) -> None:
    """Execute the driver script as the driver does: each node by its name and ``subtest`` as globals,
    and nothing the newer drivers do not give (no ``machines``)."""
    symbols: dict[str, object] = {"subtest": subtest, "__name__": "__main__"}
    symbols.update({m.name: m for m in machines})
    exec(compile(script, "testScript", "exec"), symbols)  # noqa: S102 - the generated script under test


def discard(machines: list[StandinMachine]) -> None:
    for machine in machines:
        shutil.rmtree(machine.root, ignore_errors=True)
