"""Login environments a cell runs in: what a NixOS user's shell hands to a program, in order.

The *order* of environment entries is part of the experiment: nix-ld 1.x rewrites
``NIX_LD_LIBRARY_PATH=`` in place, and what breaks depends on which entry comes next.
Each profile fixes the order; the ``env`` axis of a matrix picks profiles.
"""

from __future__ import annotations

from dataclasses import dataclass

HOME = "/home/user"

# What a NixOS 23.11 login shell exports (user "user", channels as root installs them).
NIXOS_BASE: tuple[tuple[str, str], ...] = (
    ("HOME", HOME),
    ("LANG", "C.UTF-8"),
    ("LOCALE_ARCHIVE", "/run/current-system/sw/lib/locale/locale-archive"),
    ("LOGNAME", "user"),
    ("NIX_PATH", "nixpkgs=/nix/var/nix/profiles/per-user/root/channels/nixos"
                 ":nixos-config=/etc/nixos/configuration.nix:/nix/var/nix/profiles/per-user/root/channels"),
    ("NIX_PROFILES", f"/run/current-system/sw /nix/var/nix/profiles/default /etc/profiles/per-user/user "
                     f"{HOME}/.local/state/nix/profile /nix/profile {HOME}/.nix-profile"),
    ("NIX_USER_PROFILE_DIR", "/nix/var/nix/profiles/per-user/user"),
    ("PWD", HOME),  # cells start in $HOME; bubblewrap and env(1) would set it anyway
    ("PATH", f"/run/wrappers/bin:{HOME}/.nix-profile/bin:/nix/profile/bin:{HOME}/.local/state/nix/profile/bin"
             ":/etc/profiles/per-user/user/bin:/nix/var/nix/profiles/default/bin:/run/current-system/sw/bin"),
    ("SHELL", "/run/current-system/sw/bin/bash"),
    ("TMPDIR", "/tmp"),
    ("TZDIR", "/etc/zoneinfo"),
    ("USER", "user"),
    ("XDG_CONFIG_DIRS", f"{HOME}/.nix-profile/etc/xdg:/etc/profiles/per-user/user/etc/xdg"
                        ":/nix/var/nix/profiles/default/etc/xdg:/run/current-system/sw/etc/xdg"),
)

# What a Debian container (docker run debian) hands to its command.
FHS_BASE: tuple[tuple[str, str], ...] = (
    ("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"),
    ("HOME", HOME),
    ("PWD", HOME),
    ("TMPDIR", "/tmp"),
)

# What `cargo run` adds: cargo puts its target dirs on LD_LIBRARY_PATH.
CARGO_LD_LIBRARY_PATH = f"{HOME}/project/target/debug/deps:{HOME}/project/target/debug"


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    nix_ld_position: str  # "end": NIX_LD* last; "before-nix-path": NIX_LD_LIBRARY_PATH right before NIX_PATH
    sort: bool = False  # every entry sorted by key, as Rust's Command::env builds envp
    cargo_run: bool = False  # LD_LIBRARY_PATH set, as under `cargo run`
    # What happens to programs.nix-ld's NIX_LD_LIBRARY_PATH: "kept", "unset", or "poisoned" (":POISON"
    # after it), and LD_LIBRARY_PATH set to a value: the environments of nix-ld's own tests (tests/tests.rs).
    nix_ld_library_path: str = "kept"
    ld_library_path: str | None = None


PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile("nixos-login", "a NixOS login shell; programs.nix-ld's variables come last", "end"),
        Profile("nix-path-next", "a NixOS login shell where NIX_PATH follows NIX_LD_LIBRARY_PATH",
                "before-nix-path"),
        Profile("sorted", "every entry sorted by key, the order Rust's Command::env passes", "end", sort=True),
        Profile("cargo-run", "a NixOS login shell under `cargo run`: LD_LIBRARY_PATH is set", "end",
                cargo_run=True),
        # nix-ld's own tests (tests/tests.rs in its 2.x source): env_remove("LD_LIBRARY_PATH") and
        # env_remove("NIX_LD_LIBRARY_PATH"); NIX_LD_LIBRARY_PATH "{libtest}:POISON"; with LD_LIBRARY_PATH "NEEDLE"
        Profile("no-library-path", "nix-ld's tests: NIX_LD set, NIX_LD_LIBRARY_PATH and LD_LIBRARY_PATH unset", "end",
                nix_ld_library_path="unset"),
        Profile("poisoned", "nix-ld's tests: NIX_LD_LIBRARY_PATH ends in :POISON, LD_LIBRARY_PATH unset", "end",
                nix_ld_library_path="poisoned"),
        Profile("poisoned-needle", "nix-ld's tests: NIX_LD_LIBRARY_PATH ends in :POISON, LD_LIBRARY_PATH=NEEDLE",
                "end", nix_ld_library_path="poisoned", ld_library_path="NEEDLE"),
    )
}
POISON = ":POISON"  # what nix-ld's tests append to NIX_LD_LIBRARY_PATH (tests/tests.rs)


