"""The loader worked out from ELF files (harness/loader/predict.py), on the host's own glibc and /bin/true:
fast, and every answer comes from reading real files."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from harness.loader import elf
from harness.model import Outcome
from harness.loader.predict import RootView, agrees, simulate, view_of

HOST_LIBS = Path("/lib/x86_64-linux-gnu")
STORE_GLIBC = "/nix/store/0000-glibc/lib"
PROGRAM = "/home/user/bin/true"

pytestmark = pytest.mark.skipif(not (HOST_LIBS / "libc.so.6").is_file(), reason="needs a Debian-like host glibc")


def view(tmp_path: Path) -> RootView:
    return view_of([(STORE_GLIBC, HOST_LIBS), (PROGRAM, Path("/bin/true"))])


def patched(**changes) -> elf.ElfInfo:
    info = elf.read("/bin/true")
    return dataclasses.replace(info, **{"interpreter": f"{STORE_GLIBC}/ld-linux-x86-64.so.2",
                                        "runpath": (STORE_GLIBC,), **changes})


def test_a_foreign_program_has_no_interpreter_in_a_nixos_root(tmp_path: Path) -> None:
    got = simulate(elf.read("/bin/true"), PROGRAM, view(tmp_path), {})
    assert got.outcome is Outcome.MISSING_INTERPRETER and "/lib64/ld-linux-x86-64.so.2 does not exist" in got.reason


def test_patched_into_the_store_it_loads(tmp_path: Path) -> None:
    got = simulate(patched(), PROGRAM, view(tmp_path), {})
    assert got.outcome is Outcome.OK
    assert [(r.soname, r.found) for r in got.resolutions] == [("libc.so.6", f"{STORE_GLIBC}/libc.so.6")]


def test_without_a_runpath_libc_is_missing_unless_ld_library_path_names_it(tmp_path: Path) -> None:
    missing = simulate(patched(runpath=()), PROGRAM, view(tmp_path), {})
    assert missing.outcome is Outcome.MISSING_LIBRARY and missing.unresolved == ("libc.so.6",)
    found = simulate(patched(runpath=()), PROGRAM, view(tmp_path), {"LD_LIBRARY_PATH": f"/nope:{STORE_GLIBC}"})
    assert found.outcome is Outcome.OK


def test_a_glibc_version_the_store_glibc_lacks_is_glibc_too_old(tmp_path: Path) -> None:
    got = simulate(patched(requires={"libc.so.6": ("GLIBC_2.2.5", "GLIBC_9.99")}), PROGRAM, view(tmp_path), {})
    assert got.outcome is Outcome.GLIBC_TOO_OLD and "libc.so.6 defines no GLIBC_9.99" in got.reason


def test_nix_ld_runs_nix_lds_loader_with_its_library_path(tmp_path: Path) -> None:
    env = {"NIX_LD": f"{STORE_GLIBC}/ld-linux-x86-64.so.2", "NIX_LD_LIBRARY_PATH": STORE_GLIBC}
    got = simulate(elf.read("/bin/true"), PROGRAM, view(tmp_path), env, interpreter_is_nix_ld=True)
    assert got.outcome is Outcome.OK
    unset = simulate(elf.read("/bin/true"), PROGRAM, view(tmp_path), {}, interpreter_is_nix_ld=True)
    assert unset.outcome is Outcome.ERROR and "NIX_LD (unset)" in unset.reason


def test_links_in_the_root_and_in_mounted_trees_are_followed(tmp_path: Path) -> None:
    overlay = tmp_path / "run"
    (overlay / "lib").mkdir(parents=True)
    (overlay / "lib" / "libc.so.6").symlink_to(f"{STORE_GLIBC}/libc.so.6")
    root = view_of([(STORE_GLIBC, HOST_LIBS), ("/run", overlay)], [("/lib64", "/run/lib")])
    assert root.resolve("/lib64/libc.so.6") == HOST_LIBS / "libc.so.6"
    assert root.resolve("/run/lib/absent.so") is None and root.resolve("/elsewhere") is None


@pytest.mark.parametrize("predicted, ran, same", [
    (Outcome.OK, Outcome.ENV_CORRUPTED, True),  # it loaded; what it then does is the run's finding
    (Outcome.OK, Outcome.MISSING_LIBRARY, False),
    (Outcome.MISSING_LIBRARY, Outcome.CRASH, False),  # e.g. nix-ld 2.0.5 crashing before ld.so says anything
    (Outcome.GLIBC_TOO_OLD, Outcome.GLIBC_TOO_OLD, True),
])
def test_agreement_is_about_the_loader(predicted: Outcome, ran: Outcome, same: bool) -> None:
    assert agrees(predicted, ran) is same


def test_a_relative_path_is_in_no_mount(tmp_path: Path) -> None:
    """A RUNPATH entry like ``lib`` (no $ORIGIN, not absolute) names nothing in the root; looking it up ends."""
    root = view_of([("/nix/store/x", tmp_path), ("/", tmp_path)])
    assert root.resolve("lib/libz.so.1") is None and root.resolve("") is None
