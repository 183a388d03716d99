"""Launch styles: what each passes and records, the scripts that do it, the axis in a matrix. Fast."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from harness import matrix
from harness.root import launch
from harness.root.environments import HOME, login_environment, set_environment
from harness.errors import MatrixError
from harness.model import Cell, CellResult, Launch, NameForm, Naming, Outcome, StorePath, Strategy
from harness.results.report import damage_table
from harness.root.launch import RECORD, Target, Tools

NIX_LD = (("NIX_LD", "/run/current-system/sw/share/nix-ld/lib/ld.so"),
          ("NIX_LD_LIBRARY_PATH", "/run/current-system/sw/share/nix-ld/lib"))
PROGRAM = f"{HOME}/bin/c-envprint"


def store(name: str) -> StorePath:
    return StorePath(name, "1", "0" * 32, Path("/nonexistent"))


TOOLS = Tools(busybox=store("busybox"))


def target(checks: bool = True, strategy_env: tuple[tuple[str, str], ...] = ()) -> Target:
    env = login_environment("nixos-login", nix_ld=NIX_LD, extra=strategy_env)
    return Target((PROGRAM,), env, NIX_LD, tuple(kv for kv in env if kv in strategy_env), HOME, checks)


def parse(record: bytes) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {"A": [], "E": [], "X": [], "P": []}
    items = record.split(b"\0")
    assert items[-1] == b""
    for item in items[:-1]:
        out[chr(item[0])].append(item[1:].decode())
    return out


def test_direct_records_what_bubblewrap_passes() -> None:
    got = launch.launch(Launch.DIRECT, target(), TOOLS)
    assert got.argv == (PROGRAM, "--expect", RECORD)
    record = parse(got.home_files[".ldmatrix/launch.expect"])
    assert record["A"] == [PROGRAM, "--expect", RECORD] and record["X"] == [PROGRAM] == record["P"]
    assert record["E"] == [f"{k}={v}" for k, v in got.env]  # PWD is already $HOME: bwrap keeps it
    assert record["E"][-1].startswith("NIX_LD_LIBRARY_PATH=")  # programs.nix-ld's variables last


def test_a_program_that_checks_nothing_gets_no_record() -> None:
    got = launch.launch(Launch.DIRECT, target(checks=False), TOOLS)
    assert got.argv == (PROGRAM,) and not got.home_files


def test_env_i_passes_the_list_in_order() -> None:
    t = target()
    got = launch.launch(Launch.ENV_I, t, TOOLS)
    assert got.argv[:3] == ("/nix/store/" + "0" * 32 + "-busybox-1/bin/busybox", "env", "-i")
    assert got.argv[3:3 + len(t.login_env)] == tuple(f"{k}={v}" for k, v in t.login_env)
    assert got.argv[-3:] == (PROGRAM, "--expect", RECORD)
    assert parse(got.home_files[".ldmatrix/launch.expect"])["E"] == [f"{k}={v}" for k, v in t.login_env]


@pytest.mark.parametrize("style, command", [
    (Launch.BASH_LOGIN, PROGRAM), (Launch.BASH_PATH, "c-envprint"), (Launch.DOT_SLASH, "./c-envprint"),
])
def test_bash_styles_run_a_login_shell_that_records(style: Launch, command: str) -> None:
    got = launch.launch(style, target(), TOOLS)
    bash, login, dash_c, script = got.argv
    assert (bash, login, dash_c) == ("/run/current-system/sw/bin/bash", "-l", "-c")
    *_, run, last = script.splitlines()
    assert run == f"{command} --expect {RECORD}"
    assert last == "exit $?"  # the program is the shell's child, as at a prompt
    assert f"ldmatrix_record {RECORD} {command} --expect {RECORD}" in script
    assert ("cd /home/user/bin" in script) == (style is Launch.DOT_SLASH)
    assert (".profile" in got.home_files) == (style is Launch.BASH_PATH)
    assert dict(got.env).keys() == {"HOME", "LOGNAME", "SHELL", "USER", "PATH", "TERM"}  # the session only


def test_bash_exports_what_the_strategy_adds_in_the_shell() -> None:
    got = launch.launch(Launch.BASH_LOGIN, target(strategy_env=(("LD_LIBRARY_PATH", "/x/lib"),)), TOOLS)
    assert "export LD_LIBRARY_PATH=/x/lib" in got.argv[3]


def test_python_adds_nix_lds_variables_to_an_environment_without_them() -> None:
    got = launch.launch(Launch.PYTHON, target(), TOOLS)
    assert not {"NIX_LD", "NIX_LD_LIBRARY_PATH"} & dict(got.env).keys()
    assert got.argv[:2] == ("/run/current-system/sw/bin/python3", f"{HOME}/.ldmatrix/launch.py")
    assert got.argv[2:6] == ("--set", f"NIX_LD={NIX_LD[0][1]}", "--set", f"NIX_LD_LIBRARY_PATH={NIX_LD[1][1]}")
    assert got.argv[-3:] == ("--record", RECORD, PROGRAM)


def test_set_environment_is_sorted_and_leaves_the_session_alone() -> None:
    text = set_environment((("USER", "u"), ("PWD", "/"), ("ZED", "1"), ("ALPHA", "a b")))
    exports = [line for line in text.splitlines() if line.startswith("export ") and "__NIXOS" not in line]
    assert exports == ["export ALPHA='a b'", "export ZED=1"]


# --- the scripts themselves, run on the host ----------------------------------------------------

def test_the_bash_recorder_records_what_bash_passes(tmp_path: Path) -> None:
    (tmp_path / "record.sh").write_text(launch.RECORD_SH)
    out = tmp_path / "rec"
    script = f". {tmp_path}/record.sh; export ZZ=1; ldmatrix_record {out} /bin/true a b"
    subprocess.run(["bash", "--norc", "-c", script], check=True, env={"PATH": "/usr/bin:/bin", "KEEP": "x"})
    record = parse(out.read_bytes())
    assert record["A"] == ["/bin/true", "a", "b"]
    assert record["X"] == ["/bin/true"] and record["P"] == [str(Path("/bin/true").resolve())]
    assert "_=/bin/true" in record["E"] and "ZZ=1" in record["E"] and "KEEP=x" in record["E"]


def test_the_python_launcher_adds_its_variables_last_and_records(tmp_path: Path) -> None:
    (tmp_path / "launch.py").write_text(launch.LAUNCH_PY)
    out = tmp_path / "rec"
    proc = subprocess.run([sys.executable, str(tmp_path / "launch.py"), "--set", "NIX_LD=/x", "--record", str(out),
                           "/bin/sh", "-c", "exit 3"], env={"PATH": "/usr/bin:/bin", "A": "1"})
    assert proc.returncode == 3
    record = parse(out.read_bytes())
    assert record["E"][-1] == "NIX_LD=/x" and "A=1" in record["E"]
    assert record["A"] == ["/bin/sh", "-c", "exit 3", "--expect", str(out)]
    failed = subprocess.run([sys.executable, str(tmp_path / "launch.py"), "/nonexistent"], capture_output=True,
                            text=True)
    assert failed.returncode == 127 and "failed to spawn /nonexistent: No such file or directory" in failed.stderr


# --- the axis ----------------------------------------------------------------------------------------

MATRIX = """\
binaries:
  c-envprint: {reproducer: envprint, built_in: bullseye}
