"""``--nixpkgs PIN`` for real, against a Nix store made here: a pin realised with Nix (nix-instantiate,
nix-store --realise, --query --requisites), fetched by the hash `ldmatrix pins update` computed, and
the cells run in the sandbox with the host store paths bound in.

No nixpkgs and no binary cache can be reached here, so the pin's nixpkgs is a stand-in
(tests/nixpkgs_standin.py: nixpkgs' interface, Debian's packages copied by real derivations) and
the store is a local one under a temporary directory (Nix's ``--store DIR``, ``$LDMATRIX_NIX_STORE``).
Everything from the pins file on is the code a machine with nixpkgs runs.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

import nixpkgs_standin
from conftest import STANDIN_REV as REV

pytestmark = pytest.mark.slow

def test_pins_update_gives_the_hash_fetch_tarball_checks(standin_pins_file: Path, standin, local_nix_store: Path) -> None:
    from harness.nixpkgs.pins import load

    pin = load(standin_pins_file).pins[nixpkgs_standin.NAME]
    assert (pin.rev, pin.glibc, pin.nix_ld) == (REV, "2.36", "2.0.6")
    assert pin.sha256 and pin.refusal("test") is None

    def fetch_tarball(sha256: str) -> subprocess.CompletedProcess:
        expr = f'builtins.fetchTarball {{ url = "{standin.archive.as_uri()}"; sha256 = "{sha256}"; }}'
        return subprocess.run(["nix-instantiate", "--store", str(local_nix_store), "--eval", "--read-write-mode", "-E", expr],
                              capture_output=True, text=True)

    assert fetch_tarball(pin.sha256).returncode == 0  # Nix computes the same NAR hash
    wrong = fetch_tarball("sha256-" + "A" * 43 + "=")
    assert wrong.returncode != 0 and "hash mismatch" in wrong.stderr


MATRIX = """
name: standin
binaries:
  c-hello: {reproducer: hello, built_in: bullseye}
  c-needs-libcrypt: {reproducer: needs-libcrypt, built_in: bullseye}
  c-needs-glibc-2.38: {reproducer: needs-glibc-2.38, built_in: trixie}
axes:
  strategy: [none, patchelf, patchelf+LD_LIBRARY_PATH, nix-ld]
  glibc: ["2.41"]
  nix_ld: ["2.0.6"]
  libs: [none, default]
exclude:
  - {binary: c-needs-glibc-2.38, strategy: {not: patchelf}}
  - {libs: default, uses: {not: nix-ld}}
  - {libs: none, uses: nix-ld}
expect:
  - when: {strategy: none}
    outcome: missing-interpreter
  - when: {binary: c-needs-glibc-2.38, glibc: "<2.38"}
    outcome: glibc-too-old
  - when: {binary: c-needs-libcrypt, strategy: [patchelf, nix-ld]}
    outcome: missing-library
  - outcome: ok
"""


def test_cells_run_on_the_pins_own_store_paths(standin_pins_file: Path, local_nix_store: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    from harness.cli import main
    from harness.results.file import read

    matrix = tmp_path / "standin.yaml"
    matrix.write_text(MATRIX)
    out = tmp_path / "out"
    status = main(["run", str(matrix), "-q", "--out", str(out), "--pins", str(standin_pins_file),
                   "--nixpkgs", nixpkgs_standin.NAME])
    printed = capsys.readouterr().out
    results = {r.cell_id: r for r in read(out / "standin" / "results.jsonl").results}
    pin_cells = {i: r for i, r in results.items() if r.axes.get("nixpkgs") == nixpkgs_standin.NAME}
    assert status == 0, printed
    assert f"{nixpkgs_standin.NAME} · glibc 2.36" in printed  # the column: the pin and the glibc it has
    got = {i: r.outcome.value if r.outcome else r.skip_reason for i, r in pin_cells.items()}
    assert got == {
        f"c-hello.none.{nixpkgs_standin.NAME}": "missing-interpreter",
        f"c-hello.patchelf.{nixpkgs_standin.NAME}": "ok",
        f"c-hello.patchelf+LD_LIBRARY_PATH.{nixpkgs_standin.NAME}": "ok",
        f"c-hello.nix-ld-2.0.6.{nixpkgs_standin.NAME}.libs-default": "ok",
        f"c-needs-libcrypt.none.{nixpkgs_standin.NAME}": "missing-interpreter",
        f"c-needs-libcrypt.patchelf.{nixpkgs_standin.NAME}": "missing-library",
        f"c-needs-libcrypt.patchelf+LD_LIBRARY_PATH.{nixpkgs_standin.NAME}": "ok",
        f"c-needs-libcrypt.nix-ld-2.0.6.{nixpkgs_standin.NAME}.libs-default": "missing-library",
        # the rule "glibc: <2.38" compares the pin's glibc (2.36 here)
        f"c-needs-glibc-2.38.patchelf.{nixpkgs_standin.NAME}": "glibc-too-old",
    }, got
    assert results["c-needs-glibc-2.38.patchelf.glibc-2.41"].outcome.value == "ok"  # Debian's column is there too
    # The pin's own store paths, bound read-only from where that store keeps them.
    patched = pin_cells[f"c-hello.patchelf.{nixpkgs_standin.NAME}"]
    command = (Path(patched.extra["workdir"]) / "command.sh").read_text()
    store_dir = local_nix_store / "nix" / "store"
    glibc = next(p for p in store_dir.iterdir() if p.name.endswith("-glibc-2.36"))
    farm = re.search(r"--ro-bind (\S+) /nix/store ", command)  # one bind of a farm of hard links
    if farm is None:
        assert f"--ro-bind {store_dir}/{glibc.name} /nix/store/{glibc.name}" in command
    else:  # the farm's files are the Nix store's own (the same inodes)
        here = Path(farm.group(1)) / glibc.name / "lib" / "libc.so.6"
        assert here.stat().st_ino == (glibc / "lib" / "libc.so.6").stat().st_ino
        assert any(p.name.endswith("-glibc-2.36-bin") for p in Path(farm.group(1)).iterdir())
    assert "-glibc-2.36-bin" in command or farm is not None  # ldd's output, and the closure, are in the root
    nix_ld = pin_cells[f"c-hello.nix-ld-2.0.6.{nixpkgs_standin.NAME}.libs-default"]
    assert nix_ld.extra["nix_ld"].startswith(f"nixpkgs {nixpkgs_standin.NAME} (pkgs.nix-ld, /nix/store/")
    header = read(out / "standin" / "results.jsonl").header or {}
    assert header["nixpkgs"][nixpkgs_standin.NAME]["rev"] == REV


def test_a_pin_without_nix_is_skipped_with_the_reason(standin_pins_file: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    from harness.cli import main
    from harness.nixpkgs import realise
    from harness.results.file import read

    import types

    no_nix = types.SimpleNamespace(which=lambda tool: None if tool.startswith("nix") else shutil.which(tool))
    monkeypatch.setattr(realise, "shutil", no_nix)  # a machine without Nix
    matrix = tmp_path / "standin.yaml"
    matrix.write_text(MATRIX)
    status = main(["run", str(matrix), "-q", "--out", str(tmp_path / "out"), "--pins", str(standin_pins_file),
                   "--nixpkgs", nixpkgs_standin.NAME, "-k", nixpkgs_standin.NAME])
    capsys.readouterr()
    results = read(tmp_path / "out" / "standin" / "results.jsonl").results
    assert status == 0 and results
    for result in results:
        assert result.outcome is None
        assert result.skip_reason.startswith("no Nix here (nix-instantiate, nix-store not found)"), result.skip_reason
        assert "\n" not in result.skip_reason
