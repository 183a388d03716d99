"""A real program installed whole: its artifact's tree written as the archive has it (modes, links; a
package's absolute links made relative), placed under ~/opt/<binary>, the program run from its place
and, when patched, bound over its own file there. Fast."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from harness.artifacts import spec, tree, unpack
from harness.artifacts.deb import _EXACT
from harness.errors import LdmatrixError
from harness.matrix import BinarySpec
from harness.model import BuiltBinary, InstalledBinary, Mount
from harness.root.programs import OPT_DIR, Programs, binary_mounts, place

WHERE = spec.Where("m.yaml", 3, "binaries.java.path")


def tarball(path: Path, members: list[tuple[str, str, str | bytes, int]]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, kind, data, mode in members:
            info = tarfile.TarInfo(name)
            info.mode = mode
            if kind == "l":
                info.type, info.linkname = tarfile.SYMTYPE, str(data)
                tar.addfile(info)
            elif kind == "h":
                info.type, info.linkname = tarfile.LNKTYPE, str(data)
                tar.addfile(info)
            else:
                payload = data if isinstance(data, bytes) else data.encode()
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))
    return path


def test_the_tree_is_written_as_the_archive_has_it(tmp_path: Path) -> None:
    archive = tarball(tmp_path / "jre.tar.gz", [
        ("jre/bin/java", "f", "program", 0o755),
        ("jre/lib/libjli.so", "f", "library", 0o644),
        ("jre/lib/jvm.cfg", "l", "/etc/java/jvm.cfg", 0o777),  # a package's absolute link
        ("jre/lib/again.so", "h", "jre/lib/libjli.so", 0o644),
        ("etc/java/jvm.cfg", "f", "-server KNOWN", 0o4755),
    ])
    found = unpack.tar_tree(archive, "jre.tar.gz")
    written = tree.write(found, tmp_path / "out", WHERE, archive.stat().st_size)
    out = tmp_path / "out"
    assert written == len("program") + len("library") * 2 + len("-server KNOWN")
    assert os.access(out / "jre/bin/java", os.X_OK) and not os.access(out / "jre/lib/libjli.so", os.X_OK)
    assert (out / "etc/java/jvm.cfg").stat().st_mode & 0o7777 == 0o755  # no set-id
    assert os.readlink(out / "jre/lib/jvm.cfg") == "../../etc/java/jvm.cfg"
    assert (out / "jre/lib/jvm.cfg").read_text() == "-server KNOWN"  # inside the tree, wherever it is
    assert (out / "jre/lib/again.so").read_text() == "library"


def test_a_member_that_leaves_the_archive_is_refused(tmp_path: Path) -> None:
    archive = tarball(tmp_path / "bad.tar.gz", [("x/../../escape", "f", "no", 0o644)])
    with pytest.raises(LdmatrixError, match="leaves the archive"):
        tree.write(unpack.tar_tree(archive, "bad.tar.gz"), tmp_path / "out", WHERE, archive.stat().st_size)


def built(tmp_path: Path) -> BuiltBinary:
    top = tmp_path / "tree"
    return BuiltBinary("java", "bookworm", top / "jre/bin/java", "0" * 64, tmp_path / "origin.json", "/lib64/ld",
                       tree=top, named="jre/bin/java-link", member="jre/bin/java")


def test_a_real_program_runs_from_its_place_in_its_tree(tmp_path: Path) -> None:
    spec_ = BinarySpec("java", None, "bookworm")
    placed = place(spec_, built(tmp_path), "ignored")
    assert placed.run == f"{OPT_DIR}/java/jre/bin/java-link" and placed.file == f"{OPT_DIR}/java/jre/bin/java"
    assert placed.tree == Mount(tmp_path / "tree", f"{OPT_DIR}/java")
    reproducer = place(BinarySpec("c-envprint", "envprint", "bullseye"),
                       BuiltBinary("envprint", "bullseye", tmp_path / "e", "0" * 64, tmp_path / "log", "/lib64/ld"), "c")
    assert reproducer.run == reproducer.file == "/home/user/bin/c" and reproducer.tree is None


def test_a_patched_program_is_bound_over_its_own_file(tmp_path: Path) -> None:
    b = built(tmp_path)
    placed = place(BinarySpec("java", None, "bookworm"), b, "x")
    as_built = InstalledBinary(placed.file, b.path, b.sha256, b.sha256, None, ())
    patched = InstalledBinary(placed.file, tmp_path / "patched/java", "1" * 64, b.sha256, "/nix/store/x/ld.so", ())
    assert binary_mounts(Programs([as_built], (placed.run,), False, (placed.tree,))) == [placed.tree]
    assert binary_mounts(Programs([patched], (placed.run,), False, (placed.tree,))) == \
        [placed.tree, Mount(tmp_path / "patched/java", placed.file)]


def test_apt_is_told_the_versions_a_package_pins_exactly() -> None:
    assert _EXACT.match(" libjq1 (= 1.6-2.1+deb12u2)").groups() == ("libjq1", "1.6-2.1+deb12u2")
    assert _EXACT.match(" libc6 (>= 2.34)") is None
