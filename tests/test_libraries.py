"""Library sets: the libs axis of a matrix, the lock's closures, the Debian packages that stand for
a nixpkgs attribute. Fast (recorded Packages stanzas; the real archive is read by ldmatrix lock)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness import matrix
from harness.errors import MatrixError, ProvisionError
from harness.provision.libraries import CONFIG, LibraryConfig, depends, pick, resolve
from harness.provision.lockfile import LOCK_PATH, load_lock, parse_lock

MATRIX = """\
binaries:
  c-hello: {reproducer: hello, built_in: bullseye}
axes:
  strategy: [none, patchelf, nix-ld]
  glibc: ["2.36"]
  nix_ld: ["2.0.6"]
  libs: [none, default, [zlib, openssl], zstd+xz]
expect:
  - outcome: ok
"""


def load(tmp_path: Path, text: str = MATRIX) -> matrix.Matrix:
    path = tmp_path / "m.yaml"
    path.write_text(text)
    return matrix.load(path)


def test_libs_axis_names_each_set_and_collapses_where_nothing_offers_libraries(tmp_path: Path) -> None:
    m = load(tmp_path)
    ids = {c.id for c in m.cells}
    assert "c-hello.nix-ld-2.0.6.glibc-2.36.libs-default" in ids
    assert "c-hello.patchelf.glibc-2.36.libs-zlib+openssl" in ids
    assert "c-hello.patchelf.glibc-2.36.libs-zstd+xz" in ids
    assert {i for i in ids if i.startswith("c-hello.none.")} == {"c-hello.none.glibc-2.36"}
    assert m.library_sets["default"] == CONFIG.default and m.library_sets["zlib+openssl"] == ("zlib", "openssl")


def test_an_unknown_library_names_the_nearest(tmp_path: Path) -> None:
    with pytest.raises(MatrixError, match=r"unknown library 'opnessl'.*did you mean 'openssl'"):
        load(tmp_path, MATRIX.replace("[zlib, openssl]", "[zlib, opnessl]"))


def test_when_can_match_a_library_set(tmp_path: Path) -> None:
    m = load(tmp_path, MATRIX.replace("  - outcome: ok", "  - when: {libs: default}\n    outcome: crash\n  - outcome: ok"))
    cell = next(c for c in m.cells if c.libs == "default")
    assert m.expectation(cell).outcome.value == "crash"


INDEX = {
    "libcurl4t64": {"Package": "libcurl4t64", "Depends": "libc6 (>= 2.38), libssl3t64 (>= 3), zlib1g (>= 1:1.1.4)"},
    "libssl3t64": {"Package": "libssl3t64", "Depends": "libc6 (>= 2.38), openssl-provider-legacy"},
    "zlib1g": {"Package": "zlib1g", "Pre-Depends": "libc6 (>= 2.14)"},
    "libc6": {"Package": "libc6"},
}


def test_a_name_is_found_with_debians_t64_suffix_and_alternatives() -> None:
    assert pick("libcurl4", INDEX) == "libcurl4t64"
    assert pick("libssl3 | libssl1.1", INDEX) == "libssl3t64"
    assert pick("libnope", INDEX) is None


def test_a_closure_follows_library_dependencies_only() -> None:
    assert depends(INDEX["libcurl4t64"], INDEX) == ["libssl3t64", "zlib1g"]  # libc6 is the glibc set's
    config = LibraryConfig(("curl",), {"curl": ("libcurl4",), "legacy": ("@libxcrypt",)}, {})
    got = resolve("sid", INDEX, config)
    assert got.closures == {"curl": ("libcurl4t64", "libssl3t64", "zlib1g"), "legacy": ()}
    assert got.depends["libcurl4t64"] == ("libssl3t64", "zlib1g") and got.depends["zlib1g"] == ()


def test_a_missing_package_names_the_attribute() -> None:
    config = LibraryConfig((), {"sodium": ("libsodium99",)}, {})
    with pytest.raises(ProvisionError, match="dists/sid: no package for sodium"):
        resolve("sid", INDEX, config)


def test_an_optional_package_is_taken_where_the_suite_has_it() -> None:
    config = LibraryConfig((), {}, {"python": ("libcurl4", "?libsodium99", "?zlib1g")})
    assert resolve("sid", INDEX, config).closures == {"python": ("libcurl4t64", "zlib1g", "libssl3t64")}


def test_the_lock_says_which_specs_its_closures_come_from() -> None:
    """`ldmatrix lock --only-missing` resolves a suite again when the specs have changed since."""
    changed = LibraryConfig(CONFIG.default, CONFIG.attributes, {**CONFIG.system, "extra": ("libc-bin",)})
    assert changed.digest != CONFIG.digest
    lock = load_lock()
    assert {lock.suite(s).libraries for s in ("bullseye", "bookworm", "trixie", "sid")} == {CONFIG.digest}


def test_the_lock_pins_every_attribute_and_role_per_suite() -> None:
    lock = load_lock()
    for suite in ("bullseye", "bookworm", "trixie", "sid"):
        assert set(lock.suite(suite).closures) == set(CONFIG.closures)
        for package in lock.closure(suite, "curl"):
            lock.deb(suite, package)  # every package of a closure has its entry


def test_a_closure_naming_a_package_without_entry_is_refused(tmp_path: Path) -> None:
    raw = json.loads(LOCK_PATH.read_text())
    raw["suites"]["bookworm"]["closures"]["zlib"] = ["zlib1g", "libnotpinned"]
    with pytest.raises(ProvisionError, match="suites.bookworm.packages.libnotpinned: missing"):
        parse_lock(raw, tmp_path / "lock.json")


def test_a_lock_without_closures_says_how_to_add_them(tmp_path: Path) -> None:
    raw = json.loads(LOCK_PATH.read_text())
    del raw["suites"]["sid"]["closures"]
    with pytest.raises(ProvisionError, match=r"suites.sid.closures: must be an object.*ldmatrix lock --only-missing"):
        parse_lock(raw, tmp_path / "lock.json")
