"""The nixos-vm runner: cells in a real NixOS VM of a nixpkgs pin, with the real programs.nix-ld.

Per nixpkgs pin (harness/data/nixpkgs-pins.json) it generates a ``pkgs.testers.runNixOSTest``
(harness/nixgen.py) and builds it with ``nix-build``; the test's output carries one result line
per cell, read back into a CommandResult. Needs ``nix-build``, a usable /dev/kvm and network
access to a binary cache (the VM's closure is ~1 GB); otherwise unavailable() says what to supply
and the session skips every cell.

Which pin runs a cell: the pin whose glibc is the cell's glibc (23.11 2.38, 24.05 2.39,
24.11/25.05 2.40; the first listed wins), or the one named by ``release=`` /
``$LDMATRIX_NIXOS_RELEASE`` for every cell. A nix-ld cell's label must be in that pin's ``nix_ld``
table (it picks ``programs.nix-ld.package``); nix-ld and glibc are the pin's, never imitated.
A cell no pin can run is answered with a NotRun that says so (skipped); the container strategy
is not run in a VM (its FHS root is the sandbox's and docker's business). A cell the VM should
have run and did not (nix-build failed, timed out, or did not report it) is a NotRun with
``error``: the session records ``error`` with that reason, never a made-up exit status.

``run(prepared)`` boots one VM for one cell (about a minute); ``run_batch(cells)`` runs many
cells per VM, one VM per (pin, nix-ld package).
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
from pathlib import Path

from harness import command_script
from harness.errors import LdmatrixError
from harness.model import CommandResult, NotRun, PreparedCell, RootKind
from harness.nixgen import RESULTS_FILE, NixpkgsPin, generate_test, load_pins, parse_results

KVM_CREATE_VM = 0xAE01
BOOT_ALLOWANCE = 1800.0  # seconds for fetching the closure and booting, on top of the cells' timeouts
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


def nix_substituter() -> str | None:
    """The first binary cache nix itself is configured with (its built-in default unless changed)."""
    nix = shutil.which("nix")
    if nix is None:
        return None
    try:
        proc = subprocess.run([nix, "--extra-experimental-features", "nix-command", "show-config", "--json"],
                              capture_output=True, text=True, timeout=30)
        values = json.loads(proc.stdout)["substituters"]["value"]
    except (OSError, subprocess.SubprocessError, ValueError, KeyError, TypeError):
        return None
    return values[0] if values else None


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
    """A cell this runner cannot run at all (no pin for it, not a NixOS cell): skipped with ``reason``."""
    return NotRun(reason, error=False)


class NixosVmRunner:
    name = "nixos-vm"

    def __init__(self, release: str | None = None, pins: dict[str, NixpkgsPin] | None = None,
                 substituter: str | None = None, kvm_device: str = "/dev/kvm", check_network: bool = True) -> None:
        self.pins = pins if pins is not None else load_pins()
        self.release = release or os.environ.get("LDMATRIX_NIXOS_RELEASE") or None
        if self.release is not None and self.release not in self.pins:
            raise LdmatrixError(f"nixos-vm: unknown NixOS release {self.release!r} "
                                f"(allowed: {', '.join(self.pins)})")
        self.substituter = substituter or os.environ.get("LDMATRIX_NIX_SUBSTITUTER") or None
        self.kvm_device = kvm_device
        self.check_network = check_network
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
        kvm = kvm_problem(self.kvm_device)
        if kvm is not None:
            return f"{_NEEDS}; here {kvm}"
        if self.check_network:
            substituter = self.substituter or nix_substituter()
            if substituter is None:
                return f"{_NEEDS}; here nix names no binary cache (set LDMATRIX_NIX_SUBSTITUTER)"
            cache = cache_problem(substituter)
            if cache is not None:
                return f"{_NEEDS}; here {cache} (set LDMATRIX_NIX_SUBSTITUTER for another cache)"
        return None

    def run(self, prepared: PreparedCell) -> CommandResult | NotRun:
        return self.run_batch([prepared])[0]

    def close(self) -> None:
        pass

    # ---------------------------------------------------------------- pins

    def pin_for(self, prepared: PreparedCell) -> tuple[NixpkgsPin, str | None] | str:
        """The pin and nix-ld package attribute for a cell, or why no pin can run it."""
        cell = prepared.cell
        if self.release is not None:
            candidates = [self.pins[self.release]]
        else:
            candidates = [pin for pin in self.pins.values() if pin.glibc == cell.glibc]
            if not candidates:
                have = ", ".join(f"{p.release} {p.glibc}" for p in self.pins.values())
                return (f"no nixpkgs pin has glibc {cell.glibc} (pins: {have}); "
                        "set LDMATRIX_NIXOS_RELEASE to run every cell on one release")
        if cell.nix_ld is None:
            return candidates[0], None
        for pin in candidates:
            if cell.nix_ld in pin.nix_ld:
                return pin, pin.nix_ld[cell.nix_ld]
        have = "; ".join(f"{p.release}: {', '.join(p.nix_ld) or 'none'}" for p in candidates)
        return f"no pin for glibc {cell.glibc} has nix-ld {cell.nix_ld} (nix-ld by pin: {have})"

    # ---------------------------------------------------------------- batches

    def run_batch(self, cells: list[PreparedCell]) -> list[CommandResult | NotRun]:
        """Run ``cells``, one VM per (pin, nix-ld package); results in the order of ``cells``."""
        results: dict[int, CommandResult | NotRun] = {}
        groups: dict[tuple[str, str | None], list[int]] = {}
        pins: dict[str, NixpkgsPin] = {}
        for index, prepared in enumerate(cells):
            if prepared.root.kind is not RootKind.NIXOS:
                results[index] = _cannot_run("the nixos-vm runner runs NixOS cells only; run the container "
                                             "strategy with the sandbox or docker runner")
                continue
            choice = self.pin_for(prepared)
            if isinstance(choice, str):
                results[index] = _cannot_run(choice)
                continue
            pin, attr = choice
            pins[pin.release] = pin
            groups.setdefault((pin.release, attr), []).append(index)
        for (release, attr), indices in groups.items():
            batch = [cells[i] for i in indices]
            for i, result in zip(indices, self._run_vm(pins[release], attr, batch)):
                results[i] = result
        return [results[i] for i in range(len(cells))]

    def _run_vm(self, pin: NixpkgsPin, attr: str | None, cells: list[PreparedCell]) -> list[CommandResult | NotRun]:
        try:
            text = generate_test(pin, cells, attr)
        except LdmatrixError as err:
            return [_not_run(str(err)) for _ in cells]
        if len(cells) == 1:
            workdir = cells[0].workdir
            workdir.mkdir(parents=True, exist_ok=True)
        else:
            parent = cells[0].workdir.parent
            parent.mkdir(parents=True, exist_ok=True)
            workdir = Path(tempfile.mkdtemp(prefix=f"nixos-{pin.release}-", dir=parent))
        nix_file = workdir / f"nixos-{pin.release}-test.nix"
        nix_file.write_text(text, encoding="utf-8")
        out_link = workdir / f"nixos-{pin.release}-result"
        log_path = workdir / f"nixos-{pin.release}-build.log"
        argv = [self.nix_build or "nix-build", str(nix_file), "-o", str(out_link)]
        (workdir / command_script.NAME).write_text(command_script.script(
            argv, title=f"ldmatrix: NixOS {pin.release} VM test of {', '.join(c.cell.id for c in cells)}"))
        budget = BOOT_ALLOWANCE + sum(c.timeout + 30 for c in cells)
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
        why = ("nix-build timed out after {:.0f}s".format(elapsed) if rc is None
               else f"nix-build exited {rc}" if rc != 0 else "the test did not report this cell")
        return [reported.get(c.cell.id) or _not_run(f"{why}; log: {log_path}") for c in cells]
