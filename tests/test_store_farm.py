"""A cell's /nix/store as one tree of hard links: the same paths, the same files, nothing more."""

from __future__ import annotations

import os
from pathlib import Path

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
