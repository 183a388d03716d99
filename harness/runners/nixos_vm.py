"""The nixos-vm runner: cells in real NixOS VMs of a nixpkgs pin, with the pin's own glibc and nix-ld.

The matrix axis for this runner is the pin (``--nixpkgs PIN``): a cell on a pin's glibc build runs
in that pin's NixOS (harness/runners/nixgen.py: one ``runNixOSTest`` per pin, one VM per nix-ld the pin's
cells need, booted in turn), built with ``nix-build``. The session hands the runner every cell at
once (``run_batch``). A cell on Debian's glibc is skipped (it runs in the sandbox or docker), and
so is the container strategy. Needs ``nix-build``, Nix's system features ``kvm`` and ``nixos-test``
(what a NixOS test's derivation requires: without them Nix refuses to build it), a usable /dev/kvm
and a binary cache nix can reach (the VM's closure is ~1 GB); otherwise unavailable() says what to
supply and the session skips every cell. A cell the VM should have run and did not (nix-build
failed or timed out, its machine did not boot in time, the script could not run it) is a NotRun
with ``error``: ``error`` with that reason, never a made-up exit status. nix-build's own limit is
the test's ``globalTimeout`` (harness/runners/vm_script.py) plus the time to fetch and build it.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from harness.errors import LdmatrixError
from harness.model import CommandResult, NotRun, PreparedCell, RootKind
from harness.nixpkgs.realise import NixStore
from harness.results import command_script
from harness.runners.base import Runner
from harness.runners.nixgen import generate_test, parse_results, plan_vm, spec, spec_timeout
from harness.runners.vm_script import BUILD_ALLOWANCE, RESULTS_FILE

KVM_CREATE_VM = 0xAE01
FEATURES = ("kvm", "nixos-test")  # the requiredSystemFeatures of a NixOS test's derivation
_NEEDS = "needs nix and /dev/kvm: run on a NixOS or Nix machine with KVM and network access to a binary cache"


def kvm_problem(device: str = "/dev/kvm") -> str | None:
    """None when a VM can be created through ``device``, else what is wrong with it."""
    try:
        fd = os.open(device, os.O_RDWR | os.O_CLOEXEC)
    except OSError as err:
        if err.errno == errno.ENOENT:
            return f"{device} is missing"
        return f"{device} cannot be opened ({err.strerror})"
    try:
        vm = fcntl.ioctl(fd, KVM_CREATE_VM, 0)
        os.close(vm)
    except OSError as err:
        return f"{device} cannot create a VM ({err.strerror})"
    finally:
        os.close(fd)
    return None


def nix_settings() -> dict | None:
    """Nix's configuration as nix itself reads it (``nix config show --json``, or ``show-config`` of
    older Nix); None when it cannot be read."""
    nix = shutil.which("nix")
    if nix is None:
        return None
    for command in (("config", "show"), ("show-config",)):
        try:
            proc = subprocess.run([nix, "--extra-experimental-features", "nix-command", *command, "--json"],
                                  capture_output=True, text=True, timeout=30)
            settings = json.loads(proc.stdout)
        except (OSError, subprocess.SubprocessError, ValueError):
            continue
        if proc.returncode == 0 and isinstance(settings, dict):
            return settings
    return None


def _setting(settings: dict | None, name: str) -> list[str] | None:
    try:
        value = settings[name]["value"] if settings is not None else None
    except (KeyError, TypeError):
        return None
    return [str(v) for v in value] if isinstance(value, list) else None


def nix_substituter(settings: dict | None = None) -> str | None:
    """The first binary cache nix itself is configured with (its built-in default unless changed)."""
    values = _setting(settings if settings is not None else nix_settings(), "substituters")
    return values[0] if values else None


def features_problem(settings: dict | None) -> str | None:
    """None when Nix offers the system features a NixOS test requires, else what is missing and how to add it."""
    features = _setting(settings, "system-features")
    if features is None:
        return "nix's system-features cannot be read (nix config show --json)"
    missing = [f for f in FEATURES if f not in features]
    if not missing:
        return None
    return (f"nix's system-features lack {' and '.join(missing)} (a NixOS test requires kvm and nixos-test: add "
            f"`extra-system-features = {' '.join(FEATURES)}` to nix.conf, and make /dev/kvm usable)")


def cache_problem(substituter: str, timeout: float = 5.0) -> str | None:
    url = substituter.rstrip("/") + "/nix-cache-info"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            response.read(256)
    except (urllib.error.URLError, OSError, ValueError) as err:
        reason = getattr(err, "reason", err)
        return f"{url} is not reachable ({reason})"
    return None


def _not_run(reason: str) -> NotRun:
    """A cell that should have run in a VM and did not: the session records it as ``error`` with ``reason``."""
    return NotRun(reason, error=True)


def _cannot_run(reason: str) -> NotRun:
    """A cell this runner cannot run at all (Debian's glibc, not a NixOS cell): skipped with ``reason``."""
    return NotRun(reason, error=False)


def why_not_in_a_vm(prepared: PreparedCell) -> str | None:
    """Why this runner cannot run the cell at all, or None."""
    if prepared.root.kind is not RootKind.NIXOS:
        return ("the nixos-vm runner runs NixOS cells only; run the container strategy with the sandbox or "
                "docker runner")
    if prepared.nixpkgs is None:
        return (f"the nixos-vm runner runs a nixpkgs pin's own NixOS, and this cell's glibc {prepared.cell.glibc} is "
                "Debian's: it runs with the sandbox or docker runner; pass --nixpkgs PIN for a VM column")
    return None


class NixosVmRunner(Runner):
    name = "nixos-vm"
    batches = True  # one VM test per pin, every cell of the pin in it

    def __init__(self, substituter: str | None = None, kvm_device: str = "/dev/kvm", check_network: bool = True,
                 store: NixStore | None = None) -> None:
        self.substituter = substituter or os.environ.get("LDMATRIX_NIX_SUBSTITUTER") or None
        self.kvm_device = kvm_device
        self.check_network = check_network
        self.store = store or NixStore.from_env()
        self.nix_build = shutil.which("nix-build")
        self._reason: str | None = None
        self._checked = False

    # ---------------------------------------------------------------- contract

    def unavailable(self) -> str | None:
        if not self._checked:
            self._reason = self._probe()
            self._checked = True
        return self._reason

    def _probe(self) -> str | None:
        if self.nix_build is None:
            return f"{_NEEDS}; here nix-build is not on PATH"
        settings = nix_settings()
        features = features_problem(settings)
        if features is not None:
            return f"{_NEEDS}; here {features}"
        kvm = kvm_problem(self.kvm_device)
        if kvm is not None:
            return f"{_NEEDS}; here {kvm}"
        if self.check_network:
            substituter = self.substituter or nix_substituter(settings)
            if substituter is None:
                return f"{_NEEDS}; here nix names no binary cache (set LDMATRIX_NIX_SUBSTITUTER)"
            cache = cache_problem(substituter)
            if cache is not None:
                return f"{_NEEDS}; here {cache} (set LDMATRIX_NIX_SUBSTITUTER for another cache)"
        return None

    def run(self, prepared: PreparedCell) -> CommandResult | NotRun:
        """One cell, one VM test (the session batches: see run_batch)."""
        return self.run_batch([prepared])[0]

    def close(self) -> None:
        pass

    # ---------------------------------------------------------------- batches

    def run_batch(self, cells: Sequence[PreparedCell]) -> list[CommandResult | NotRun]:
        """Run ``cells``: one VM test per pin, all of that pin's cells in it; results in the order of ``cells``."""
        results: dict[int, CommandResult | NotRun] = {}
        by_pin: dict[str, list[int]] = {}
        for index, prepared in enumerate(cells):
            why = why_not_in_a_vm(prepared)
            if why is not None:
                results[index] = _cannot_run(why)
                continue
            assert prepared.nixpkgs is not None
            by_pin.setdefault(prepared.nixpkgs.name, []).append(index)
        for indices in by_pin.values():
            batch = [cells[i] for i in indices]
            for i, result in zip(indices, self._run_vm(batch)):
                results[i] = result
        return [results[i] for i in range(len(cells))]

    def _run_vm(self, cells: list[PreparedCell]) -> list[CommandResult | NotRun]:
        try:
            plan = plan_vm(cells)
            store_dir = self.store.host_path("/nix/store")
            text = generate_test(plan, store_dir)
            limit = spec_timeout(spec(plan, store_dir))  # the test's globalTimeout
        except LdmatrixError as err:
            return [_not_run(str(err)) for _ in cells]
        pin = plan.pin.name
        parent = cells[0].workdir.parent.parent / "nixos-vm"  # <out>/<matrix>/nixos-vm/, beside cells/
        parent.mkdir(parents=True, exist_ok=True)
        workdir = Path(tempfile.mkdtemp(prefix=f"{pin}-", dir=parent))
        nix_file = workdir / f"{pin}-test.nix"
        nix_file.write_text(text, encoding="utf-8")
        out_link = workdir / f"{pin}-result"
        log_path = workdir / f"{pin}-build.log"
        argv = [self.nix_build or "nix-build", *self.store.args, str(nix_file), "-o", str(out_link)]
        script = command_script.script(argv, title=f"ldmatrix: the NixOS {pin} VM test of {len(cells)} cells "
                                                   f"({nix_file})")
        for directory in (workdir, *(c.workdir for c in cells)):  # each cell's folder: the test that ran it
            directory.mkdir(parents=True, exist_ok=True)
            (directory / command_script.NAME).write_text(script)
        budget = BUILD_ALLOWANCE + limit  # fetching and building, then the driver within its globalTimeout
        started = time.monotonic()
        with log_path.open("w", encoding="utf-8") as log:
            try:
                rc: int | None = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                                timeout=budget).returncode
            except subprocess.TimeoutExpired:
                rc = None
        elapsed = time.monotonic() - started
        reported = parse_results(log_path.read_text(encoding="utf-8", errors="replace"))
        results_file = out_link / RESULTS_FILE
        if results_file.is_file():
            reported.update(parse_results(results_file.read_text(encoding="utf-8", errors="replace")))
        why = (f"nix-build timed out after {elapsed:.0f}s" if rc is None
               else f"nix-build exited {rc}" if rc != 0 else "the test did not report this cell")
        return [reported.get(c.cell.id) or _not_run(f"{why}; log: {log_path}") for c in cells]
