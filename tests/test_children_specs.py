"""Prebuilt parents and their children, nix-ld's own tests' fixtures, library directories of ours:
how a matrix writes them, what a mistake says, and what the cells get. Fast."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from harness import matrix
from harness.errors import MatrixError
from harness.model import Strategy

FAMILY = """\
binaries:
  c-envprint: {reproducer: envprint, built_in: bullseye}
  newer: {reproducer: envprint-newer, built_in: sid, nix_built: {glibc: "2.43", libs: [stdenv.cc.cc]}}
  parent: {reproducer: spawn-child, built_in: bullseye, child: newer}
  fixture: {nix_ld_test: ld-path-restore, source: "2.0.6", built_in: bullseye, child: c-envprint,
            expect: {output: [a, b]}}
libraries:
  libtest: {nix_ld_test: libtest, source: "2.0.6", built_in: bullseye}
axes:
  strategy: [patchelf, nix-ld]
  glibc: ["2.36"]
  nix_ld: ["2.0.6"]
  libs: [none, libtest]
expect:
  - outcome: ok
"""


def load(tmp_path: Path, text: str) -> matrix.Matrix:
    path = tmp_path / "m.yaml"
    path.write_text(textwrap.dedent(text))
    return matrix.load(path)


def error_of(tmp_path: Path, text: str) -> str:
    with pytest.raises(MatrixError) as info:
        load(tmp_path, text)
    assert "\n" not in str(info.value)
    return str(info.value)


def test_a_family_and_a_fixture_load(tmp_path: Path) -> None:
    m = load(tmp_path, FAMILY)
    parent, newer, fixture = m.binaries["parent"], m.binaries["newer"], m.binaries["fixture"]
    assert parent.prebuilt_parent and parent.passes_child and matrix.subject(m.binaries, "parent") is parent
    assert newer.nix_built == matrix.NixBuilt("2.43", ("stdenv.cc.cc",))
    assert fixture.prebuilt_parent and not fixture.passes_child  # it starts OUT_DIR/dt-needed itself
    assert fixture.check is not None and fixture.check.patterns == ("a", "b")
    assert {c.binary for c in m.cells} == {"c-envprint", "parent", "fixture"}  # a Nix-built one only as a child
    assert m.own_libraries["libtest"].nix_ld_test == matrix.NixLdTest("libtest", "2.0.6", "bullseye")
    nix_ld = next(c for c in m.cells if c.binary == "fixture" and Strategy.NIX_LD in c.strategy and c.libs == "libtest")
    assert m.libs_label(nix_ld) == "mkForce [] NIX_LD_LIBRARY_PATH=[libtest]"


@pytest.mark.parametrize("old, new, message", [
    ('nix_built: {glibc: "2.43"', 'nix_built: {glibc: "2.99"', r"binaries.newer.nix_built.glibc: unknown glibc '2\.99'"),
    ("libs: [stdenv.cc.cc]}}", "libs: [stdenv.cc]}}", "unknown library 'stdenv.cc'"),
    ("nix_ld_test: ld-path-restore,", "nix_ld_test: ld-path-restor,", "unknown test fixture of nix-ld"),
    ('source: "2.0.6", built_in: bullseye, child', 'built_in: bullseye, child', "binaries.fixture.source: is required"),
    ("libs: [none, libtest]", "libs: [none, libtset]", "unknown library 'libtset'"),
    ("  libtest: {nix_ld_test: libtest,", "  zlib: {nix_ld_test: libtest,", "a library set already"),
    ("  libtest: {nix_ld_test: libtest,", "  libtest: {dir: ./nowhere, nix_ld_test: libtest,", "say what it is, once"),
    ("  glibc: [\"2.36\"]", "  binary: [newer]\n  glibc: [\"2.36\"]", "newer is Nix-built"),
])
def test_a_mistake_is_one_line(tmp_path: Path, old: str, new: str, message: str) -> None:
    assert old in FAMILY
    assert re.search(message, error_of(tmp_path, FAMILY.replace(old, new, 1)))


def test_a_launcher_does_not_start_a_nix_built_program(tmp_path: Path) -> None:
    text = FAMILY.replace("  parent: {reproducer: spawn-child,", "  parent: {reproducer: spawn-env,")
    assert "a launcher (itself standing for a Nix-built program) starts a prebuilt one" in error_of(tmp_path, text)


def test_a_directory_of_ours_is_a_library_set(tmp_path: Path) -> None:
    (tmp_path / "lib").mkdir()
    m = load(tmp_path, FAMILY.replace("{nix_ld_test: libtest, source: \"2.0.6\", built_in: bullseye}", "{dir: ./lib}"))
    assert m.own_libraries["libtest"].directory == (tmp_path / "lib").resolve()
