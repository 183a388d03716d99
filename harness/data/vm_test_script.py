
import json
import os
import shlex
import threading
import time
import typing  # by its module name: nixpkgs puts `from typing_extensions import Protocol`, ... before the script


class Node(typing.Protocol):
    """What this script asks of a machine of the driver, with the driver's names."""

    def start(self) -> None: ...

    def wait_for_unit(self, unit: str, *, timeout: int = ...) -> None: ...

    def execute(self, command: str, *, timeout: int | None = ...) -> tuple[int, str]: ...

    def succeed(self, *commands: str, timeout: int | None = ...) -> str: ...

    def shutdown(self) -> None: ...

    def crash(self) -> None: ...


spec: dict[str, typing.Any] = json.load(open(SPEC))
q = shlex.quote
OUT, ERR = "/tmp/ldmatrix.out", "/tmp/ldmatrix.err"
results = open(os.path.join(os.environ["out"], RESULTS_FILE), "w")


def report(record: dict[str, typing.Any]) -> None:
    line = RESULT_TAG + json.dumps(record, sort_keys=True)
    print(line, flush=True)
    results.write(line + "\n")
    results.flush()


def within(vm: Node, seconds: int, what: str, action: typing.Callable[[], None]) -> None:
    """``action`` (a boot, a shutdown) in ``seconds`` at most: past them the machine is crashed,
    which ends the driver's wait in an error, and TimeoutError says so."""
    done, expired = threading.Event(), threading.Event()

    def watch() -> None:
        if not done.wait(seconds):
            expired.set()
            vm.crash()

    threading.Thread(target=watch, daemon=True).start()
    late = f"{what} took longer than {seconds}s, so the machine was stopped"
    try:
        action()
    except Exception as err:
        if expired.is_set():
            raise TimeoutError(late) from err
        raise
    finally:
        done.set()
    if expired.is_set():
        raise TimeoutError(late)


def boot(vm: Node, seconds: int) -> None:
    def up() -> None:
        vm.start()
        vm.wait_for_unit("multi-user.target", timeout=seconds)

    within(vm, seconds, "booting", up)


def read_output(vm: Node, path: str, limit: int) -> dict[str, typing.Any]:
    """A file of the VM, base64: whole up to the limit, else its head and tail (the rest counted)."""
    allowance = spec["cell_allowance"]
    size = int(vm.succeed(f"stat -c %s {path}", timeout=allowance).strip())
    if size <= limit:
        return {"size": size, "head": vm.succeed(f"base64 -w0 {path}", timeout=allowance).strip(), "tail": ""}
    tail = limit // 4
    return {"size": size,
            "head": vm.succeed(f"head -c {limit - tail} {path} | base64 -w0", timeout=allowance).strip(),
            "tail": vm.succeed(f"tail -c {tail} {path} | base64 -w0", timeout=allowance).strip()}


def run_cell(vm: Node, cell: dict[str, typing.Any]) -> dict[str, typing.Any]:
    allowance = spec["cell_allowance"]
    home, user = q(cell["home_target"]), q(cell["user"])
    owner = q(cell["user"] + ":" + cell["group"])
    vm.succeed(f"rm -rf {home} {OUT} {ERR} && cp -a {q(cell['home'])} {home} && chmod -R u+w {home}"
               f" && chown -R {owner} {home} && mkdir -p {q(cell['cwd'])}", timeout=allowance)
    for item in cell["files"]:  # the binaries, bound into HOME on the host
        vm.succeed(f"cp {q(item['src'])} {q(item['dest'])} && chmod 555 {q(item['dest'])}", timeout=allowance)
    env = " ".join(q(f"{key}={value}") for key, value in cell["env"])
    argv = " ".join(q(arg) for arg in cell["argv"])
    inner = f"cd {q(cell['cwd'])} && exec {ENV} -i -- {env} {argv}"
    command = (f"rc=0; {SU} -s /bin/sh {user} -c {q(inner)} </dev/null >{OUT} 2>{ERR} || rc=$?; "
               f"echo {FINISHED}; exit $rc")
    started = time.monotonic()
    status, said = vm.execute(command, timeout=cell["timeout"])
    duration = time.monotonic() - started
    finished = FINISHED in said
    return {"id": cell["id"], "rc": status, "finished": finished, "timed_out": not finished and status == 124,
            "duration": duration, "stdout": read_output(vm, OUT, spec["output_limit"]),
            "stderr": read_output(vm, ERR, spec["output_limit"])}


def run_machine(vm: Node, machine: dict[str, typing.Any]) -> None:
    try:
        boot(vm, spec["boot_timeout"])
    except Exception as err:  # the machine did not come up: each of its cells says so
        for cell in machine["cells"]:
            report({"id": cell["id"], "error": f"{machine['name']} did not start: {type(err).__name__}: {err}"})
        return
    for cell in machine["cells"]:
        if cell["missing"]:  # it names store paths the VM cannot have
            report({"id": cell["id"], "error": cell["missing"]})
            continue
        try:
            with subtest(cell["id"]):
                record = run_cell(vm, cell)
        except Exception as err:  # this cell's failure, not the test's end
            record = {"id": cell["id"], "error": f"{type(err).__name__}: {err}"}
        report(record)
    try:
        within(vm, spec["shutdown_timeout"], "shutting down", vm.shutdown)
    except Exception as err:  # its cells are reported; the next machine boots all the same
        print(f"ldmatrix: {machine['name']}: {type(err).__name__}: {err}", flush=True)


def run(nodes: typing.Mapping[str, Node]) -> None:
    for machine in spec["machines"]:
        run_machine(nodes[machine["name"]], machine)
    results.close()
