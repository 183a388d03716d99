"""Tests for harness/reproducers.py, harness/loader/elf.py and the reproducers themselves.

The fast tests need nothing but Python. The slow ones build every reproducer in the Debian
the real build roots (provisioned and cached as a run would) and run the binaries on this host.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness import reproducers
from harness.cache import REPO_ROOT, Cache
from harness.loader.elf import read_interpreter
from harness.errors import LdmatrixError
from harness.model import BuildRoot, BuiltBinary, Language
from harness.progress import NullProgress
from harness.reproducers import REPRODUCERS, build, build_digest

BUILD_SUITES = ("bullseye", "trixie")
CHECK = "LDMATRIX-CHECK:"


def fake_root(suite: str = "bullseye", digest: str = "d1", glibc: str = "2.31") -> BuildRoot:
    return BuildRoot(suite=suite, path=Path("/nonexistent"), glibc_version=glibc, digest=digest)


def host_glibc() -> tuple[int, ...]:
    version = os.confstr("CS_GNU_LIBC_VERSION") or "glibc 0.0"  # "glibc 2.36"
    return tuple(int(p) for p in version.split()[1].split("."))


def check_line(stdout: str) -> str:
    lines = [line for line in stdout.splitlines() if line.startswith(CHECK)]
    assert len(lines) == 1, f"expected exactly one check line, got {lines!r} in {stdout!r}"
    assert stdout.splitlines()[-1] == lines[0], "the check line must be the last line"
    return lines[0]


# --------------------------------------------------------------------------- fast


def test_catalogue_names_and_keys() -> None:
    assert list(REPRODUCERS) == [
        "hello", "needs-libcrypt", "needs-glibc-2.38", "envprint", "envprint-newer", "spawn-child",
        "dlopen-execstack", "spawn-env", "spawn-inherit",
    ]
    for name, spec in REPRODUCERS.items():
        assert spec.name == name


def test_every_source_exists() -> None:
    for spec in REPRODUCERS.values():
        assert spec.sources, spec.name
        for path in spec.source_paths:
            assert path.is_file(), f"{spec.name}: {path} missing"


def test_catalogue_consistency() -> None:
    assert REPRODUCERS["needs-libcrypt"].link_flags == ("-lcrypt",)
    assert REPRODUCERS["needs-glibc-2.38"].min_glibc == "2.38"
    for name in ("spawn-env", "spawn-inherit"):
        spec = REPRODUCERS[name]
        assert spec.language is Language.RUST and spec.needs_child
    for spec in REPRODUCERS.values():
        if spec.language is Language.C:  # a C program that starts a child is a prebuilt one
            assert spec.needs_child == spec.prebuilt_parent and spec.sources[0].endswith(".c")
    assert REPRODUCERS["spawn-child"].prebuilt_parent and not REPRODUCERS["spawn-env"].prebuilt_parent
    # the Makefile for people builds every C reproducer
    makefile = (REPO_ROOT / "c-repro" / "Makefile").read_text()
    for spec in REPRODUCERS.values():
        if spec.language is Language.C:
            assert f"{spec.name}: {spec.sources[0]}" in makefile


def test_compile_commands() -> None:
    assert REPRODUCERS["spawn-env"].compile_command() == (
        "rustc", "--edition", "2018", "-C", "opt-level=2", "-o", "/out/spawn-env", "/src/src/bin/spawn_env.rs",
    )
    cmd = REPRODUCERS["needs-libcrypt"].compile_command()
    assert cmd[0] == "gcc" and cmd[-2:] == ("/src/needs_libcrypt.c", "-lcrypt")
    assert "/out/needs-libcrypt" in cmd


def test_unknown_reproducer_names_the_allowed_ones() -> None:
    with pytest.raises(LdmatrixError, match="allowed: hello, needs-libcrypt"):
        reproducers.spec("nope")


def test_read_interpreter_host_binary() -> None:
    interpreter = read_interpreter(Path("/bin/true"))
    assert interpreter is not None and interpreter.startswith("/") and "ld-linux" in interpreter


def test_read_interpreter_rejects_non_elf(tmp_path: Path) -> None:
    text = tmp_path / "script"
    text.write_text("#!/bin/sh\n")
    with pytest.raises(LdmatrixError, match="not an ELF file"):
        read_interpreter(text)
    with pytest.raises(LdmatrixError, match="cannot read"):
        read_interpreter(tmp_path / "absent")


def test_read_interpreter_none_for_shared_object_without_interp() -> None:
    candidates = [p for p in Path("/usr/lib/x86_64-linux-gnu").glob("libz.so.1*") if p.is_file()]
    if not candidates:
        pytest.skip("no libz.so.1 on this host")
    assert read_interpreter(candidates[0]) is None


def test_digest_changes_when_a_source_changes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shutil.copytree(REPO_ROOT / "c-repro", tmp_path / "c-repro")
    shutil.copytree(REPO_ROOT / "rust-repro", tmp_path / "rust-repro")
    monkeypatch.setattr(reproducers, "REPO_ROOT", tmp_path)
    root = fake_root()
    before = {name: build_digest(spec, root) for name, spec in REPRODUCERS.items()}
    assert len(set(before.values())) == len(before)

    (tmp_path / "c-repro" / "hello.c").write_text("int main(void) { return 0; }\n")
    assert build_digest(REPRODUCERS["hello"], root) != before["hello"]
    assert build_digest(REPRODUCERS["envprint"], root) == before["envprint"]

    with (tmp_path / "rust-repro" / "src" / "launcher.rs").open("a") as f:
        f.write("\n// changed\n")
    assert build_digest(REPRODUCERS["spawn-env"], root) != before["spawn-env"]
    assert build_digest(REPRODUCERS["spawn-inherit"], root) != before["spawn-inherit"]


def test_digest_covers_root_and_flags() -> None:
    spec = REPRODUCERS["hello"]
    base = build_digest(spec, fake_root())
    assert build_digest(spec, fake_root()) == base
    assert build_digest(spec, fake_root(digest="d2")) != base
    assert build_digest(spec, fake_root(suite="trixie")) != base
    flagged = reproducers.ReproducerSpec("hello", Language.C, ("hello.c",), link_flags=("-lm",))
    assert build_digest(flagged, fake_root()) != base


def test_min_glibc_is_enforced(tmp_path: Path) -> None:
    with pytest.raises(LdmatrixError, match=r"needs a build root with glibc >= 2.38; bullseye has 2.31"):
        build("needs-glibc-2.38", fake_root(), Cache(tmp_path), NullProgress())


def test_missing_bubblewrap_is_one_actionable_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("harness.root.bwrap.shutil.which", lambda name: None)
    with pytest.raises(LdmatrixError) as err:
        build("hello", fake_root(), Cache(tmp_path), NullProgress())
    assert str(err.value) == "bubblewrap not found: apt-get install -y bubblewrap"
    assert not [p for p in Cache(tmp_path).builds.iterdir()], "a failed build leaves no directory"


def test_no_seed_corruption_literal_in_harness() -> None:
    needle = "nixpkg" + "x"
    for path in (REPO_ROOT / "harness").rglob("*.py"):
        assert needle not in path.read_text(encoding="utf-8", errors="replace"), path


# --------------------------------------------------------------------------- slow


@pytest.fixture(scope="module")
def build_cache(tmp_path_factory: pytest.TempPathFactory) -> Cache:
    return Cache(tmp_path_factory.mktemp("ldmatrix-cache"))


def provisioned_root(suite: str) -> BuildRoot:
    """The real build root of ``suite``, provisioned (and cached) as a run would."""
    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap not found: apt-get install -y bubblewrap")
    from harness.provision import build_root

    return build_root(suite, Cache.default(), NullProgress())


@pytest.fixture(scope="module")
def built(build_cache: Cache) -> dict[tuple[str, str], BuiltBinary]:
    """Every reproducer each build root can build, keyed by (name, suite)."""
    result: dict[tuple[str, str], BuiltBinary] = {}
    for suite in BUILD_SUITES:
        for name, binary in reproducers.build_all(provisioned_root(suite), build_cache, NullProgress()).items():
            result[name, suite] = binary
    return result


def binary(built: dict[tuple[str, str], BuiltBinary], name: str, suite: str) -> BuiltBinary:
    if (name, suite) not in built:
        pytest.skip(f"{name} cannot be built in {suite}")
    return built[name, suite]


def run(argv: list[str | Path], env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True, env=env, cwd=cwd, timeout=60)


@pytest.mark.slow
@pytest.mark.parametrize("suite", list(BUILD_SUITES))
def test_build_fills_built_binary_and_reuses_cache(built: dict, build_cache: Cache, suite: str) -> None:
    b = binary(built, "hello", suite)
    assert b.path.is_file() and b.path.name == "hello" and b.suite == suite
    assert b.interpreter == "/lib64/ld-linux-x86-64.so.2"
    assert len(b.sha256) == 64
    log = b.build_log.read_text()
    assert "$ gcc -O2" in log and "# exit status: 0" in log
    again = build("hello", provisioned_root(suite), build_cache, NullProgress())
    assert again == b


@pytest.mark.slow
@pytest.mark.parametrize("suite", list(BUILD_SUITES))
@pytest.mark.parametrize("name", ["hello", "needs-libcrypt"])
def test_c_reproducers_pass_on_host(built: dict, suite: str, name: str) -> None:
    result = run([binary(built, name, suite).path])
    assert result.returncode == 0, result.stderr
    assert check_line(result.stdout) == "LDMATRIX-CHECK: ok"


@pytest.mark.slow
def test_needs_glibc_2_38_fails_on_older_host(built: dict) -> None:
    if host_glibc() >= (2, 38):
        pytest.skip("this host's glibc has GLIBC_2.38")
    result = run([binary(built, "needs-glibc-2.38", "trixie").path])
    assert result.returncode == 1
    assert "GLIBC_2.38' not found" in result.stderr
    assert CHECK not in result.stdout


def read_record(path: Path) -> dict[str, list[bytes]]:
    """A start-up record (A argv, E environment, X AT_EXECFN, P /proc/self/exe) by tag."""
    items = path.read_bytes().split(b"\0")
    assert items[-1] == b"", "every item ends with a NUL"
    out: dict[str, list[bytes]] = {"A": [], "E": [], "X": [], "P": []}
    for item in items[:-1]:
        out[chr(item[0])].append(item[1:])
    return out


@pytest.mark.slow
@pytest.mark.parametrize("parent", ["spawn-env", "spawn-inherit"])
def test_rust_parent_with_envprint_child(built: dict, parent: str, tmp_path: Path) -> None:
    suite = "bullseye"  # trixie's rustc links pidfd_spawnp@GLIBC_2.39
    env = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent", "TMPDIR": str(tmp_path), "LDMATRIX_X": "a=b=c"}
    child = binary(built, "envprint", suite).path
    result = run([binary(built, parent, suite).path, child], env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert check_line(result.stdout) == "LDMATRIX-CHECK: ok"
    assert "PATH=/usr/bin:/bin" in result.stdout.splitlines()
    record = read_record(tmp_path / f"{parent}.expect")
    entries = record["E"]
    assert (b"FOO=BAR" in entries) == (parent == "spawn-env")
    if parent == "spawn-env":
        keys = [entry.split(b"=", 1)[0] for entry in entries]
        assert keys == sorted(keys), "Command::env makes Rust pass an environment sorted by key"
    assert b"LDMATRIX_X=a=b=c" in entries
    expect = str(tmp_path / f"{parent}.expect").encode()
    assert record["A"] == [str(child).encode(), b"--expect", expect]
    assert record["X"] == [str(child).encode()] and record["P"] == [str(child.resolve()).encode()]


@pytest.mark.slow
def test_trixie_rust_parent_needs_glibc_2_39(built: dict) -> None:
    if host_glibc() >= (2, 39):
        pytest.skip("this host's glibc has GLIBC_2.39")
    result = run([binary(built, "spawn-env", "trixie").path, "/bin/true"])
    assert "GLIBC_2.39' not found" in result.stderr


@pytest.mark.slow
def test_spawn_env_reports_a_child_it_cannot_spawn(built: dict, tmp_path: Path) -> None:
    result = run([binary(built, "spawn-env", "bullseye").path, tmp_path / "absent"], env={"TMPDIR": str(tmp_path)})
    assert result.returncode == 127
    assert result.stderr == (
        f"spawn-env: failed to spawn {tmp_path / 'absent'}: No such file or directory (os error 2)\n"
    )


@pytest.mark.slow
def test_spawn_env_relays_exit_code_and_signal(built: dict, tmp_path: Path) -> None:
    parent = binary(built, "spawn-env", "bullseye").path
    env = {"TMPDIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    assert run([parent, "/bin/sh", "-c", "echo out; echo err >&2; exit 3"], env=env).returncode == 3
    result = run([parent, "/bin/sh", "-c", "echo out; echo err >&2; exit 3"], env=env)
    assert (result.stdout, result.stderr) == ("out\n", "err\n")
    assert run([parent, "/bin/sh", "-c", "kill -TERM $$"], env=env).returncode == 128 + 15


def write_expect(path: Path, program: Path, entries: list[str]) -> Path:
    """The record a parent writes when it runs ``program --expect path`` with ``entries``."""
    items = [f"A{program}", "A--expect", f"A{path}", *(f"E{e}" for e in entries), f"X{program}",
             f"P{program.resolve()}"]
    path.write_bytes(b"".join(item.encode() + b"\0" for item in items))
    return path


@pytest.mark.slow
def test_envprint_detects_an_injected_entry(built: dict, tmp_path: Path) -> None:
    envprint = binary(built, "envprint", "bullseye").path
    expected = {"PATH": "/usr/bin:/bin", "HOME": "/h"}
    expect = write_expect(tmp_path / "e", envprint, [f"{k}={v}" for k, v in expected.items()])

    ok = run([envprint, "--expect", expect], env=expected)
    assert ok.returncode == 0 and check_line(ok.stdout) == "LDMATRIX-CHECK: ok"

    # what a loader manages is judged too, after everything else: as passed, or named
    managed = {**expected, "NIX_LD": "x", "NIX_LD_LIBRARY_PATH": "/l"}
    with_managed = write_expect(tmp_path / "m", envprint, [f"{k}={v}" for k, v in managed.items()])
    assert run([envprint, "--expect", with_managed], env=managed).returncode == 0
    renamed = run([envprint, "--expect", with_managed], env={**expected, "NIX_LD": "x", "LD_LIBRARY_PATH": "/l"})
    assert check_line(renamed.stdout) == ('LDMATRIX-CHECK: env-corrupted: loader-managed entry 1 changed: '
                                          '"NIX_LD_LIBRARY_PATH=/l" became "LD_LIBRARY_PATH=/l"')
    added = run([envprint, "--expect", expect], env={**expected, "INJECTED": "1", "LD_LIBRARY_PATH": "z"})
    assert 'envprint: unexpected loader-managed entry 0: "LD_LIBRARY_PATH=z"' in added.stdout.splitlines()
    assert check_line(added.stdout).endswith('unexpected environment entry 2: "INJECTED=1"')  # damage first

    bad = run([envprint, "--expect", expect], env={**expected, "INJECTED": "1"})
    assert bad.returncode == 1
    assert 'envprint: unexpected environment entry 2: "INJECTED=1"' in bad.stdout.splitlines()
    assert check_line(bad.stdout) == 'LDMATRIX-CHECK: env-corrupted: unexpected environment entry 2: "INJECTED=1"'

    gone = run([envprint, "--expect", expect], env={"PATH": "/usr/bin:/bin"})
    assert gone.returncode == 1
    assert check_line(gone.stdout) == 'LDMATRIX-CHECK: env-corrupted: missing environment entry 1: "HOME=/h"'

    reordered = run([envprint, "--expect", expect], env={"HOME": "/h", "PATH": "/usr/bin:/bin"})
    assert check_line(reordered.stdout) == \
        'LDMATRIX-CHECK: env-corrupted: environment entry 0 damaged: "PATH=/usr/bin:/bin" became "HOME=/h"'


@pytest.mark.slow
def test_envprint_shifted_entry_is_evidence(built: dict, tmp_path: Path) -> None:
    """A NIX_PATH entry whose head moved 4 bytes left reads as a second PATH: the damaged entry,
    before and after, is the evidence, and the child's seed-style output shows two PATHs."""
    envprint = binary(built, "envprint", "bullseye").path
    nix_path = "nixpkgs=/nix/var/nix/profiles/per-user/root/channels/nixos"
    shifted = "PATH=" + nix_path[:6] + nix_path[4:]
    expect = write_expect(tmp_path / "e", envprint, [f"NIX_PATH={nix_path}", "PATH=/bin"])
    argv = [str(envprint), "--expect", str(expect)]
    result = execve_with_list_env(argv, [shifted, "PATH=/bin"])
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert lines[:2] == [shifted, "PATH=/bin"]
    assert check_line(result.stdout) == \
        f'LDMATRIX-CHECK: env-corrupted: environment entry 0 damaged: "NIX_PATH={nix_path}" became "{shifted}"'


