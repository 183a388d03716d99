// spawn_child.js (ldmatrix): a real prebuilt node starts a program, as VS Code's server does.
//
//     node spawn_child.js [--no-expect] CHILD [ARGS...] --expect FILE
//
// What c-repro/spawn_child.c does, in node: FILE is the record node's own parent (the launcher)
// wrote of what it passed. CHILD is started with child_process, its environment node's own
// (process.env, what node passes unless told otherwise), and is told through its own record
// (spawn-child.child.expect in $TMPDIR) that it should have received argv, FILE's environment
// (what the user's shell gave node), CHILD as the file name given to execve and its real path.
// CHILD's output is relayed with "child| " before each line; the one check line at the start of
// a line is this script's: ok, env-corrupted (CHILD's finding), or fail (CHILD did not run as it
// should; exit 126 or 127 as CHILD's, else 1). A CHILD killed by a signal: exit 128 + signal.
// With --no-expect, CHILD [ARGS...] runs with its output passed through, and its status relayed.
"use strict";
const fs = require("fs");
const os = require("os");
const path = require("path");
const childProcess = require("child_process");

const CHECK = "LDMATRIX-CHECK: ";
const ERRORS = { ENOENT: "No such file or directory", EACCES: "Permission denied", ENOEXEC: "Exec format error" };

function items(buffer) {
  const out = [];
  let start = 0;
  for (let i = 0; i < buffer.length; i++) {
    if (buffer[i] === 0) {
      out.push(buffer.subarray(start, i));
      start = i + 1;
    }
  }
  return out;
}

function record(file, argv, env, child) {
  const tagged = (tag, bytes) => Buffer.concat([Buffer.from(tag), Buffer.from(bytes), Buffer.from([0])]);
  const parts = argv.map((a) => tagged("A", a));
  parts.push(...env.map((e) => tagged("E", e)));
  let real = child;  // a CHILD that is not there: spawning it says so
  try {
    real = fs.realpathSync(child);
  } catch (err) {}
  parts.push(tagged("X", child), tagged("P", real));
  fs.writeFileSync(file, Buffer.concat(parts));
}

function relay(text, stream) {
  const lines = text.split("\n");
  if (lines[lines.length - 1] === "") lines.pop();
  for (const line of lines) stream.write("child| " + line + "\n");
  return lines;
}

function main() {
  let args = process.argv.slice(2);
  if (args.length < 3 || args[args.length - 2] !== "--expect") {
    process.stderr.write("usage: node spawn_child.js [--no-expect] CHILD [ARGS...] --expect FILE\n");
    return 2;
  }
  const own = args[args.length - 1];
  args = args.slice(0, -2);
  const printer = args[0] !== "--no-expect";
  if (!printer) args = args.slice(1);
  const [child, ...childArgs] = args;
  let argv = childArgs;
  if (printer) {
    const file = path.join(process.env.TMPDIR || "/tmp", "spawn-child.child.expect");
    argv = [...childArgs, "--expect", file];
    const env = items(fs.readFileSync(own)).filter((i) => i[0] === 0x45).map((i) => i.subarray(1));
    record(file, [child, ...argv], env, child);
  }
  const result = childProcess.spawnSync(child, argv, {
    env: process.env,
    stdio: printer ? ["ignore", "pipe", "pipe"] : "inherit",
    maxBuffer: 16 << 20,
  });
  if (result.error && result.status === null && result.signal === null) {
    const why = ERRORS[result.error.code] || result.error.code;
    process.stderr.write(`spawn_child.js: failed to spawn ${child}: ${why}\n`);
    return 127;
  }
  if (!printer) return result.signal ? 128 + os.constants.signals[result.signal] : result.status;
  const out = relay(result.stdout.toString(), process.stdout);
  const err = relay(result.stderr.toString(), process.stderr);
  if (result.signal) {
    process.stdout.write(`${CHECK}fail child ${child} killed by ${result.signal}\n`);
    return 128 + os.constants.signals[result.signal];
  }
  const check = out.filter((l) => l.startsWith(CHECK)).map((l) => l.slice(CHECK.length)).pop() || "";
  if (result.status === 0 && check === "ok") {
    process.stdout.write(`${CHECK}ok\n`);
    return 0;
  }
  if (check.startsWith("env-corrupted: ")) {
    process.stdout.write(`${CHECK}env-corrupted: child ${child}: ${check.slice(15)}\n`);
    return 1;
  }
  const first = check || err.find((l) => l !== "") || "(no output)";
  process.stdout.write(`${CHECK}fail child ${child} did not run as it should: exit ${result.status}: ${first}\n`);
  return result.status === 126 || result.status === 127 ? result.status : 1;
}

process.exitCode = main();
