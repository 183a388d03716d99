//! What `spawn-env` and `spawn-inherit` share: run a child, tell it which
//! environment it should see, relay its exit status.
//!
//! Usage: `<program> [--no-expect] CHILD [ARGS...]`.  The child is run as
//! `CHILD [ARGS...] --expect FILE`, and FILE (`<program>.expect` in `$TMPDIR`, or
//! the current directory when `TMPDIR` is unset or empty) records what it is
//! passed, as NUL-terminated items tagged with one character: `A` each argument,
//! `E` each `KEY=VALUE` of the environment in order, `X` the file name given to
//! execve (AT_EXECFN: CHILD itself, which must contain a '/'), `P` the
//! canonical path of the program (/proc/self/exe).  With `--no-expect` (for a
//! real program, not the start-up printer) the child is run as `CHILD [ARGS...]`
//! and no FILE is written; its environment is the same either way.  stdin,
//! stdout and stderr inherited.  The exit code is the child's (a signal `n`
//! gives `128 + n`); a child that cannot be spawned gives
//! `<program>: failed to spawn <CHILD>: <io error>` on stderr and exit 127.
//!
//! Included by each binary with `#[path = "../launcher.rs"] mod launcher;` so
//! that plain `rustc` builds a binary from its one file, without cargo.

use std::collections::BTreeMap;
use std::env;
use std::ffi::{OsStr, OsString};
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

fn item(bytes: &mut Vec<u8>, tag: u8, parts: &[&[u8]]) {
    bytes.push(tag);
    for part in parts {
        bytes.extend_from_slice(part);
    }
    bytes.push(0);
}

fn write_expect_file(path: &PathBuf, argv: &[OsString], entries: &[(OsString, OsString)]) -> io::Result<()> {
    let mut bytes: Vec<u8> = Vec::new();
    for arg in argv {
        item(&mut bytes, b'A', &[arg.as_bytes()]);
    }
    for (key, value) in entries {
        item(&mut bytes, b'E', &[key.as_bytes(), b"=", value.as_bytes()]);
    }
    item(&mut bytes, b'X', &[argv[0].as_bytes()]);
    let exe = fs::canonicalize(&argv[0])?;
    item(&mut bytes, b'P', &[exe.as_os_str().as_bytes()]);
    fs::write(path, &bytes)
}

fn die(program: &str, message: String, code: i32) -> ! {
    let _ = writeln!(io::stderr(), "{}: {}", program, message);
    process::exit(code)
}

/// Runs the whole program; never returns.
pub fn run(program: &str, mode: Mode) -> ! {
    let mut args = env::args_os().skip(1).peekable();
    let record = match args.peek() {
        Some(first) if first.as_os_str() == OsStr::new("--no-expect") => false,
        _ => true,
    };
    if !record {
        args.next();
    }
    let child = match args.next() {
        Some(child) => child,
        None => die(program, format!("usage: {} [--no-expect] CHILD [ARGS...]", program), 2),
    };
    let child_args: Vec<OsString> = args.collect();

    let mut command = Command::new(&child);
    command.args(&child_args);
    if record {
        let entries = expected_environment(&mode);
        let path = match expect_file(program) {
            Ok(path) => path,
            Err(err) => die(program, format!("cannot find a directory for the expect file: {}", err), 125),
        };
        let mut argv: Vec<OsString> = vec![child.clone()];
        argv.extend(child_args.iter().cloned());
        argv.push(OsString::from("--expect"));
        argv.push(path.clone().into_os_string());
        if let Err(err) = write_expect_file(&path, &argv, &entries) {
            // The child cannot be found: spawning it below says so as the launcher always has.
            if fs::metadata(&child).is_ok() {
                die(program, format!("cannot write {}: {}", path.display(), err), 125);
            }
        }
        command.arg("--expect").arg(&path);
    }
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
