"""The checked cache: manifests, cheap and full checks, rebuilt builds, swept temp entries, `cache verify`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness import reproducers
from harness.cache import entry as cache_entry
from harness.cache import Cache
from harness.cli import main
from harness.model import BuildRoot
from harness.progress import NullProgress


class Steps:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def step(self, message: str) -> None:
        self.lines.append(message)


def _fill(files: dict[str, bytes]):
    def fill(out: Path, scratch: Path) -> None:
        for rel, data in files.items():
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            (out / rel).write_bytes(data)
        (out / "link").symlink_to("a")
    return fill


def test_entry_is_made_with_a_manifest_and_checked(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    entry = cache_entry.Entry(cache, "store", "x-thing-1")
    cache_entry.ensure(entry, {"v": 1}, _fill({"a": b"aaa", "d/b": b"b"}), NullProgress(), "thing")
    manifest = cache_entry.read_manifest(entry)
    assert manifest is not None and manifest.made_from == {"v": 1}
    assert {r.path: r.kind for r in manifest.files} == {".": "d", "a": "f", "d": "d", "d/b": "f", "link": "l"}
    assert cache_entry.check(entry, {"v": 1}) is None and cache_entry.verify(entry) is None
    assert "made from v=1, expected 2" in cache_entry.check(entry, {"v": 2})
    (entry.path / "link").unlink()
    (entry.path / "link").symlink_to("d/b")
    assert cache_entry.check(entry) == "link is a link to d/b, the manifest says a link to a"
    assert [p.name for p in cache.store.iterdir()] == ["x-thing-1"]  # the manifest lives apart


def test_made_from_another_input_is_rebuilt(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    entry = cache_entry.Entry(cache, "store", "x-thing-1")
    cache_entry.ensure(entry, {"v": 1}, _fill({"a": b"old"}), NullProgress(), "thing")
    steps = Steps()
    cache_entry.ensure(entry, {"v": 2}, _fill({"a": b"new"}), steps, "thing")
    assert (entry.path / "a").read_bytes() == b"new" and "rebuilding" in steps.lines[-1]


def _fake_compiler(binary: Path, calls: list[int]):
    def compile_(spec, root, out_dir: Path, log) -> int:
        calls.append(1)
        shutil.copy2(binary, out_dir / spec.name)
        log.write("compiled\n")
        return 0
    return compile_


def test_damaged_build_is_rebuilt(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    root = BuildRoot("bullseye", tmp_path / "root", "2.31", "d1")
    calls: list[int] = []
    compiler = _fake_compiler(Path(sys.executable).resolve(), calls)
    built = reproducers.build("hello", root, cache, NullProgress(), compiler=compiler)
    assert reproducers.build("hello", root, cache, NullProgress(), compiler=compiler) == built and len(calls) == 1
    with built.path.open("r+b") as f:
        f.truncate(64)
    steps = Steps()
    again = reproducers.build("hello", root, cache, steps, compiler=compiler)
    assert len(calls) == 2 and again.sha256 == built.sha256
    assert any("build of hello for bullseye" in line and "is damaged" in line for line in steps.lines)


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_half_built_entries_of_killed_runs_are_swept(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    dead = cache.store / f".tmp-abc-glibc-2.36-pid{_dead_pid()}-k2j3h4g5"
    legacy_dead = cache.buildroots / f".tmp-sid-xyz-{_dead_pid()}"
    alive = cache.store / f".tmp-def-glibc-2.41-pid{os.getppid()}-a1b2c3d4"
    old_unowned = cache.builds / ".tmp-hello-bullseye-123abc-q8w7e6r5"
    fresh_unowned = cache.builds / ".tmp-envprint-bullseye-456def-z9x8c7v6"
    part = cache.downloads / ".0123456789ab.xyz.part"
    for path in (dead, legacy_dead, alive, old_unowned, fresh_unowned):
        (path / "out").mkdir(parents=True)
    part.write_bytes(b"half")
    old = time.time() - cache_entry.STALE_AGE - 60
    os.utime(old_unowned, (old, old))
    os.utime(part, (old, old))
    removed = cache_entry.sweep_cache(cache, NullProgress())
    assert sorted(removed) == sorted([dead, legacy_dead, old_unowned, part])
    assert alive.exists() and fresh_unowned.exists()


def test_cache_verify_names_each_damaged_entry_and_exits_nonzero(tmp_path: Path, monkeypatch,
                                                                 capsys: pytest.CaptureFixture) -> None:
    cache = Cache(tmp_path)
    monkeypatch.setenv("LDMATRIX_CACHE", str(tmp_path))
    good = cache_entry.Entry(cache, "store", "a-good-1")
    bad = cache_entry.Entry(cache, "builds", "hello-bullseye-0123")
    for entry in (good, bad):
        cache_entry.ensure(entry, {}, _fill({"lib/libc.so.6": b"x" * 1000}), NullProgress(), "e")
    (cache.buildroots / "bullseye-old").mkdir()  # made before manifests
    assert main(["cache", "verify", "-q"]) == 0
    with (bad.path / "lib/libc.so.6").open("r+b") as f:
        f.write(b"y")  # same size: only the full check sees it
    assert cache_entry.check(bad) is None or "modified" in cache_entry.check(bad)
    capsys.readouterr()
    assert main(["cache", "verify", "-q"]) == 1
    lines = capsys.readouterr().out.splitlines()
    damaged = [line for line in lines if line.startswith("damaged")]
    assert len(damaged) == 1 and damaged[0].startswith("damaged    builds/hello-bullseye-0123: lib/libc.so.6: sha256 ")
    assert any(line.startswith("unchecked  buildroots/bullseye-old: no manifest") for line in lines)
    assert lines[-1].endswith("1 verified, 1 damaged, 1 without a manifest")
