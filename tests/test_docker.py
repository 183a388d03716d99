"""The docker runner and its images: fast tests need only Python; ``docker`` ones a running engine.

Every docker test ends by checking that no container labelled ldmatrix is left behind.
"""

from __future__ import annotations

import dataclasses
import io
import os
import tarfile
import threading
import time
from pathlib import Path

import pytest

from harness.docker import containers, images
from harness.docker import engine as docker_engine
from harness.root.environments import with_pwd
from harness.model import GlibcSet, Link, Mount, PreparedCell, RootKind, RootSpec, StorePath
from harness.outcome import classify
from harness.runners import docker as docker_runner
from harness.runners.sandbox import SandboxRunner
from testinfra_backend import bare_root

# --------------------------------------------------------------------------- fast


def fake_store_path(tmp: Path, name: str, digest: str) -> StorePath:
    host = tmp / f"{digest}-{name}-1"
    (host / "lib").mkdir(parents=True)
    (host / "lib" / f"lib{name}.so").write_bytes(b"\x7fELF")
    (host / "lib" / f"lib{name}.so.1").symlink_to(f"lib{name}.so")
    return StorePath(name, "1", digest, host)


def fake_nixos_root(tmp: Path) -> RootSpec:
    busybox = fake_store_path(tmp, "busybox", "b" * 32)
    glibc = fake_store_path(tmp, "glibc", "g" * 32)
    return RootSpec(kind=RootKind.NIXOS, digest="d" * 16, store_paths=(glibc, busybox),
                    links=(Link("/bin/sh", f"{busybox.store_path}/bin/busybox"),))


def tar_members(root: RootSpec) -> dict[str, tarfile.TarInfo]:
    buffer = io.BytesIO()
    images.write_root_tar(root, buffer)
    buffer.seek(0)
    with tarfile.open(fileobj=buffer) as tar:
        return {m.name: m for m in tar.getmembers()}


def test_nixos_image_tar_has_the_store_and_sh_and_no_lib(tmp_path: Path) -> None:
    root = fake_nixos_root(tmp_path)
    members = tar_members(root)
    assert members["bin/sh"].issym() and members["bin/sh"].linkname == f"/nix/store/{'b' * 32}-busybox-1/bin/busybox"
    so = members[f"nix/store/{'g' * 32}-glibc-1/lib/libglibc.so.1"]
    assert so.issym() and so.linkname == "libglibc.so", "symbolic links must stay links"
    assert members["tmp"].mode == 0o1777 and members["home"].isdir() and members["run"].isdir()
    assert not {"lib", "lib64", "usr", "usr/lib"} & set(members)
    assert all(m.uid == 0 for m in members.values())


def test_fhs_image_tar_leaves_out_what_the_container_provides(tmp_path: Path) -> None:
    fhs = tmp_path / "bookworm-abc"
    for name in ("usr/bin", "etc", "proc/1", "dev/pts", "home/someone", "tmp/junk"):
        (fhs / name).mkdir(parents=True)
    (fhs / "lib64").symlink_to("usr/lib64")
    members = tar_members(RootSpec(kind=RootKind.FHS, digest="x", fhs_root=fhs))
    assert members["lib64"].issym() and members["lib64"].linkname == "usr/lib64"
    assert "usr/bin" in members and "etc" in members and members["home"].isdir()
    assert not [n for n in members if n.startswith(("proc", "dev", "home/", "tmp/"))]