@pytest.mark.slow
def test_envprint_checks_argv_and_the_file_name_it_was_started_by(built: dict, tmp_path: Path) -> None:
    envprint = binary(built, "envprint", "bullseye").path
    expect = write_expect(tmp_path / "e", envprint, ["PATH=/bin"])
    result = run(["./envprint", "--expect", expect], env={"PATH": "/bin"}, cwd=envprint.parent)
    lines = result.stdout.splitlines()
    assert f'envprint: argv[0] damaged: "{envprint}" became "./envprint"' in lines
    assert f'envprint: AT_EXECFN damaged: "{envprint}" became "./envprint"' in lines
    assert check_line(result.stdout).startswith("LDMATRIX-CHECK: env-corrupted: argv[0] damaged")


def execve_with_list_env(argv: list[str], envp: list[str]) -> subprocess.CompletedProcess[str]:
    """Runs argv with exactly ``envp`` (duplicates and order kept) via ctypes execve in a
    Python child; os.execve and `env -i` both go through a mapping and drop duplicates."""
    helper = (
        "import ctypes, sys\n"
        "n = int(sys.argv[1]); argv = sys.argv[2:2 + n]; envp = sys.argv[2 + n:]\n"
        "def arr(items):\n"
        "    a = (ctypes.c_char_p * (len(items) + 1))(*[s.encode() for s in items], None)\n"
        "    return a\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "libc.execve(argv[0].encode(), arr(argv), arr(envp))\n"
        "sys.exit(f'execve failed: errno {ctypes.get_errno()}')\n"
    )
    return run([sys.executable, "-c", helper, str(len(argv)), *argv, *envp])