axes:
  strategy: [patchelf, container]
  glibc: ["2.36"]
  env: [nixos-login, cargo-run]
  launch: [direct, bash-login, python]
expect:
  - outcome: ok
"""


def test_launch_axis_expands_and_collapses_where_it_does_not_apply(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(MATRIX)
    ids = {c.id for c in matrix.load(path).cells}
    assert "c-envprint.patchelf.glibc-2.36.bash-login" in ids
    assert "c-envprint.patchelf.glibc-2.36.cargo-run.python" in ids
    assert not any("cargo-run.bash-login" in i for i in ids)  # bash composes its own environment
    assert {i for i in ids if ".container." in i} == {"c-envprint.container.glibc-2.31",
                                                       "c-envprint.container.glibc-2.31.cargo-run"}


def test_unknown_launch_style_names_the_allowed(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(textwrap.dedent(MATRIX).replace("launch: [direct,", "launch: [ssh,"))
    with pytest.raises(MatrixError, match=r"unknown launch style 'ssh' \(allowed: direct, env-i, bash-login"):
        matrix.load(path)


def test_cell_id_names_the_launch_style() -> None:
    cell = Cell("c-envprint", (Strategy.NIX_LD,), "2.36", "1.2.2", "nixos-login", Launch.DOT_SLASH)
    assert cell.id == "c-envprint.nix-ld-1.2.2.glibc-2.36.dot-slash"
    assert cell.axes["launch"] == "dot-slash"


def test_damage_table_names_the_damaged_field() -> None:
    def result(launch_style: str, nix_ld: str, evidence: str, outcome: Outcome) -> CellResult:
        axes = {"binary": "c-envprint", "strategy": "nix-ld", "glibc": "2.36", "env": "nixos-login",
                "launch": launch_style, "nix_ld": nix_ld}
        return CellResult(f"x.{launch_style}.{nix_ld}", outcome, evidence, outcome, None, None, 1, 0.0, "sandbox",
                          axes=axes)

    table = damage_table([
        result("bash-login", "1.2.2", 'LDMATRIX-CHECK: env-corrupted: environment entry 3 damaged: '
                                      '"PWD=/home/user" became "/home/user"', Outcome.ENV_CORRUPTED),
        result("bash-login", "2.0.6", "LDMATRIX-CHECK: ok", Outcome.OK),
        result("direct", "1.2.2", 'LDMATRIX-CHECK: env-corrupted: AT_EXECFN damaged: "/a" became "/b"',
               Outcome.ENV_CORRUPTED),
    ], "2.36").splitlines()
    assert table[0] == "| started as | nix-ld 1.2.2 | nix-ld 2.0.6 |"
    assert table[2] == "| c-envprint, bash-login | PWD (`/home/user`) | ok |"
    assert table[3] == "| c-envprint, direct | AT_EXECFN (`/b`) |  |"


# --- how the program is named (the name axis) ------------------------------------------------------

def named_target(form: NameForm, program: str = PROGRAM) -> Target:
    env = login_environment("nixos-login", nix_ld=NIX_LD)
    return Target((program,), env, NIX_LD, (), HOME, True, form)


@pytest.mark.parametrize("style", [Launch.DIRECT, Launch.ENV_I])
def test_dot_slash_starts_from_the_programs_directory(style: Launch) -> None:
    got = launch.launch(style, named_target(NameForm.DOT_SLASH), TOOLS)
    assert got.argv[-3:] == ("./c-envprint", "--expect", RECORD) and got.cwd == f"{HOME}/bin"
    record = parse(got.home_files[".ldmatrix/launch.expect"])
    assert record["A"][0] == "./c-envprint" and record["X"] == ["./c-envprint"] and record["P"] == [PROGRAM]
    assert f"PWD={HOME}/bin" in record["E"]  # where the user is when they type ./c-envprint


@pytest.mark.parametrize("style", [Launch.DIRECT, Launch.ENV_I])
def test_a_bare_name_is_found_on_path_its_directory_first(style: Launch) -> None:
    got = launch.launch(style, named_target(NameForm.PATH), TOOLS)
    assert got.argv[-3:] == ("c-envprint", "--expect", RECORD) and got.cwd == HOME
    assert dict(got.env)["PATH"].startswith(f"{HOME}/bin:/run/wrappers/bin:")
    record = parse(got.home_files[".ldmatrix/launch.expect"])
    assert record["X"] == [PROGRAM]  # execvp hands execve the directory it found it in


def test_python_names_it_as_given_and_records_where_execve_finds_it(tmp_path: Path) -> None:
    got = launch.launch(Launch.PYTHON, named_target(NameForm.PATH), TOOLS)
    assert got.argv[-1] == "c-envprint"
    (tmp_path / "launch.py").write_text(launch.LAUNCH_PY)
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "prog").symlink_to("/bin/true")
    out = tmp_path / "rec"
    proc = subprocess.run([sys.executable, str(tmp_path / "launch.py"), "--record", str(out), "prog"],
                          env={"PATH": f"{tmp_path}/bin:/usr/bin:/bin"}, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert parse(out.read_bytes())["X"] == [f"{tmp_path}/bin/prog"]


def test_bash_login_names_it_as_the_name_axis_says() -> None:
    got = launch.launch(Launch.BASH_LOGIN, named_target(NameForm.DOT_SLASH, f"{HOME}/bin/c"), TOOLS)
    assert "cd /home/user/bin" in got.argv[3] and got.argv[3].splitlines()[-2] == f"./c --expect {RECORD}"


NAMES = """\
binaries:
  c-envprint: {reproducer: envprint, built_in: bullseye}
  uv: {wheel: uv==0.1.17, path: uv-0.1.17.data/scripts/uv, built_in: bullseye}