def _parsed_cli(argv: list[str]) -> dict:
    """``docker run``'s flags read back into ``containers.arguments``' plain values."""
    assert argv[:3] == ["docker", "run", "--rm"]
    got: dict = {"init": False, "read_only": False, "cap_drop": [], "security_opt": [], "ulimits": [], "tmpfs": {},
                 "mounts": [], "labels": {}, "environment": []}
    rest = iter(argv[3:])
    scalar = {"--network": "network_mode", "--hostname": "hostname", "--user": "user", "--memory": "mem_limit",
              "--memory-swap": "memswap_limit", "--pids-limit": "pids_limit", "--log-driver": "log_driver",
              "--workdir": "working_dir"}
    for flag in rest:
        if not flag.startswith("-"):
            got["image"], got["command"] = flag, list(rest)
            break
        if flag in ("--init", "--read-only"):
            got[flag.strip("-").replace("-", "_")] = True
        elif flag in scalar:
            value = next(rest)
            got[scalar[flag]] = int(value) if value.isdigit() else value
        elif flag in ("--cap-drop", "--security-opt", "--env"):
            got[{"--cap-drop": "cap_drop", "--security-opt": "security_opt", "--env": "environment"}[flag]].append(
                next(rest))
        elif flag == "--ulimit":
            name, _, value = next(rest).partition("=")
            got["ulimits"].append((name, int(value)))
        elif flag == "--tmpfs":
            target, _, options = next(rest).partition(":")
            got["tmpfs"][target] = options
        elif flag == "--label":
            key, _, value = next(rest).partition("=")
            got["labels"][key] = value
        elif flag == "--mount":
            fields = dict(f.partition("=")[::2] for f in next(rest).split(","))
            got["mounts"].append((fields["source"], fields["target"], "readonly" in fields))
        else:
            raise AssertionError(f"{flag}: a flag the SDK side has no keyword for")
    return got


