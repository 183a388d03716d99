"""A sandbox that holds: a cell is uid 1000 without capabilities, cannot write its store paths (nor the
cache behind them), and is bounded in memory, processes and output. Real bubblewrap runs; the store
paths are private copies, so a sandbox that does not hold cannot damage the shared cache."""

from __future__ import annotations

import dataclasses
import hashlib
import shutil
import time
from pathlib import Path

import pytest

from harness.root.limits import CELL, cgroups_work
from harness.model import GlibcSet, StorePath
from harness.outcome import classify
from harness.runners.sandbox import SandboxRunner

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(shutil.which("bwrap") is None, reason="needs bubblewrap: apt-get install -y bubblewrap")]


@pytest.fixture(scope="module")
def private_glibc(tmp_path_factory: pytest.TempPathFactory) -> GlibcSet:
    """The 2.36 store paths, copied out of the cache (the copies are what the cells try to damage)."""
    from harness import provision
    from harness.cache import Cache
    from harness.progress import NullProgress

    real = provision.provision_glibc("2.36", Cache.default(), NullProgress())
    store = tmp_path_factory.mktemp("store")

    def copy(sp: StorePath) -> StorePath:
        dest = store / sp.basename
        shutil.copytree(sp.host_path, dest, symlinks=True)
        return dataclasses.replace(sp, host_path=dest)

    return dataclasses.replace(real, glibc=copy(real.glibc), libxcrypt=copy(real.libxcrypt),
                               gcc_lib=copy(real.gcc_lib), shell=copy(real.shell))


@pytest.fixture
def cell(private_glibc: GlibcSet, tmp_path: Path):
    """``cell(script, timeout)``: a NixOS-like root cell running ``sh -c script`` (busybox as $BB)."""
    from conftest import busybox_cell

    return busybox_cell(private_glibc, tmp_path / "cell")


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(path.rglob("*")):
        h.update(str(p.relative_to(path)).encode())
        if p.is_file() and not p.is_symlink():
            h.update(p.read_bytes())
    return h.hexdigest()


def test_cell_is_an_unprivileged_user_with_a_writable_home(cell) -> None:
    result = SandboxRunner().run(cell("$BB id; $BB grep -E '^(Cap(Prm|Eff|Bnd|Amb)|NoNewPrivs)' /proc/self/status; "
                                      "echo x > $HOME/f && echo home-ok; echo y > /tmp/f && echo tmp-ok"))
    assert result.rc == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "uid=1000 gid=100"
    assert [line.split()[1] for line in lines[1:5]] == ["0000000000000000"] * 4, lines
    assert lines[5:] == ["NoNewPrivs:\t1", "home-ok", "tmp-ok"]


def test_cell_cannot_remount_store_rw(cell, private_glibc: GlibcSet) -> None:
    store = private_glibc.glibc.store_path
    before = _digest(private_glibc.glibc.host_path)
    result = SandboxRunner().run(cell(
        f"$BB mount -o remount,rw,bind {store} && echo REMOUNTED; "
        f"$BB mount -o remount,rw {store} && echo REMOUNTED; "
        "$BB mount -o remount,rw,bind /nix/store && echo REMOUNTED; "  # the store is one bind (its farm)
        "$BB mount -o remount,rw /nix/store && echo REMOUNTED; "
        f"echo owned > {store}/lib/libc.so.6 && echo WROTE; "
        f"$BB rm -f {store}/lib/libm.so.6 && echo REMOVED; "
        f"$BB unshare -Urm $BB sh -c '$BB mount -o remount,rw,bind {store} && echo > {store}/lib/libc.so.6' "
        "&& echo NESTED; true"))
    assert result.rc == 0, result.stderr
    assert result.stdout == "", f"the sandbox let a cell change its store path: {result.stdout!r}"
    assert any(refused in result.stderr.lower()
               for refused in ("permission denied", "operation not permitted", "read-only file system"))
    assert _digest(private_glibc.glibc.host_path) == before


def test_cell_cannot_write_the_cache_via_proc(cell, private_glibc: GlibcSet) -> None:
    store = private_glibc.glibc.store_path
    host = private_glibc.glibc.host_path
    before = _digest(host)
    script = "; ".join([
        f"echo x > /proc/self/root{store}/lib/libc.so.6 && echo VIA-SELF-ROOT",
        f"echo x > /proc/1/root{store}/lib/libc.so.6 && echo VIA-PID1-ROOT",
        f"echo x > /proc/1/cwd/planted && $BB test -e {host}/planted && echo VIA-PID1-CWD",
        # the host path behind the store path, read from mountinfo, and anything reachable under it
        f"for p in $($BB awk '{{print $4}}' /proc/self/mountinfo); do echo x > \"$p/planted\" 2>/dev/null "
        f"&& $BB test -e {host}/planted && echo VIA-MOUNTINFO; done",
        f"echo x > {host}/lib/libc.so.6 2>/dev/null && echo VIA-HOST-PATH",
        # host-wide files that check for uid 0 rather than a capability: asked, never written
        "for f in /proc/sys/kernel/core_pattern /proc/sys/vm/drop_caches /proc/sysrq-trigger "
        "/proc/irq/default_smp_affinity; do [ -w $f ] && echo WRITABLE $f; done",
        f"$BB chmod u+w {store}/lib/libc.so.6 && echo CHMOD",
        "true",
    ])
    result = SandboxRunner().run(cell(script))
    assert result.stdout == "", f"a cell reached the host: {result.stdout!r}"
    assert _digest(host) == before and not (host / "planted").exists()


def test_endless_output_is_bounded(cell) -> None:
    started = time.monotonic()
    result = SandboxRunner().run(cell("$BB yes ldmatrix", timeout=3.0))
    assert time.monotonic() - started < 15, "the timeout did not end the cell"
    assert result.timed_out and classify(result).outcome.value == "timeout"
    assert len(result.stdout.encode()) <= CELL.output + 200
    assert result.stdout_cut > 10 * CELL.output and result.truncated
    assert "bytes of stdout cut here" in result.stdout


def test_long_output_keeps_its_head_and_closing_check(cell) -> None:
    result = SandboxRunner().run(cell("echo first; $BB head -c 5000000 /dev/zero | $BB tr '\\0' 'x'; echo; "
                                      "echo 'LDMATRIX-CHECK: ok'"))
    assert result.rc == 0 and result.stdout_cut > 0
    assert result.stdout.startswith("first\n") and result.stdout.endswith("LDMATRIX-CHECK: ok\n")
    assert classify(result).outcome.value == "ok"


def test_memory_is_limited(cell) -> None:
    big = CELL.memory + (512 << 20)
    small = SandboxRunner().run(cell("$BB dd if=/dev/zero of=/dev/null bs=64M count=1 2>&1 && echo fine"))
    assert small.stdout.rstrip().endswith("fine"), small
    result = SandboxRunner().run(cell(f"$BB dd if=/dev/zero of=/dev/null bs={big} count=1 && echo GOT-IT"))
    assert "GOT-IT" not in result.stdout and result.rc != 0
    assert classify(result).outcome.value in ("crash", "error")


@pytest.mark.skipif(not cgroups_work(), reason="pid limits need a cgroup this user can make (v2, or v1 as root)")
def test_processes_are_limited(cell) -> None:
    n = CELL.pids + 100
    result = SandboxRunner().run(cell(f"i=0; while [ $i -lt {n} ]; do $BB sleep 20 & i=$((i+1)); done; "
                                      "echo started $i", timeout=20))
    assert "can't fork" in result.stderr or "Resource temporarily unavailable" in result.stderr, result
    assert f"started {n}" not in result.stdout
