"""nix-ld comes only from a real build supplied by path; the provider checks what it is given."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from harness.cache import Cache
from harness.errors import LdmatrixError
from harness.nix_ld_provider import install, labels, parse_spec


def test_version_equals_path() -> None:
    assert parse_spec("1.2.2=/x/nix-ld") == ("1.2.2", Path("/x/nix-ld"))


def test_store_path_names_its_version() -> None:
    path = "/nix/store/nfxfy71ldi0wwr9lklbp5bp143aivaxg-nix-ld-1.2.2"
    assert parse_spec(path) == ("1.2.2", Path(path))


@pytest.mark.parametrize("text", ["/path/to/nix-ld", "=/x", "1.2.2=", "a b=/x"])
def test_bad_specs_say_the_form(text: str) -> None:
    with pytest.raises(LdmatrixError, match="VERSION=PATH"):
        labels([text])


def test_a_dynamically_linked_program_is_refused(tmp_path: Path) -> None:
    with pytest.raises(LdmatrixError, match="statically linked"):
        install("1.2.2", Path(shutil.which("true") or "/bin/true"), Cache(tmp_path))


def test_not_elf_is_refused(tmp_path: Path) -> None:
    fake = tmp_path / "nix-ld"
    fake.write_text("#!/bin/sh\n")
    with pytest.raises(LdmatrixError, match="not an ELF"):
        install("1.2.2", fake, Cache(tmp_path))


def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(LdmatrixError, match="not found"):
        install("1.2.2", tmp_path / "nope", Cache(tmp_path))
