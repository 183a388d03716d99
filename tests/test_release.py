"""NixOS releases as root behaviours (harness/root/release.py), against what nixpkgs' modules say."""

from __future__ import annotations

import pytest

from harness.provision.libraries import CONFIG as LIBRARIES
from harness.root.release import CURRENT, RELEASES, SEED, LibraryList

BASE = LIBRARIES.default


def test_the_seeds_release_replaces_the_list_and_has_no_stub() -> None:
    seed = RELEASES[SEED]
    assert seed.version == "23.11" and not seed.stub_ld and seed.libraries is LibraryList.REPLACE


@pytest.mark.parametrize("version", [v for v in RELEASES if v != "23.11"])
def test_24_05_and_later_have_stub_ld_and_an_additive_list(version: str) -> None:
    release = RELEASES[version]
    assert release.stub_ld and release.libraries is LibraryList.ADD


def test_nixpkgs_base_libraries_are_the_modules_fourteen() -> None:
    assert BASE == ("zlib", "zstd", "stdenv.cc.cc", "curl", "openssl", "attr", "libssh", "bzip2", "libxml2", "acl",
                    "libsodium", "util-linux", "xz", "systemd")


@pytest.mark.parametrize("version, libs, attrs, want", [
    ("23.11", "none", (), ()),
    ("23.11", "default", BASE, BASE),
    ("23.11", "jq", ("jq",), ("jq",)),  # the option's default is replaced
    (CURRENT, "none", (), ()),  # lib.mkForce [ ]
    (CURRENT, "default", BASE, BASE),
    (CURRENT, "jq", ("jq",), (*BASE, "jq")),  # list options merge with the module's config
    (CURRENT, "curl+jq", ("curl", "jq"), (*BASE, "jq")),  # curl is in the base list once
])
def test_what_programs_nix_ld_libraries_ends_up_with(version: str, libs: str, attrs: tuple, want: tuple) -> None:
    assert RELEASES[version].nix_ld_attributes(libs, attrs, BASE) == want


@pytest.mark.parametrize("version, libs, attrs, nix_ld, label", [
    ("23.11", "none", (), True, "[]"),
    ("23.11", "jq", ("jq",), True, "[jq]"),
    (CURRENT, "none", (), True, "mkForce []"),
    (CURRENT, "jq", ("jq",), True, "default+[jq]"),
    (CURRENT, "default", BASE, True, "default"),
    (CURRENT, "jq", ("jq",), False, "[jq]"),  # a RUNPATH or LD_LIBRARY_PATH names only what is listed
    (CURRENT, "none", (), False, "none"),
])
def test_labels_say_what_a_user_of_the_release_writes(version: str, libs: str, attrs: tuple, nix_ld: bool,
                                                      label: str) -> None:
    assert RELEASES[version].libs_label(libs, attrs, nix_ld) == label
