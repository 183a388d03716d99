"""``ldmatrix inspect``: answers in a NixOS user's terms per release, each confirmed by a real cell."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from harness.loader import inspect
from harness import matrix as matrix_mod
from harness.cache import REPO_ROOT
from harness.model import Outcome
from harness.loader.predict import Prediction
from harness.root.release import RELEASES

LOADS = Prediction(Outcome.OK, "every library and symbol version resolves")


def _answer(release: str, attrs: tuple[str, ...]) -> inspect.Answer:
    return inspect.Answer(RELEASES[release], "2.42", attrs, LOADS, ())


@pytest.mark.parametrize("release, attrs, snippet, libs", [
    ("26.05", (), "programs.nix-ld.enable = true;   # the base libraries have all it needs", "default"),
    ("26.05", ("jq",), "programs.nix-ld.libraries = with pkgs; [ jq ];   # added to the base libraries", "jq"),
    ("23.11", ("zlib", "stdenv.cc.cc"),
     "programs.nix-ld.libraries = with pkgs; [ zlib stdenv.cc.cc ];   # the whole list: it replaces the default one",
     "zlib+stdenv.cc.cc"),
    ("23.11", (), "programs.nix-ld.enable = true;   # it needs no library (the default list does no harm)", "default"),
])
def test_the_answer_is_what_a_user_of_the_release_writes(release: str, attrs: tuple, snippet: str, libs: str) -> None:
    answer = _answer(release, attrs)
    assert answer.snippet == snippet
    assert answer.libs == libs  # the cell that confirms it has exactly what the snippet gives


def test_the_confirming_matrix_is_a_valid_matrix_of_those_cells(tmp_path: Path) -> None:
    program = tmp_path / "My Tool"
    program.write_bytes(b"\x7fELF")
    answers = [_answer("23.11", ("zlib",)), _answer("26.05", ())]
    path = tmp_path / "inspect.yaml"
    path.write_text(inspect.confirmation_matrix(program, answers, ["--version"], "2.0.6",
                                                ("https://example.invalid/nix-ld-2.0.6.tar.gz",
                                                 "sha256-I9cEWy07pUNsOfBPG7qMYHx/YmE1uxaadP3ObHu7ALQ=")))
    matrix = matrix_mod.load(path)
    assert matrix.name == "inspect-my-tool"
    ids = {c.id for c in matrix.cells}
    assert "my-tool.nix-ld-2.0.6.glibc-2.42.nixos-23.11.libs-zlib" in ids
    assert "my-tool.nix-ld-2.0.6.glibc-2.42.nixos-26.05.libs-default" in ids
    spec = matrix.binaries["my-tool"]
    assert spec.run == ("--version",) and spec.check is not None and spec.check.exit is None


@pytest.mark.slow
def test_a_static_program_runs_as_is(stub_ld: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "harness", "inspect", str(stub_ld)], capture_output=True, text=True,
                          cwd=REPO_ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"{stub_ld.name}: static: runs as is (no interpreter, no libraries to find)\n"


@pytest.mark.slow
def test_each_answer_is_confirmed_by_a_real_cell(bullseye_root, nix_ld_archives: Path, tmp_path: Path) -> None:
    """The seed's libcrypt program: libxcrypt-legacy to add on 26.05, the whole list on 23.11, each run."""
    from harness import reproducers
    from harness.cache import Cache
    from harness.progress import NullProgress

    program = reproducers.build("needs-libcrypt", bullseye_root, Cache.default(), NullProgress()).path
    done = subprocess.run([sys.executable, "-m", "harness", "inspect", str(program), "--glibc", "2.41",
                           "--nix-ld-archives", str(nix_ld_archives), "--out", str(tmp_path), "-q"],
                          capture_output=True, text=True, cwd=REPO_ROOT)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("needs-libcrypt: a dynamically linked x86-64 program")
    assert lines[1:5] == [
        "NixOS 23.11 (Tapir), glibc 2.41:",
        "  programs.nix-ld.libraries = with pkgs; [ libxcrypt-legacy ];   # the whole list: it replaces the "
        "default one",
        f"  confirmed by cell needs-libcrypt.nix-ld-2.0.6.glibc-2.41.nixos-23.11.libs-libxcrypt-legacy: ok: "
        f"exit 0   (ldmatrix show needs-libcrypt.nix-ld-2.0.6.glibc-2.41.nixos-23.11.libs-libxcrypt-legacy "
        f"--results {tmp_path}/inspect-needs-libcrypt/results.jsonl)",
        "NixOS 26.05, glibc 2.41:",
    ][:4]
    assert lines[5] == "  programs.nix-ld.libraries = with pkgs; [ libxcrypt-legacy ];   # added to the base libraries"
    assert lines[6].startswith("  confirmed by cell needs-libcrypt.nix-ld-2.0.6.glibc-2.41.nixos-26.05.libs-")
    assert (tmp_path / "inspect-needs-libcrypt" / "results.jsonl").is_file()