axes:
  strategy: [nix-ld]
  nix_ld: ["2.0.6"]
  glibc: ["2.36"]
  launch: [direct, bash-login, bash-path]
  name: [absolute, dot-slash, dot-slash-short]
expect:
  - when: {name: dot-slash-short}
    outcome: crash
  - outcome: ok
"""


def test_name_axis_expands_once_per_way_of_naming(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(NAMES)
    cells = {c.id: c for c in matrix.load(path).cells}
    assert "c-envprint.nix-ld-2.0.6.glibc-2.36" in cells  # absolute: the default, not in the id
    assert "c-envprint.nix-ld-2.0.6.glibc-2.36.name-dot-slash-short" in cells
    # bash names it itself: bash-login with ./NAME is the dot-slash style, bash-path keeps its own form
    assert "c-envprint.nix-ld-2.0.6.glibc-2.36.dot-slash" in cells
    assert "c-envprint.nix-ld-2.0.6.glibc-2.36.dot-slash.name-dot-slash-short" in cells
    assert "c-envprint.nix-ld-2.0.6.glibc-2.36.bash-path.name-path-short" in cells
    assert not any("bash-login.name-dot-slash" in i for i in cells)
    # a real program keeps its real name: no short one
    assert "uv.nix-ld-2.0.6.glibc-2.36.name-dot-slash" in cells
    assert not any(i.startswith("uv.") and "short" in i for i in cells)
    assert cells["c-envprint.nix-ld-2.0.6.glibc-2.36.dot-slash"].naming == Naming(NameForm.DOT_SLASH)


def test_an_unknown_name_names_the_allowed(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(NAMES.replace("dot-slash-short]", "dot-slash-tiny]"))
    with pytest.raises(MatrixError, match=r"unknown way of naming the program 'dot-slash-tiny'.*allowed: absolute"):
        matrix.load(path)


def test_the_file_name_of_a_short_and_a_long_name() -> None:
    from harness.model import NameLength
    from harness.root.programs import LONG_NAME, file_name

    assert file_name("c-envprint", NameLength.SHORT) == "c"
    assert len(file_name("c-envprint", NameLength.LONG)) == LONG_NAME
    assert file_name("c-envprint", NameLength.REAL) == "c-envprint"