def login_environment(profile: str, *, fhs: bool = False, nix_ld: tuple[tuple[str, str], ...] = (),
                      extra: tuple[tuple[str, str], ...] = ()) -> tuple[tuple[str, str], ...]:
    """The ordered environment of a cell.

    ``nix_ld``: the variables programs.nix-ld sets (NIX_LD, NIX_LD_LIBRARY_PATH), placed as the
    profile says. ``extra``: what a strategy adds (e.g. LD_LIBRARY_PATH), replacing earlier values.
    """
    spec = PROFILES[profile]
    if spec.nix_ld_library_path == "unset":
        nix_ld = tuple(kv for kv in nix_ld if kv[0] != "NIX_LD_LIBRARY_PATH")
    elif spec.nix_ld_library_path == "poisoned":
        nix_ld = tuple((k, v + POISON if k == "NIX_LD_LIBRARY_PATH" else v) for k, v in nix_ld)
    entries = list(FHS_BASE if fhs else NIXOS_BASE)
    if spec.nix_ld_position == "before-nix-path" and nix_ld:
        at = next(i for i, (k, _) in enumerate(entries) if k == "NIX_PATH")
        entries[at:at] = list(nix_ld)
    else:
        entries.extend(nix_ld)
    additions = list(extra)
    if spec.cargo_run:
        additions.insert(0, ("LD_LIBRARY_PATH", CARGO_LD_LIBRARY_PATH))
    if spec.ld_library_path is not None:
        additions.insert(0, ("LD_LIBRARY_PATH", spec.ld_library_path))
    for key, value in additions:
        existing = [i for i, (k, _) in enumerate(entries) if k == key]
        if existing and key == "LD_LIBRARY_PATH":
            i = existing[0]
            entries[i] = (key, f"{value}:{entries[i][1]}")
        elif existing:
            entries[existing[0]] = (key, value)
        else:
            entries.append((key, value))
    if spec.sort:
        entries.sort(key=lambda kv: kv[0].encode())
    return tuple(entries)


def with_pwd(env: tuple[tuple[str, str], ...], cwd: str) -> tuple[tuple[str, str], ...]:
    """The envp bubblewrap hands over: ``--chdir`` sets PWD, in place if present, else appended last."""
    if any(key == "PWD" for key, _ in env):
        return tuple((key, cwd if key == "PWD" else value) for key, value in env)
    return (*env, ("PWD", cwd))


# What login(1) and PAM hand a NixOS session's shell before /etc/profile runs.
SESSION_KEYS = ("HOME", "LOGNAME", "SHELL", "USER")
SESSION_PATH = "/run/wrappers/bin:/run/current-system/sw/bin"  # replaced by /etc/set-environment's PATH


def login_session(env: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
    """The environment a login shell starts with: the session's own variables, nothing of the system's."""
    session = [(k, v) for k, v in env if k in SESSION_KEYS]
    return (*session, ("PATH", SESSION_PATH), ("TERM", "xterm-256color"))


def set_environment(env: tuple[tuple[str, str], ...]) -> str:
    """/etc/set-environment: every system variable of ``env`` (not the session's, not PWD), exported
    in attribute order, as NixOS writes environment.variables."""
    import shlex

    lines = ["# /etc/set-environment (ldmatrix, after NixOS's): environment.variables, in attribute order.",
             'if [ -n "$__NIXOS_SET_ENVIRONMENT_DONE" ]; then return; fi',
             "export __NIXOS_SET_ENVIRONMENT_DONE=1"]
    system = sorted((k, v) for k, v in env if k not in SESSION_KEYS and k != "PWD")
    lines += [f"export {k}={shlex.quote(v)}" for k, v in system]
    return "\n".join(lines) + "\n"
