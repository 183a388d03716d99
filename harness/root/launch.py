"""Launch styles: how a cell's program is started, each by a real program doing what people do.

nix-ld 1.x damages whatever follows ``NIX_LD_LIBRARY_PATH=`` on the new program's stack: the next
environment entry, or, when it is the last one, the file name the kernel put after the
environment (AT_EXECFN). Which that is depends on who started the program and how, so each style
is a real launcher with its own way of ordering the environment:

- ``direct``: bubblewrap execs it by absolute path with the login environment in profile order;
- ``env-i``: ``env -i K=V ... PROGRAM``, an explicit list in that order (busybox's env);
- ``bash-login``, ``bash-path``, ``dot-slash``: the system's bash (a pin's own on its column) as a
  login shell that sourced the NixOS-like /etc/profile exporting ``programs.nix-ld``'s variables,
  running ``/home/user/bin/PROGRAM``, ``PROGRAM`` through PATH, or ``./PROGRAM`` from its directory: bash
  passes its exports in the order of its own variable table;
- ``python``: ``subprocess.run([...], env={**os.environ, ...nix-ld's variables})`` in the system's
  python3, started without them, so they are the dict's last keys.

Each style names the program as the cell's ``name`` says (harness/model.py ``Naming``): by its
absolute path, as ``./NAME`` from its directory (bubblewrap's --chdir, or bash's ``cd``), or as a
bare ``NAME`` found on PATH, its directory put first (in the environment, or by ~/.profile for
bash). bash-path and dot-slash are bash-login with the program named through PATH and as ./NAME.
The name is on the program's stack twice, as argv[0] and as the file name execve was given
(AT_EXECFN, right after the environment), which is where nix-ld 1.x's overrun lands.

When the program is the start-up printer (envprint), the launcher records what it passes (argv,
every environment entry in order, AT_EXECFN, /proc/self/exe) in ``RECORD`` and the program is
given ``--expect RECORD``, exactly as the Rust launchers do for their child. bash records through
``env -0``, which it hands the same exports, and sets ``$_`` to the path it runs, as it does for
every command.
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass, field

from harness import data_text
from harness.model import Launch, Link, NameForm, StorePath
from harness.root.environments import HOME, login_session, with_pwd
from harness.root.system import SW_BIN

RECORD = f"{HOME}/.ldmatrix/launch.expect"

# bash: write what this shell passes to the command it runs next.
RECORD_SH = data_text("record.sh")  # harness/data/record.sh

# python: start the program with an environment dict, as scripts do.
LAUNCH_PY = data_text("launch.py")  # harness/data/launch.py


@dataclass(frozen=True)
class Tools:
    """What the launch styles run besides the system's bash and python3: busybox (env -i); on a
    nixpkgs pin's column, which has no system of ours, the pin's own bash."""

    busybox: StorePath
    bash: StorePath | None = None


@dataclass(frozen=True)
class Target:
    """The program a launch style starts, and the environment a NixOS user would give it."""

    argv: tuple[str, ...]  # absolute path first
    login_env: tuple[tuple[str, str], ...]  # in the profile's order, nix-ld's variables where it puts them
    nix_ld_env: tuple[tuple[str, str], ...]  # what programs.nix-ld exports (in login_env too)
    strategy_env: tuple[tuple[str, str], ...]  # what the strategy adds (LD_LIBRARY_PATH; in login_env too)
    cwd: str
    checks: bool  # the program is the start-up printer: record what it is passed
    form: NameForm = NameForm.ABSOLUTE  # how it is named: by its path, ./NAME from its directory, NAME on PATH


@dataclass(frozen=True)
class Launched:
    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...]
    home_files: dict[str, bytes] = field(default_factory=dict)  # relative to HOME
    links: tuple[Link, ...] = ()
    store_paths: tuple[StorePath, ...] = ()
    cwd: str = HOME  # where the launcher starts (./NAME: the program's directory)


def record_bytes(argv: tuple[str, ...], env: tuple[tuple[str, str], ...], execfn: str, exe: str) -> bytes:
    items = [f"A{a}" for a in argv] + [f"E{k}={v}" for k, v in env] + [f"X{execfn}", f"P{exe}"]
    return b"".join(os.fsencode(item) + b"\0" for item in items)


def _with_record(target: Target, argv: tuple[str, ...] | None = None) -> tuple[str, ...]:
    argv = target.argv if argv is None else argv
    return (*argv, "--expect", RECORD) if target.checks else argv


def _harness_recorded(target: Target, env: tuple[tuple[str, str], ...], argv: tuple[str, ...],
                      execfn: str | None = None) -> dict[str, bytes]:
    if not target.checks:
        return {}
    return {_home_relative(RECORD): record_bytes(argv, env, execfn or argv[0], target.argv[0])}


def _home_relative(path: str) -> str:
    return os.path.relpath(path, HOME)


def with_path_first(env: tuple[tuple[str, str], ...], directory: str) -> tuple[tuple[str, str], ...]:
    """PATH with ``directory`` first, as a user who put their programs there has it."""
    return tuple((k, f"{directory}:{v}" if k == "PATH" else v) for k, v in env)


@dataclass(frozen=True)
class Named:
    """The program as a launcher other than bash names it: argv, the file name execve gets
    (AT_EXECFN: a bare name is found on PATH, its directory first), where it is started from, and
    the environment it is given (PWD there, PATH with its directory first)."""

    argv: tuple[str, ...]
    execfn: str
    cwd: str
    env: tuple[tuple[str, str], ...]


def named(target: Target) -> Named:
    directory, name = target.argv[0].rsplit("/", 1)
    rest = target.argv[1:]
    if target.form is NameForm.DOT_SLASH:
        return Named((f"./{name}", *rest), f"./{name}", directory, with_pwd(target.login_env, directory))
    if target.form is NameForm.PATH:
        return Named((name, *rest), target.argv[0], target.cwd, with_path_first(target.login_env, directory))
    return Named(target.argv, target.argv[0], target.cwd, target.login_env)


def direct(target: Target, tools: Tools) -> Launched:
    how = named(target)
    argv = _with_record(target, how.argv)
    passed = with_pwd(how.env, how.cwd)  # bubblewrap's --chdir sets PWD
    return Launched(argv, how.env, _harness_recorded(target, passed, argv, how.execfn), cwd=how.cwd)


def env_i(target: Target, tools: Tools) -> Launched:
    how = named(target)
    argv = _with_record(target, how.argv)
    env = f"{tools.busybox.store_path}/bin/busybox"
    outer = (env, "env", "-i", *(f"{k}={v}" for k, v in how.env), *argv)
    return Launched(outer, how.env, _harness_recorded(target, how.env, argv, how.execfn), cwd=how.cwd)


def _bash(target: Target, tools: Tools, form: NameForm) -> Launched:
    """The system's bash (/run/current-system/sw/bin/bash, harness/root/system.py) as a login shell: it
    reads /etc/profile, which exports the system's variables, then runs the program named as
    ``form`` says (bash-login: by its path; bash-path: through PATH, its directory put first by
    ~/.profile; dot-slash: ./NAME after cd to its directory)."""
    directory, name = target.argv[0].rsplit("/", 1)
    command = {NameForm.ABSOLUTE: target.argv[0], NameForm.PATH: name, NameForm.DOT_SLASH: f"./{name}"}[form]
    home_files: dict[str, bytes] = {}
    lines = []
    if form is NameForm.DOT_SLASH:
        lines.append(f"cd {shlex.quote(directory)}")
    for key, value in target.strategy_env:  # what the user exports in the shell before running it
        lines.append(f"export {key}={shlex.quote(value)}")
    run = (command, *target.argv[1:], *(("--expect", RECORD) if target.checks else ()))
    if target.checks:
        home_files[".ldmatrix/record.sh"] = RECORD_SH.encode()
        lines.append(". ~/.ldmatrix/record.sh")
        lines.append(f"ldmatrix_record {shlex.quote(RECORD)} {shlex.join(run)}")
    lines.append(shlex.join(run))
    # as at a prompt, the program is the shell's child: bash 5.1 would exec a -c string's last
    # command itself, and lower SHLVL for it, which bash 5.2 does not do
    lines.append("exit $?")
    if form is NameForm.PATH:
        first = "$HOME/bin" if directory == f"{HOME}/bin" else shlex.quote(directory)
        home_files[".profile"] = f'export PATH="{first}:$PATH"\n'.encode()
    bash = f"{SW_BIN}/bash"
    own = (Link(bash, f"{tools.bash.store_path}/bin/bash"),) if tools.bash else ()
    return Launched(argv=(bash, "-l", "-c", "\n".join(lines)), env=login_session(target.login_env),
                    home_files=home_files, links=own, store_paths=(tools.bash,) if tools.bash else ())


def bash_login(target: Target, tools: Tools) -> Launched:
    return _bash(target, tools, target.form)


def bash_path(target: Target, tools: Tools) -> Launched:
    return _bash(target, tools, NameForm.PATH)


def dot_slash(target: Target, tools: Tools) -> Launched:
    return _bash(target, tools, NameForm.DOT_SLASH)


def python(target: Target, tools: Tools) -> Launched:
    how = named(target)
    outer_env = tuple(kv for kv in how.env if kv not in target.nix_ld_env)
    sets = [arg for key, value in target.nix_ld_env for arg in ("--set", f"{key}={value}")]
    record = ["--record", RECORD] if target.checks else []
    python3 = f"{SW_BIN}/python3"
    argv = (python3, f"{HOME}/.ldmatrix/launch.py", *sets, *record, *how.argv)
    return Launched(argv, outer_env, {".ldmatrix/launch.py": LAUNCH_PY.encode()}, cwd=how.cwd)


STYLES = {
    Launch.DIRECT: direct,
    Launch.ENV_I: env_i,
    Launch.BASH_LOGIN: bash_login,
    Launch.BASH_PATH: bash_path,
    Launch.DOT_SLASH: dot_slash,
    Launch.PYTHON: python,
}


def launch(style: Launch, target: Target, tools: Tools) -> Launched:
    return STYLES[style](target, tools)