@pytest.mark.slow
def test_envprint_detects_a_duplicate_key(built: dict) -> None:
    envprint = binary(built, "envprint", "bullseye").path
    result = execve_with_list_env([str(envprint)], ["PATH=/a", "HOME=/h", "PATH=/b"])
    assert result.returncode == 1, result.stderr
    lines = result.stdout.splitlines()
    assert lines[:2] == ["PATH=/a", "PATH=/b"]
    assert check_line(result.stdout) == 'LDMATRIX-CHECK: env-corrupted: duplicate key "PATH" in entry "PATH=/b"'


@pytest.mark.slow
def test_envprint_keeps_findings_on_one_line(built: dict, tmp_path: Path) -> None:
    envprint = binary(built, "envprint", "bullseye").path
    expect = write_expect(tmp_path / "e", envprint, ["PATH=/bin"])
    result = run([envprint, "--expect", expect], env={"PATH": "/bin", "ODD": 'a\nb"c' + "x" * 100_000})
    assert result.returncode == 1
    line = check_line(result.stdout)
    assert line.startswith('LDMATRIX-CHECK: env-corrupted: unexpected environment entry 1: "ODD=a\\nb\\"c')
    assert line.endswith('x"')


@pytest.mark.slow
def test_build_failure_names_the_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = provisioned_root("bullseye")
    shutil.copytree(REPO_ROOT / "c-repro", tmp_path / "c-repro")
    (tmp_path / "c-repro" / "hello.c").write_text("int main(void) { return syntax error; }\n")
    monkeypatch.setattr(reproducers, "REPO_ROOT", tmp_path)
    cache = Cache(tmp_path / "cache")
    with pytest.raises(LdmatrixError) as err:
        build("hello", root, cache, NullProgress())
    message = str(err.value)
    assert "\n" not in message and message.startswith("building hello in bullseye failed (exit status 1); log: ")
    log = Path(message.rsplit("log: ", 1)[1])
    assert "error" in log.read_text() and "$ gcc" in log.read_text()
    assert [p.name for p in cache.builds.iterdir()] == [log.name]


def test_embedded_library_is_built_first_with_an_executable_stack() -> None:
    command = REPRODUCERS["dlopen-execstack"].compile_command()
    assert command[:2] == ("sh", "-ec")
    library, program = command[2].splitlines()
    assert "-Wl,-z,execstack" in library and "/src/execstack_lib.c" in library
    assert program.endswith("-ldl") and "/src/dlopen_execstack.c" in program
