//! spawn-inherit CHILD [ARGS...] — the control for spawn-env.
//!
//! Makes no environment call, so Rust passes `environ` to the child unchanged
//! (in the order the parent received it).  See ../launcher.rs for the
//! arguments and exit codes.

#[path = "../launcher.rs"]
mod launcher;

fn main() {
    launcher::run("spawn-inherit", launcher::Mode::Inherit)
}
