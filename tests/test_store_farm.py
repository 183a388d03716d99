"""A cell's /nix/store as one tree of hard links: the same paths, the same files, nothing more."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from harness.root import store_farm
from harness.cache import Cache


def test_a_farm_holds_exactly_the_store_paths_with_the_same_files(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "cache")
    glibc = tmp_path / "cache" / "store" / "aaaa-glibc-2.41"
    (glibc / "lib").mkdir(parents=True)
    (glibc / "lib" / "libc.so.6").write_bytes(b"\x7fELF libc")
    (glibc / "lib" / "ld-linux-x86-64.so.2").symlink_to("libc.so.6")
    (glibc / "share").mkdir()
    (glibc / "share").chmod(0o555)
    real = tmp_path / "nix" / "bbbb-zlib"
    real.mkdir(parents=True)
    (real / "libz.so.1").write_text("z")
    linked = tmp_path / "cache" / "store" / "bbbb-zlib"
    linked.symlink_to(real)  # a bind follows a link: the farm holds what it points to
    pairs = [("/nix/store/aaaa-glibc-2.41", glibc), ("/nix/store/bbbb-zlib", linked)]
    farm = store_farm.farm(pairs, cache)
    assert farm is not None and sorted(p.name for p in farm.iterdir()) == ["aaaa-glibc-2.41", "bbbb-zlib"]
    assert os.stat(farm / "aaaa-glibc-2.41/lib/libc.so.6").st_ino == os.stat(glibc / "lib/libc.so.6").st_ino
    assert os.readlink(farm / "aaaa-glibc-2.41/lib/ld-linux-x86-64.so.2") == "libc.so.6"
    assert (farm / "aaaa-glibc-2.41/share").stat().st_mode & 0o777 == 0o555
    assert (farm / "bbbb-zlib").is_dir() and not (farm / "bbbb-zlib").is_symlink()
    assert store_farm.farm(list(reversed(pairs)), cache) == farm  # the same set, the same farm
    assert not [p for p in farm.parent.iterdir() if p.name.startswith(".tmp-")]


def test_one_name_from_two_places_has_no_farm(tmp_path: Path) -> None:
    a, b = tmp_path / "a" / "x-glibc", tmp_path / "b" / "x-glibc"
    a.mkdir(parents=True)
    b.mkdir(parents=True)
    assert store_farm.farm([("/nix/store/x-glibc", a), ("/nix/store/x-glibc", b)], Cache(tmp_path / "c")) is None


@pytest.mark.parametrize("damage", ["planted", "replaced", "removed", "extra store path"])
def test_a_farm_another_run_left_damaged_is_made_again(tmp_path: Path, damage: str,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """Before: a farm that existed was used as it was, so a file planted in it (or one replaced or
    removed) was what the cells saw, while every store path's own check passed."""
    cache = Cache(tmp_path / "cache")
    glibc = tmp_path / "cache" / "store" / "aaaa-glibc-2.41"
    (glibc / "lib").mkdir(parents=True)
    (glibc / "lib" / "libc.so.6").write_bytes(b"\x7fELF libc")
    pairs = [("/nix/store/aaaa-glibc-2.41", glibc)]
    farm = store_farm.farm(pairs, cache)
    assert farm is not None
    lib = farm / "aaaa-glibc-2.41" / "lib"
    if damage == "planted":
        (lib / "libz.so.1").write_text("not zlib")
    elif damage == "replaced":
        (lib / "libc.so.6").unlink()
        (lib / "libc.so.6").write_bytes(b"\x7fELF another libc")
    elif damage == "removed":
        (lib / "libc.so.6").unlink()
    else:
        (farm / "cccc-evil").mkdir()
    store_farm._known.clear()  # another process: it knows nothing of this farm
    store_farm._by_entries.clear()
    again = store_farm.farm(pairs, cache)
    assert again == farm and sorted(os.listdir(lib)) == ["libc.so.6"] and sorted(os.listdir(farm)) == [glibc.name]
    assert os.stat(lib / "libc.so.6").st_ino == os.stat(glibc / "lib" / "libc.so.6").st_ino
    assert "differs from its store paths; making it again" in capsys.readouterr().err


def test_a_whole_farm_another_run_made_is_used_as_it_is(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "cache")
    glibc = tmp_path / "cache" / "store" / "aaaa-glibc-2.41"
    (glibc / "lib").mkdir(parents=True)
    (glibc / "lib" / "libc.so.6").write_bytes(b"\x7fELF libc")
    (glibc / "lib" / "ld.so").symlink_to("libc.so.6")
    farm = store_farm.farm([("/nix/store/aaaa-glibc-2.41", glibc)], cache)
    assert farm is not None
    inode = os.stat(farm).st_ino
    store_farm._known.clear()
    store_farm._by_entries.clear()
    assert store_farm.farm([("/nix/store/aaaa-glibc-2.41", glibc)], cache) == farm and os.stat(farm).st_ino == inode
