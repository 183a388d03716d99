"""NixOS 24.05+'s stub-ld as a store path: harness/data/stub_ld.c built statically and cached
(harness/provision/static_program.py), bound at ``/nix/store/<digest>-stub-ld`` as nixpkgs' is (its
``runCommandCC`` output is the program itself), and linked from /lib64/ld-linux-x86-64.so.2 in the
root of a release that has it (harness/root/release.py) unless nix-ld is enabled there."""

from __future__ import annotations

from harness.cache import Cache
from harness.model import StorePath
from harness.progress import Progress
from harness.provision import nixbase32
from harness.provision.static_program import StaticProgram, entry_path

STUB_LD = StaticProgram("stub-ld", "stub-ld", "stub_ld.c", "1",
                        ("-static", "-nostdlib", "-ffreestanding", "-fno-stack-protector", "-Os", "-Wall", "-Wextra",
                         "-Werror"))


def store_path(cache: Cache | None = None, progress: Progress | None = None) -> StorePath:
    entry = entry_path(STUB_LD, cache, progress)
    return StorePath("stub-ld", "", nixbase32.digest("stub-ld", entry.name), entry / "bin" / STUB_LD.program)
