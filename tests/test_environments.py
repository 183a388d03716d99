"""Login environments: the order of entries is part of the experiment."""

from __future__ import annotations

from harness.root.environments import CARGO_LD_LIBRARY_PATH, login_environment

NIX_LD = (("NIX_LD", "/run/current-system/sw/share/nix-ld/lib/ld.so"),
          ("NIX_LD_LIBRARY_PATH", "/run/current-system/sw/share/nix-ld/lib"))


def keys(env) -> list[str]:
    return [k for k, _ in env]


def test_nixos_login_puts_nix_ld_last() -> None:
    assert keys(login_environment("nixos-login", nix_ld=NIX_LD))[-2:] == ["NIX_LD", "NIX_LD_LIBRARY_PATH"]


def test_nix_path_next_follows_nix_ld_library_path() -> None:
    k = keys(login_environment("nix-path-next", nix_ld=NIX_LD))
    assert k[k.index("NIX_LD_LIBRARY_PATH") + 1] == "NIX_PATH"


def test_sorted_is_sorted_by_bytes() -> None:
    k = keys(login_environment("sorted", nix_ld=NIX_LD))
    assert k == sorted(k, key=str.encode)
    assert k[k.index("NIX_LD_LIBRARY_PATH") + 1] == "NIX_PATH"  # what Rust's Command::env hands a child


def test_cargo_run_sets_ld_library_path_and_strategies_prepend() -> None:
    env = dict(login_environment("cargo-run", extra=(("LD_LIBRARY_PATH", "/nix/store/x/lib"),)))
    assert env["LD_LIBRARY_PATH"] == f"/nix/store/x/lib:{CARGO_LD_LIBRARY_PATH}"


def test_no_nix_ld_variables_without_nix_ld() -> None:
    assert not any(k.startswith("NIX_LD") for k in keys(login_environment("nixos-login")))


def test_fhs_environment_is_a_containers() -> None:
    env = dict(login_environment("nixos-login", fhs=True))
    assert env["PATH"].startswith("/usr/local/sbin") and "NIX_PATH" not in env