def test_the_command_line_and_the_sdk_make_the_same_container(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """command.sh's ``docker run`` and create_container come from one spec: read back, they agree."""
    from docker.types import LogConfig

    home = tmp_path / "home"
    (home / "bin").mkdir(parents=True)
    (home / "bin" / "launch.sh").write_text("#!/bin/sh\n")
    spec = containers.ContainerSpec(
        image="ldmatrix/nixos-root:abc", argv=("/bin/sh", "-c", "echo 'a b'"), env=(("B", "1"), ("A", "x=y")),
        cwd="/home/user", timeout=5.0, labels={"ldmatrix.cell": "c-hello.none"},
        mounts=(Mount(home, "/home/user", writable=True, tmpfs=True), Mount(tmp_path / "ro", "/opt/ro"),
                Mount(tmp_path / "rw", "/opt/rw", writable=True)))
    created: list[tuple[tuple, dict]] = []

    class Client:
        class containers:  # noqa: N801 - docker's own attribute name
            @staticmethod
            def create(*args, **kwargs):
                created.append((args, kwargs))

    monkeypatch.setattr(docker_engine, "client", lambda: Client)
    monkeypatch.setattr(containers, "give_to_cell_user", lambda path: None)
    containers.create_container(spec)
    (image,), sdk = created[0]
    assert sdk.pop("detach") is True
    assert isinstance(sdk["log_config"], LogConfig)
    sdk["log_driver"] = sdk.pop("log_config")["Type"]
    sdk["mounts"] = [(m["Source"], m["Target"], m["ReadOnly"]) for m in sdk["mounts"]]
    sdk["ulimits"] = [(u["Name"], u["Soft"]) for u in sdk["ulimits"] if u["Soft"] == u["Hard"]]
    owner = containers.owner_labels()
    assert {k: sdk["labels"].pop(k) for k in owner} == owner  # the run's own labels: the SDK's only
    cli = _parsed_cli(containers.docker_cli_argv(spec))
    assert cli == {"image": image, **sdk}
    assert ("/home/user/bin/launch.sh" in {target for _, target, _ in cli["mounts"]}
            and cli["tmpfs"]["/home/user"].startswith("rw,nosuid,nodev,size="))
    assert (str(tmp_path / "rw"), "/opt/rw", False) in cli["mounts"] and cli["environment"] == ["B=1", "A=x=y"]


def test_image_names_are_content_tags(tmp_path: Path) -> None:
    root = fake_nixos_root(tmp_path)
    assert images.repository(root) == "ldmatrix/nixos-root"
    assert images.image_tag(root) == images.image_tag(dataclasses.replace(root))
    assert images.image_tag(root) != images.image_tag(dataclasses.replace(root, digest="e" * 16))
    fhs = RootSpec(kind=RootKind.FHS, digest="x", fhs_root=tmp_path / "trixie-lmxm4av6")
    assert images.repository(fhs) == "ldmatrix/fhs-trixie"


def test_env_is_set_exactly_and_in_order_by_the_roots_env(tmp_path: Path) -> None:
    root = fake_nixos_root(tmp_path)
    argv = docker_runner.exact_env_argv(root, ("/home/user/bin/x", "a"), (("B", "1"), ("A", "2=3")))
    assert argv == [f"/nix/store/{'b' * 32}-busybox-1/bin/busybox", "env", "-i", "B=1", "A=2=3", "/home/user/bin/x", "a"]
    fhs = RootSpec(kind=RootKind.FHS, digest="x", fhs_root=tmp_path)
    assert docker_runner.exact_env_argv(fhs, ("/x",), ())[:2] == ["/usr/bin/env", "-i"]


def test_pwd_is_set_as_bubblewrap_sets_it() -> None:
    assert with_pwd((("A", "1"),), "/w") == (("A", "1"), ("PWD", "/w"))
    assert with_pwd((("PWD", "/x"), ("A", "1")), "/w") == (("PWD", "/w"), ("A", "1"))


def test_no_engine_and_permission_denied_are_one_line_each(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    with pytest.raises(Exception) as err:
        docker_engine._connect()
    text = str(err.value)
    assert text == ("cannot reach the Docker engine at unix:///nonexistent/docker.sock: "
                    "start it (systemctl start docker) or set DOCKER_HOST")
    denied = docker_engine.explain(PermissionError(13, "Permission denied"))
    assert "\n" not in denied and "docker group" in denied and "run as root" in denied


def test_pins_name_a_suite_and_an_image() -> None:
    pins = images.load_pins()
    assert pins and all(p.image.startswith("gcc:") for p in pins.values())
    for pin in pins.values():
        if pin.digest is None:
            with pytest.raises(images.ImageError, match="ldmatrix images pin"):
                pin.pinned_ref
        else:
            assert pin.digest.startswith("sha256:") and pin.pinned_ref.startswith("gcc@sha256:")


# --------------------------------------------------------------------------- docker

REASON = docker_engine.unavailable()
needs_docker = [pytest.mark.docker, pytest.mark.slow,
                pytest.mark.skipif(REASON is not None, reason=f"no Docker engine: {REASON}")]


def leftover_containers() -> list[str]:
    """This test run's containers still there (other runs may share the engine)."""
    from harness.docker.containers import PID

    found = docker_engine.client().containers.list(all=True, filters={"label": f"{PID}={os.getpid()}"})
    return [c.name for c in found]


@pytest.fixture(scope="module")
def glibc() -> GlibcSet:
    from harness import provision
    from harness.cache import Cache
    from harness.progress import NullProgress

    return provision.provision_glibc("2.36", Cache.default(), NullProgress())


@pytest.fixture
def cell(glibc: GlibcSet, tmp_path: Path):
    """A bare NixOS-like root cell; ``cell(argv, timeout)`` gives one running ``argv``."""
    from harness.prepare import nixos_root

    base = bare_root(nixos_root(glibc), tmp_path)
    busybox = f"{glibc.shell.store_path}/bin/busybox"

    def make(*argv: str, timeout: float = 20.0) -> PreparedCell:
        words = tuple(busybox if word == "busybox" else word for word in argv)
        return dataclasses.replace(base, argv=words, timeout=timeout)

    yield make
    assert leftover_containers() == []


def docker_test(fn):
    for mark in needs_docker:
        fn = mark(fn)
    return fn


@docker_test
def test_second_ensure_imports_nothing(glibc: GlibcSet, monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.prepare import nixos_root

    root = nixos_root(glibc)
    ref = images.ensure_image(root)
    monkeypatch.setattr(images, "tar_chunks", lambda root: pytest.fail("imported again"))
    assert images.ensure_image(root) == ref
    assert ref in [i.ref for i in images.list_images()]
    labels = images.find_image(ref).labels
    assert labels["ldmatrix"] == "1" and labels["ldmatrix.kind"] == "nixos"


@docker_test
def test_stdout_and_stderr_stay_apart_and_rc_is_kept(cell) -> None:
    result = docker_runner.DockerRunner().run(cell("busybox", "sh", "-c", "echo out; echo err >&2; exit 3"))
    assert (result.rc, result.stdout, result.stderr, result.timed_out) == (3, "out\n", "err\n", False)


@docker_test
def test_envp_is_exactly_the_cells_in_order(cell) -> None:
    prepared = cell("busybox", "cat", "/proc/self/environ")
    prepared = dataclasses.replace(prepared, env=(("ZZ", "1"), ("NIX_LD_LIBRARY_PATH", "/x"), ("NIX_PATH", "n"),
                                                  ("PATH", "/p"), ("AA", "2")))
    docker_env = docker_runner.DockerRunner().run(prepared).stdout
    sandbox_env = SandboxRunner().run(prepared).stdout
    assert docker_env.split("\0")[:-1] == ["ZZ=1", "NIX_LD_LIBRARY_PATH=/x", "NIX_PATH=n", "PATH=/p", "AA=2",
                                              "PWD=/home/user"]
    assert docker_env == sandbox_env


@docker_test
@pytest.mark.parametrize("argv", [
    ("busybox", "sh", "-c", "kill -SEGV $$"),
    ("busybox", "sh", "-c", "kill -ABRT $$"),
    ("/home/user/bin/missing",),
    ("busybox", "sh", "-c", "echo LDMATRIX-CHECK: ok"),
    ("busybox", "sh", "-c", "echo 'LDMATRIX-CHECK: fail no' ; exit 1"),
], ids=["segv", "abrt", "missing", "ok", "fail"])
def test_classification_equals_the_sandboxs(cell, argv: tuple[str, ...]) -> None:
    prepared = cell(*argv)
    docker = docker_runner.DockerRunner().run(prepared)
    sandbox = SandboxRunner().run(prepared)
    assert classify(docker).outcome == classify(sandbox).outcome, (docker, sandbox)
    if argv[0] != "/home/user/bin/missing":  # exec failure: bwrap exits 1, env (like a shell) 127
        assert docker.rc == sandbox.rc


@docker_test
def test_timeout_kills_and_removes(cell) -> None:
    result = docker_runner.DockerRunner().run(cell("busybox", "sleep", "60", timeout=1.0))
    assert result.timed_out and result.duration < 30
    assert classify(result).outcome.value == "timeout"


@docker_test
def test_start_failure_is_rc_127_with_the_engines_line(cell) -> None:
    spec = dataclasses.replace(docker_runner.DockerRunner().container_spec(cell("x")), argv=("/no/such/program",))
    result = containers.run_container(spec)
    assert result.rc == 127 and "no such file or directory" in result.stderr.lower()
    assert classify(result).outcome.value == "missing-interpreter", result.stderr


@docker_test
def test_ctrl_c_while_waiting_still_removes(cell, monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(container, timeout):
        raise KeyboardInterrupt

    monkeypatch.setattr(containers, "_wait", interrupted)
    with pytest.raises(KeyboardInterrupt):
        docker_runner.DockerRunner().run(cell("busybox", "sleep", "60"))


@docker_test
def test_close_mid_run_removes_the_running_container(cell) -> None:
    runner = docker_runner.DockerRunner()
    results = []
    thread = threading.Thread(target=lambda: results.append(runner.run(cell("busybox", "sleep", "60"))))
    thread.start()
    deadline = time.monotonic() + 30
    while not runner._live and time.monotonic() < deadline:
        time.sleep(0.05)
    assert runner._live, "the container never started"
    runner.close()
    thread.join(timeout=30)
    assert not thread.is_alive() and results and results[0].rc != 0


@docker_test
def test_cell_in_docker_is_an_unprivileged_user(cell) -> None:
    result = docker_runner.DockerRunner().run(cell("busybox", "sh", "-c",
                                                   "busybox id; busybox grep -E '^CapEff|^NoNewPrivs' /proc/self/status;"
                                                   " echo x > $HOME/f && echo home-ok"))
    lines = result.stdout.splitlines()
    assert lines[0].startswith("uid=1000 gid=100") and "gid=0" not in lines[0], result  # docker adds groups=100
    assert lines[1:] == ["CapEff:\t0000000000000000", "NoNewPrivs:\t1", "home-ok"], result


@docker_test
def test_endless_output_is_bounded_and_both_runners_agree(cell) -> None:
    from harness.root.limits import CELL

    prepared = cell("busybox", "yes", "ldmatrix", timeout=3.0)
    results = {"docker": docker_runner.DockerRunner().run(prepared), "sandbox": SandboxRunner().run(prepared)}
    for name, result in results.items():
        assert result.timed_out and classify(result).outcome.value == "timeout", (name, result.rc)
        assert len(result.stdout.encode()) <= CELL.output + 200 and result.stdout_cut > 0, name
        assert result.duration < 30, name


@docker_test
def test_long_output_gives_the_same_outcome_in_both_runners(cell) -> None:
    # more than the daemon's json-file log keeps with max-size 10m, max-file 3 (/etc/docker/daemon.json here)
    script = ("echo first; busybox head -c 40000000 /dev/zero | busybox tr '\\0' x; echo; "
              "echo 'LDMATRIX-CHECK: ok'")
    prepared = cell("busybox", "sh", "-c", script.replace("busybox", cell("busybox").argv[0]))
    docker, sandbox = docker_runner.DockerRunner().run(prepared), SandboxRunner().run(prepared)
    assert classify(docker).outcome == classify(sandbox).outcome == classify(sandbox).outcome.OK, (docker.stderr,)
    assert docker.stdout_cut == sandbox.stdout_cut > 0 and docker.stdout == sandbox.stdout


CHILD = """
import dataclasses, sys
from pathlib import Path
from harness import provision
from harness.cache import Cache
from harness.prepare import nixos_root
from harness.progress import NullProgress
from harness.runners.docker import DockerRunner
from testinfra_backend import bare_root
glibc = provision.provision_glibc("2.36", Cache.default(), NullProgress())
base = bare_root(nixos_root(glibc), Path(sys.argv[1]))
busybox = f"{glibc.shell.store_path}/bin/busybox"
DockerRunner().run(dataclasses.replace(base, argv=(busybox, "sleep", "600"), timeout=600))
"""


@docker_test
@pytest.mark.parametrize("cleanup", ["next-run", "images-prune"])
def test_killed_docker_run_leaves_no_containers(tmp_path: Path, cleanup: str) -> None:
    import signal
    import subprocess
    import sys

    from harness.docker.containers import PID, leftovers, prune_containers

    tests = str(Path(__file__).resolve().parent)  # testinfra_backend, a fixture of the tests
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(tmp_path / "cell")],
                             env={**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, (tests, os.environ.get(
                                 "PYTHONPATH"))))})
    client = docker_engine.client()
    deadline = time.monotonic() + 120
    mine: list = []
    while not mine and time.monotonic() < deadline and child.poll() is None:
        time.sleep(0.2)
        # sparse: listed, not inspected one by one (a cell's container the child removes meanwhile is no error)
        mine = client.containers.list(all=True, sparse=True, filters={"label": f"{PID}={child.pid}"})
    assert mine, "the child run never started its container"
    child.send_signal(signal.SIGKILL)  # no cleanup can run
    child.wait()
    left = client.containers.list(all=True, filters={"label": f"{PID}={child.pid}"})
    assert left, "the container went away by itself"
    assert {c.id for c in left} <= {c.id for c in leftovers()}
    if cleanup == "next-run":
        assert docker_runner.DockerRunner().unavailable() is None  # what every docker run does first
    else:
        assert {c.name for c in left} <= set(prune_containers())  # what `ldmatrix images prune` does first
    assert client.containers.list(all=True, filters={"label": f"{PID}={child.pid}"}) == []


@docker_test
def test_testinfra_container_has_the_cells_limits_and_user(glibc: GlibcSet, tmp_path: Path) -> None:
    from harness.docker.containers import PID
    from harness.root.limits import CELL
    from harness.prepare import nixos_root
    from testinfra_backend import docker_host

    with docker_host(bare_root(nixos_root(glibc), tmp_path)):
        (container,) = docker_engine.client().containers.list(filters={"label": f"{PID}={os.getpid()}"})
        config = container.attrs["HostConfig"]
        assert (config["Memory"], config["PidsLimit"], config["CapDrop"], config["ReadonlyRootfs"]) == \
            (CELL.memory, CELL.pids, ["ALL"], True)
        assert container.attrs["Config"]["User"] == "1000:100"
