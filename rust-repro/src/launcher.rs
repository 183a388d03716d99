//! What `spawn-env` and `spawn-inherit` share: run a child, tell it which
//! environment it should see, relay its exit status.
//!
//! Usage: `<program> CHILD [ARGS...]`.  The environment passed to the child is
//! written as NUL-separated `KEY=VALUE` entries to `<program>.expect` in
//! `$TMPDIR` (or the current directory when `TMPDIR` is unset or empty), and
//! the child is run as `CHILD [ARGS...] --expect <that file>` with stdin,
//! stdout and stderr inherited.  The exit code is the child's (a signal `n`
//! gives `128 + n`); a child that cannot be spawned gives
//! `<program>: failed to spawn <CHILD>: <io error>` on stderr and exit 127.
//!
//! Included by each binary with `#[path = "../launcher.rs"] mod launcher;` so
//! that plain `rustc` builds a binary from its one file, without cargo.

use std::collections::BTreeMap;
use std::env;
use std::ffi::OsString;
use std::fs;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{self, Command};

/// How the parent builds the child's environment.
#[allow(dead_code)] // each binary uses one variant
pub enum Mode {
    /// `Command::env("FOO", "BAR")`: Rust captures its environment into a
    /// sorted map and passes a freshly built, sorted envp (the seed's case).
    SetFoo,
    /// No environment call: Rust passes `environ` unchanged.
    Inherit,
}

/// The environment the child should see, in the order Rust passes it.
fn expected_environment(mode: &Mode) -> Vec<(OsString, OsString)> {
    match mode {
        Mode::SetFoo => {
            // Mirrors std's CommandEnv::capture: a BTreeMap, later entries win.
            let mut map: BTreeMap<OsString, OsString> = BTreeMap::new();
            for (key, value) in env::vars_os() {
                map.insert(key, value);
            }
            map.insert(OsString::from("FOO"), OsString::from("BAR"));
            map.into_iter().collect()
        }
        Mode::Inherit => env::vars_os().collect(),
    }
}

fn expect_file(program: &str) -> io::Result<PathBuf> {
    let dir = match env::var_os("TMPDIR") {
        Some(ref dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from("."),
    };
    let dir = if dir.is_absolute() { dir } else { env::current_dir()?.join(dir) };
    Ok(dir.join(format!("{}.expect", program)))
}

fn write_expect_file(path: &PathBuf, entries: &[(OsString, OsString)]) -> io::Result<()> {
    let mut bytes: Vec<u8> = Vec::new();
    for (key, value) in entries {
        bytes.extend_from_slice(key.as_bytes());
        bytes.push(b'=');
        bytes.extend_from_slice(value.as_bytes());
        bytes.push(0);
    }
    fs::write(path, &bytes)
}

fn die(program: &str, message: String, code: i32) -> ! {
    let _ = writeln!(io::stderr(), "{}: {}", program, message);
    process::exit(code)
}

/// Runs the whole program; never returns.
pub fn run(program: &str, mode: Mode) -> ! {
    let mut args = env::args_os().skip(1);
    let child = match args.next() {
        Some(child) => child,
        None => die(program, format!("usage: {} CHILD [ARGS...]", program), 2),
    };
    let child_args: Vec<OsString> = args.collect();

    let entries = expected_environment(&mode);
    let path = match expect_file(program) {
        Ok(path) => path,
        Err(err) => die(program, format!("cannot find a directory for the expect file: {}", err), 125),
    };
    if let Err(err) = write_expect_file(&path, &entries) {
        die(program, format!("cannot write {}: {}", path.display(), err), 125);
    }

    let mut command = Command::new(&child);
    command.args(&child_args).arg("--expect").arg(&path);
    if let Mode::SetFoo = mode {
        command.env("FOO", "BAR");
    }
    let _ = io::stdout().flush();
    match command.status() {
        Ok(status) => match (status.code(), status.signal()) {
            (Some(code), _) => process::exit(code),
            (None, Some(signal)) => process::exit(128 + signal),
            (None, None) => process::exit(125),
        },
        Err(err) => die(
            program,
            format!("failed to spawn {}: {}", child.to_string_lossy(), err),
            127,
        ),
    }
}
