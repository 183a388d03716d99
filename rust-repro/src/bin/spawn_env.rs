//! spawn-env CHILD [ARGS...] — the seed's Rust parent.
//!
//! Calls `Command::env("FOO", "BAR")`, so Rust hands the child a sorted
//! environment built from its own; with nix-ld 1.x and LD_LIBRARY_PATH unset
//! this puts NIX_PATH right after NIX_LD_LIBRARY_PATH, where nix-ld's in-place
//! rename corrupts it.  See ../launcher.rs for the arguments and exit codes.

#[path = "../launcher.rs"]
mod launcher;

fn main() {
    launcher::run("spawn-env", launcher::Mode::SetFoo)
}
