"""~/.ldmatrix/launch.py (ldmatrix): start a program the way Python scripts do.

    python3 launch.py [--set KEY=VALUE]... [--record FILE] PROGRAM [ARGS...]

env = {**os.environ, KEY: VALUE, ...}; subprocess.run([PROGRAM, ARGS..., --expect FILE], env=env),
after writing FILE: what is passed (argv, env in order, AT_EXECFN, /proc/self/exe).
"""
import os
import shutil
import subprocess
import sys


def record(path, argv, env):
    # execve gets PROGRAM as given, or for a bare name the first match on the environment's PATH
    execfn = argv[0] if "/" in argv[0] else shutil.which(argv[0], path=env.get("PATH", "")) or argv[0]
    items = [b"A" + os.fsencode(a) for a in argv]
    items += [b"E" + os.fsencode(k) + b"=" + os.fsencode(v) for k, v in env.items()]
    items += [b"X" + os.fsencode(execfn), b"P" + os.fsencode(os.path.realpath(execfn))]
    with open(path, "wb") as out:
        out.write(b"\0".join(items) + b"\0")


def main():
    args = sys.argv[1:]
    added = {}
    while args[:1] == ["--set"]:
        key, _, value = args[1].partition("=")
        added[key] = value
        args = args[2:]
    record_path = None
    if args[:1] == ["--record"]:
        record_path, args = args[1], args[2:]
    env = {**os.environ, **added}
    argv = args + (["--expect", record_path] if record_path else [])
    if record_path:
        record(record_path, argv, env)
    try:
        proc = subprocess.run(argv, env=env)
    except OSError as err:
        print(f"launch.py: failed to spawn {argv[0]}: {err.strerror} (os error {err.errno})", file=sys.stderr)
        sys.exit(127)
    sys.exit(proc.returncode if proc.returncode >= 0 else 128 - proc.returncode)


main()
