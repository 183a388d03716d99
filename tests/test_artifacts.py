"""Binaries from where people get them (harness/artifacts/): the matrix syntax, the wheel pip would
choose (from recorded index pages), the lock, fetching with a stand-in network, extraction, and how
a real program's run is judged. No network: ``fetch.urlopen`` is replaced in every test that fetches.
"""

from __future__ import annotations

import email.message
import hashlib
import io
import json
import shutil
import tarfile
import textwrap
import urllib.error
import zipfile
from pathlib import Path

import pytest

from harness import matrix
from harness.artifacts import index, lock, provide, spec, wheel
from harness.artifacts.spec import Kind, Where, Wheel
from harness.cache import Cache
from harness.errors import LdmatrixError, MatrixError, ProvisionError
from harness.model import CommandResult, Outcome, OutputCheck
from harness.outcome import classify
from harness.root.programs import program_argv
from harness.progress import NullProgress
from harness.provision import fetch

DATA = Path(__file__).resolve().parent / "data" / "index"
INDEX = "http://index.invalid/simple"
TRUE = Path(shutil.which("true") or "/bin/true").resolve()  # a small dynamically linked x86_64 program
WHERE = Where("m.yaml", 3, "binaries.x.wheel")


def write(tmp_path: Path, text: str, name: str = "m.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


MATRIX = """\
name: m
binaries:
  uv: {wheel: uv==0.1.17, path: uv-0.1.17.data/scripts/uv, run: [--version], built_in: bullseye,
       expect: {exit: 0, output: '^uv 0\\.1\\.17$'}}
  jq: {deb: {package: jq, suite: bookworm}, path: /usr/bin/jq, run: [-n, '1+1']}
  tool: {url: 'file:///nowhere/tool.tar.gz', sha256: %s, path: tool/bin/tool}
  mine: {file: ./mytool}
  rye: {reproducer: spawn-env, built_in: bullseye, child: uv}
axes:
  strategy: [none, patchelf, container]
  glibc: ["2.36"]
exclude:
  - {binary: [tool, mine], strategy: container}
expect:
  - outcome: ok
""" % ("ab" * 32)


# --------------------------------------------------------------------------------- the matrix

def test_each_kind_parses(tmp_path: Path) -> None:
    (tmp_path / "mytool").write_bytes(b"x")
    m = matrix.load(write(tmp_path, MATRIX))
    uv, jq, tool, mine, rye = (m.binaries[n] for n in ("uv", "jq", "tool", "mine", "rye"))
    assert uv.reproducer is None and uv.artifact is not None and uv.artifact.kind is Kind.WHEEL
    assert uv.artifact.source == Wheel("uv", "0.1.17") and uv.artifact.source.key == "wheel:uv==0.1.17"
    assert uv.run == ("--version",) and uv.check == OutputCheck(0, "^uv 0\\.1\\.17$")
    assert uv.key == ("artifact", "wheel:uv==0.1.17#uv-0.1.17.data/scripts/uv")
    assert jq.artifact is not None and jq.artifact.path == "usr/bin/jq"  # a leading / is dropped
    assert jq.built_in == "bookworm" and jq.check == OutputCheck()  # a package's own suite; exit 0
    assert tool.artifact is not None
    assert tool.artifact.source.key == f"url:file:///nowhere/tool.tar.gz#sha256={'ab' * 32}"
    assert mine.artifact is not None and mine.artifact.source.path == tmp_path / "mytool"
    assert mine.built_in is None and mine.artifact.path is None
    assert rye.child == "uv" and rye.key == ("spawn-env", "bullseye")
    ids = {c.id for c in m.cells}
    assert "uv.container.glibc-2.31" in ids and "jq.container.glibc-2.36" in ids  # the root's own glibc
    assert "rye.container.glibc-2.31" in ids  # a launcher's container is its child's suite


@pytest.mark.parametrize("old, new, key, message", [
    ("wheel: uv==0.1.17,", "wheel: uv>=0.1,", "binaries.uv.wheel", "is not pinned to one version"),
    ("wheel: uv==0.1.17,", "wheel: 'uv @ https://x.invalid/uv.whl',", "binaries.uv.wheel", "not pinned"),
    ("wheel: uv==0.1.17,", "wheel: uv==0.1.17, deb: {package: uv, suite: sid},", "binaries.uv.deb",
     "say where it comes from once"),
    (", path: uv-0.1.17.data/scripts/uv", "", "binaries.uv.wheel", "say which file of the wheel is the program"),
    ("built_in: bullseye,\n", "built_in: bulseye,\n", "binaries.uv.built_in", "did you mean 'bullseye'"),
    ("suite: bookworm}", "suite: bookwrm}", "binaries.jq.deb.suite", "unknown Debian suite 'bookwrm'"),
    ("{package: jq, suite: bookworm}", "{package: jq}", "binaries.jq.deb.suite", "is required"),
    ("{package: jq,", "{package: J/Q,", "binaries.jq.deb.package", "not a Debian package name"),
    ("sha256: " + "ab" * 32 + ",", "", "binaries.tool.url", "needs the sha256"),
    ("sha256: " + "ab" * 32, "sha256: abc", "binaries.tool.sha256", "is not a sha256"),
    ("url: 'file:///nowhere/tool.tar.gz'", "url: 'ftp://x/tool'", "binaries.tool.url", "not an http(s) or file: URL"),
    ("{file: ./mytool}", "{file: ./missing}", "binaries.mine.file", "does not exist"),
    ("path: tool/bin/tool}", "path: ../etc/passwd}", "binaries.tool.path", "is not a path inside"),
    ("run: [--version]", "run: --version", "binaries.uv.run", "a list of plain values"),
    ("exit: 0,", "exit: 300,", "binaries.uv.expect.exit", "not an exit status"),
    ("output: '^uv 0\\.1\\.17$'", "output: '(unclosed'", "binaries.uv.expect.output", "not a regular expression"),
    ("expect: {exit: 0,", "expect: {exitt: 0,", "exitt", "did you mean 'exit'"),
    ("{file: ./mytool}", "{file: ./mytool, child: uv}", "binaries.mine.child", "give child: and script:"),
    ("{file: ./mytool}", "{file: ./mytool, child: uv, script: spawn.sh}", "binaries.mine.script",
     "unknown script 'spawn.sh'"),
    ("{file: ./mytool}", "{file: ./mytool, childe: uv}", "childe", "unknown key in binaries.mine"),
    ("{reproducer: spawn-env,", "{reproducer: spawn-env, wheel: x==1,", "binaries.rye.reproducer",
     "a reproducer or comes from a wheel"),
    ("  mine: {file: ./mytool}\n", "  mine: {note: nothing}\n", "binaries.mine", "say where it comes from"),
    ("  - {binary: [tool, mine], strategy: container}\n", "  - {binary: tool, strategy: container}\n",
     "binaries.mine.built_in", "the container strategy runs a program in a Debian suite's root"),
])
def test_a_mistake_is_one_line_with_its_key(tmp_path: Path, old: str, new: str, key: str, message: str) -> None:
    (tmp_path / "mytool").write_bytes(b"x")
    assert old in MATRIX, old
    with pytest.raises(MatrixError) as err:
        matrix.load(write(tmp_path, MATRIX.replace(old, new, 1)))
    text = str(err.value)
    assert "\n" not in text and text.startswith((f"{tmp_path}/m.yaml:", "m.yaml:")), text
    assert f" {key}: " in text and message in text, text


# ----------------------------------------------------------------------- the wheel pip would choose

def _page(name: str) -> index.ProjectPage:
    path = next(DATA.glob(f"{name}.*"))
    kind = "application/vnd.pypi.simple.v1+json" if path.suffix == ".json" else "text/html"
    return index.parse_page(name, path.read_bytes(), kind, f"{INDEX}/{name}/")


def test_recorded_json_page_gives_the_manylinux_x86_64_wheel() -> None:
    page = _page("uv")
    chosen = wheel.choose(page, Wheel("uv", "0.1.17"), WHERE, glibc=(2, 36), python=(3, 11))
    assert chosen.filename == "uv-0.1.17-py3-none-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"
    assert chosen.sha256 == "b82be5df01fbc2b229e652d68ecf397406f7a5eb0857ab338d2d110d191505a2"
    assert chosen.size == 10807463 and chosen.url.startswith("http://index.invalid/packages/")


def test_recorded_html_page_is_read_with_hashes_and_relative_links() -> None:
    page = _page("pyobjc-core")
    f = next(f for f in page.files if f.filename == "pyobjc-core-10.1.tar.gz")
    assert f.url.startswith("http://index.invalid/packages/") and "#" not in f.url
    assert f.sha256 is not None and len(f.sha256) == 64 and f.requires_python == ">=3.8"


def test_a_version_the_index_lacks_names_the_nearest() -> None:
    with pytest.raises(LdmatrixError) as err:
        wheel.choose(_page("uv"), Wheel("uv", "0.1.170"), WHERE)
    text = str(err.value)
    assert "\n" not in text and text.startswith("m.yaml:3: binaries.x.wheel: the package index has no uv 0.1.170")
    assert "nearest: 0.1.43, 0.1.44, 0.1.45, 0.2.0, 0.2.1, 0.2.2 (of 333 versions)" in text


def test_a_wheel_without_linux_x86_64_names_its_platforms() -> None:
    with pytest.raises(LdmatrixError) as err:
        wheel.choose(_page("pyobjc-core"), Wheel("pyobjc-core", "10.1"), WHERE, python=(3, 11))
    text = str(err.value)
    assert "pyobjc-core 10.1 has no wheel for Linux x86_64" in text
    assert "macosx_10_9_universal2" in text and "source distribution (pyobjc-core-10.1.tar.gz)" in text


def _synthetic(*names: str) -> index.ProjectPage:
    return index.ProjectPage("t", tuple(index.IndexFile(n, f"{INDEX}/{n}", "0" * 64) for n in names))


@pytest.mark.parametrize("glibc, python, want", [
    ((2, 36), (3, 11), "t-1.0-cp311-cp311-manylinux_2_17_x86_64.whl"),  # the interpreter's own tag first
    ((2, 36), (3, 12), "t-1.0-py3-none-manylinux_2_28_x86_64.whl"),  # then the newest platform that fits
    ((2, 27), (3, 12), "t-1.0-py3-none-manylinux2014_x86_64.whl"),  # 2.28 is too new for glibc 2.27
    ((2, 16), (3, 12), "t-1.0-py3-none-manylinux1_x86_64.whl"),
])
def test_tag_priority_is_pips(glibc: tuple[int, int], python: tuple[int, int], want: str) -> None:
    page = _synthetic("t-1.0-py3-none-linux_x86_64.whl", "t-1.0-py3-none-manylinux1_x86_64.whl",
                      "t-1.0-py3-none-manylinux2014_x86_64.whl", "t-1.0-py3-none-manylinux_2_28_x86_64.whl",
                      "t-1.0-cp311-cp311-manylinux_2_17_x86_64.whl", "t-1.0-py3-none-musllinux_1_2_x86_64.whl",
                      "t-1.0-py3-none-manylinux_2_17_aarch64.whl", "t-1.0-py3-none-win_amd64.whl", "t-1.0.tar.gz")
    assert wheel.choose(page, Wheel("t", "1.0"), WHERE, glibc=glibc, python=python).filename == want


def test_platforms_in_pips_order() -> None:
    plats = wheel.platforms((2, 17))
    assert plats[:2] == ["manylinux_2_17_x86_64", "manylinux2014_x86_64"]
    assert plats[-3:] == ["manylinux_2_5_x86_64", "manylinux1_x86_64", "linux_x86_64"]
    assert plats.index("manylinux2010_x86_64") == plats.index("manylinux_2_12_x86_64") + 1


def test_requires_python_is_respected() -> None:
    page = index.ProjectPage("t", (index.IndexFile("t-1.0-py3-none-manylinux1_x86_64.whl", "u", "0" * 64,
                                                   requires_python=">=3.13"),))
    with pytest.raises(LdmatrixError, match="no wheel for Linux x86_64"):
        wheel.choose(page, Wheel("t", "1.0"), WHERE, python=(3, 11))


def test_index_url_is_pips(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from pip._internal.models.index import PyPI

    monkeypatch.setenv("PIP_INDEX_URL", "http://mine.invalid/simple")
    assert index.index_url() == "http://mine.invalid/simple"
    monkeypatch.delenv("PIP_INDEX_URL")
    config = tmp_path / "pip.conf"
    config.write_text("[global]\nindex-url = http://configured.invalid/simple\n")
    monkeypatch.setenv("PIP_CONFIG_FILE", str(config))
    assert index.index_url() == "http://configured.invalid/simple"
    config.write_text("[global]\ntimeout = 5\n")
    assert index.index_url() == PyPI.simple_url  # pip's own default, not a name written here


# ------------------------------------------------------------------------------------ the lock

def _pin(key: str = "wheel:uv==0.1.17", **kw: object) -> lock.Pin:
    fields: dict = {"sha256": "ab" * 32, "size": 10, "filename": "uv-0.1.17-py3-none-manylinux1_x86_64.whl",
                    "version": "0.1.17"}
    fields.update(kw)
    return lock.Pin(key, **fields)


def test_lock_round_trip_and_first_use(tmp_path: Path) -> None:
    path = tmp_path / "m.lock.json"
    assert lock.read_lock(path, "m.yaml").pins == {}  # no lock yet: first use
    deb = lock.Pin("deb:bookworm/jq", "cd" * 32, 5, "pool/main/j/jq/jq_1.6-2.1_amd64.deb", "1.6-2.1")
    written = lock.ArtifactLock(path, "m.yaml", {p.key: p for p in (_pin(), deb)})
    lock.write_lock(written)
    again = lock.read_lock(path, "m.yaml")
    assert again.pins == written.pins
    assert json.loads(path.read_text())["artifacts"]["deb:bookworm/jq"]["version"] == "1.6-2.1"
    assert lock.lock_path(Path("matrices/real-world.yaml")) == Path("matrices/real-world.lock.json")


@pytest.mark.parametrize("edit, message", [
    (lambda d: d["artifacts"]["wheel:uv==0.1.17"].update(sha256="xyz"), "sha256: not 64 lowercase hex digits"),
    (lambda d: d["artifacts"]["wheel:uv==0.1.17"].update(size=0), "size: not a positive integer"),
    (lambda d: d["artifacts"]["wheel:uv==0.1.17"].update(filename="ruff-0.1.17-py3-none-any.whl"),
     "is not a wheel of uv 0.1.17"),
    (lambda d: d["artifacts"]["wheel:uv==0.1.17"].update(extra=1), "unknown key"),
    (lambda d: d["artifacts"].update({"git:x": {"sha256": "ab" * 32}}), "not an artifact key"),
    (lambda d: d["artifacts"].update({"deb:bookworm/jq": {"sha256": "ab" * 32, "size": 1, "version": "1.6",
                                                          "filename": "pool/main/j/jq/jq_1.7_amd64.deb"}}),
     "is not the pool file of jq 1.6"),
    (lambda d: d["artifacts"].update({f"url:file:///x#sha256={'cd' * 32}": {"sha256": "ab" * 32}}),
     "is not the sha256 the matrix gives"),
    (lambda d: d.update(format=2), "format: is 2"),
])
def test_a_damaged_lock_is_one_line(tmp_path: Path, edit, message: str) -> None:
    path = tmp_path / "m.lock.json"
    lock.write_lock(lock.ArtifactLock(path, "m.yaml", {"wheel:uv==0.1.17": _pin()}))
    raw = json.loads(path.read_text())
    edit(raw)
    path.write_text(json.dumps(raw))
    with pytest.raises(ProvisionError) as err:
        lock.read_lock(path, "m.yaml")
    text = str(err.value)
    assert "\n" not in text and message in text and "`ldmatrix lock m.yaml`" in text, text


def test_a_lock_that_is_not_json_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "m.lock.json"
    path.write_text("{not json")
    with pytest.raises(ProvisionError, match=r"m.lock.json:1: not valid JSON"):
        lock.read_lock(path, "m.yaml")


# ----------------------------------------------- fetching, pinning, extracting (a stand-in network)

class _Response(io.BytesIO):
    def __init__(self, data: bytes, url: str, content_type: str = "application/octet-stream"):
        super().__init__(data)
        self.headers = email.message.Message()
        self.headers["Content-Type"] = content_type
        self._url = url

    def geturl(self) -> str:
        return self._url


class Network:
    """What the stand-in index serves: URL -> bytes; everything else is a refused connection."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch):
        self.files: dict[str, tuple[bytes, str]] = {}
        self.calls: list[str] = []
        self.down = False
        monkeypatch.setattr(fetch, "urlopen", self.open)
        monkeypatch.setattr(fetch, "BACKOFF", (0.0, 0.0))
        monkeypatch.setenv("PIP_INDEX_URL", INDEX)

    def open(self, url: str, timeout: float, headers: dict[str, str] | None = None):
        self.calls.append(url)
        if self.down or url not in self.files:
            if not self.down and url.startswith(INDEX):
                raise urllib.error.HTTPError(url, 404, "Not Found", email.message.Message(), None)
            raise urllib.error.URLError(ConnectionRefusedError(111, "Connection refused"))
        data, kind = self.files[url]
        return _Response(data, url, kind)

    def wheel(self, name: str, version: str, members: dict[str, bytes], *, sha256: str | None = None) -> bytes:
        filename = f"{name}-{version}-py3-none-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as z:
            for member, data in members.items():
                z.writestr(member, data)
        data = buf.getvalue()
        url = f"http://files.invalid/{filename}"
        self.files[url] = (data, "application/octet-stream")
        page = {"meta": {"api-version": "1.1"}, "name": name, "versions": [version, "9.9"],
                "files": [{"filename": filename, "url": url, "size": len(data),
                           "hashes": {"sha256": sha256 or hashlib.sha256(data).hexdigest()}}]}
        self.files[f"{INDEX}/{name}/"] = (json.dumps(page).encode(), "application/vnd.pypi.simple.v1+json")
        return data


WHEEL_MATRIX = """\
name: w
binaries:
  tool: {wheel: tool==1.0, path: tool-1.0.data/scripts/tool, run: [--version]}
axes: {strategy: [none, patchelf], glibc: ["2.36"]}
expect: [{outcome: ok}]
"""


def _provide(path: Path, cache: Cache) -> dict:
    m = matrix.load(path)
    return provide.for_cells(m, m.cells, cache, NullProgress())


def test_first_use_pins_then_runs_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    net = Network(monkeypatch)
    net.wheel("tool", "1.0", {"tool-1.0.data/scripts/tool": TRUE.read_bytes(), "tool-1.0.dist-info/RECORD": b""})
    cache = Cache(tmp_path / "cache")
    path = write(tmp_path, WHEEL_MATRIX)
    built = _provide(path, cache)
    binary = built[("artifact", "wheel:tool==1.0#tool-1.0.data/scripts/tool")]
    assert binary.path.read_bytes() == TRUE.read_bytes() and binary.interpreter.startswith("/lib")
    assert binary.path.stat().st_mode & 0o111
    pins = lock.read_lock(tmp_path / "m.lock.json", "m.yaml").pins
    assert pins["wheel:tool==1.0"].filename.startswith("tool-1.0-py3-none-manylinux_2_17")
    net.down = True  # the index is gone: the cached program is all a run needs
    assert _provide(path, cache) == built


def test_a_lock_whose_sha256_the_index_contradicts_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    net = Network(monkeypatch)
    net.wheel("tool", "1.0", {"tool-1.0.data/scripts/tool": TRUE.read_bytes()})
    path = write(tmp_path, WHEEL_MATRIX)
    _provide(path, Cache(tmp_path / "cache"))
    lock_file = tmp_path / "m.lock.json"
    raw = json.loads(lock_file.read_text())
    raw["artifacts"]["wheel:tool==1.0"]["sha256"] = "ef" * 32
    lock_file.write_text(json.dumps(raw))
    before = lock_file.read_text()
    with pytest.raises(LdmatrixError) as err:
        _provide(path, Cache(tmp_path / "cache"))
    text = str(err.value)
    assert "\n" not in text and "binaries.tool.wheel" in text and f"the lock says {'ef' * 32}" in text
    assert lock_file.read_text() == before  # nothing lost: the lock is not rewritten behind the user's back


def test_bytes_that_are_not_the_indexs_sha256_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    net = Network(monkeypatch)
    net.wheel("tool", "1.0", {"tool-1.0.data/scripts/tool": TRUE.read_bytes()}, sha256="ef" * 32)
    cache = Cache(tmp_path / "cache")
    with pytest.raises(LdmatrixError) as err:
        _provide(write(tmp_path, WHEEL_MATRIX), cache)
    assert "got sha256" in str(err.value) and "refusing it" in str(err.value)
    assert [p.name for p in cache.downloads.iterdir()] == []  # nothing half-written is left


def test_a_path_not_in_the_wheel_names_the_near_ones(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    net = Network(monkeypatch)
    net.wheel("tool", "1.0", {"tool-1.0.data/scripts/tool": TRUE.read_bytes(), "tool/__init__.py": b""})
    with pytest.raises(LdmatrixError) as err:
        _provide(write(tmp_path, WHEEL_MATRIX.replace("scripts/tool,", "scripts/tol,")), Cache(tmp_path / "c"))
    text = str(err.value)
    assert "m.yaml:3: binaries.tool.path: tool-1.0.data/scripts/tol is not in tool-1.0-" in text
    assert "near: tool-1.0.data/scripts/tool" in text and "\n" not in text


def _aarch64() -> bytes:
    data = bytearray(TRUE.read_bytes())
    data[18:20] = (183).to_bytes(2, "little")  # e_machine: EM_AARCH64
    return bytes(data)


SHARED_LIBRARY = next((p for p in (Path("/lib/x86_64-linux-gnu/libz.so.1"), Path("/usr/lib/x86_64-linux-gnu/libz.so.1"))
                       if p.is_file()), None)


def test_elf_that_is_no_program_here_says_what_it_is(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    net = Network(monkeypatch)
    net.wheel("tool", "1.0", {"tool-1.0.data/scripts/tool": _aarch64()})
    with pytest.raises(LdmatrixError, match="is an ELF file for EM_AARCH64, not x86_64"):
        _provide(write(tmp_path, WHEEL_MATRIX), Cache(tmp_path / "c"))
    if SHARED_LIBRARY is not None:
        net.wheel("tool", "1.0", {"tool-1.0.data/scripts/tool": SHARED_LIBRARY.read_bytes()})
        other = tmp_path / "other"  # a new matrix: the first wheel's pin is not this one's
        other.mkdir()
        with pytest.raises(LdmatrixError, match="is a shared library: ldmatrix tests programs"):
            _provide(write(other, WHEEL_MATRIX), Cache(tmp_path / "c2"))


@pytest.mark.parametrize("content, what", [
    (b"#!/bin/sh\necho hi\n", "is a script (#!/bin/sh)"),
    (b"just some words\n", "is a text file"),
    (b"\x7fELF\x02\x01\x01" + b"\0" * 9 + b"\x03\x00\xb7\x00", "is a damaged ELF file"),  # cut short
])
def test_a_path_that_is_no_program_says_what_it_is(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   content: bytes, what: str) -> None:
    net = Network(monkeypatch)
    net.wheel("tool", "1.0", {"tool-1.0.data/scripts/tool": content})
    with pytest.raises(LdmatrixError) as err:
        _provide(write(tmp_path, WHEEL_MATRIX), Cache(tmp_path / "c"))
    text = str(err.value)
    assert "binaries.tool.path: tool-1.0.data/scripts/tool in tool-1.0-" in text and what in text and "\n" not in text


def test_an_unreachable_index_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    net = Network(monkeypatch)
    net.down = True
    with pytest.raises(LdmatrixError) as err:
        _provide(write(tmp_path, WHEEL_MATRIX), Cache(tmp_path / "c"))
    text = str(err.value)
    assert "binaries.tool.wheel: the package index cannot be reached" in text and "Connection refused" in text
    assert "index.invalid" not in text and "\n" not in text
    assert not (tmp_path / "m.lock.json").exists()


def test_a_project_the_index_lacks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    Network(monkeypatch)
    with pytest.raises(LdmatrixError, match="binaries.tool.wheel: the package index has no project 'tool'"):
        _provide(write(tmp_path, WHEEL_MATRIX), Cache(tmp_path / "c"))


def _tarball(tmp_path: Path) -> Path:
    path = tmp_path / "tool.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        tar.add(TRUE, arcname="tool-1.0/libexec/tool")
        link = tarfile.TarInfo("tool-1.0/bin/tool")
        link.type, link.linkname = tarfile.SYMTYPE, "../libexec/tool"
        tar.addfile(link)
    return path


def test_a_url_tarball_with_a_link_and_a_wrong_sha256(tmp_path: Path) -> None:
    tarball = _tarball(tmp_path)
    sha = hashlib.sha256(tarball.read_bytes()).hexdigest()
    text = f"""\
    name: u
    binaries:
      tool: {{url: '{tarball.as_uri()}', sha256: {sha}, path: tool-1.0/bin/tool}}
    axes: {{strategy: [none], glibc: ["2.36"]}}
    expect: [{{outcome: ok}}]
    """
    cache = Cache(tmp_path / "cache")
    built = _provide(write(tmp_path, text), cache)
    (binary,) = built.values()
    assert binary.path.read_bytes() == TRUE.read_bytes()  # the link followed inside the archive
    assert lock.read_lock(tmp_path / "m.lock.json", "m.yaml").pins[f"url:{tarball.as_uri()}#sha256={sha}"].size
    wrong = text.replace(sha, "0" + sha[1:] if sha[0] != "0" else "1" + sha[1:])
    with pytest.raises(LdmatrixError) as err:
        _provide(write(tmp_path, wrong), cache)
    assert f"binaries.tool.sha256: {tarball.as_uri()} gave sha256 {sha}" in str(err.value)


def test_a_url_that_is_the_program_itself(tmp_path: Path) -> None:
    sha = hashlib.sha256(TRUE.read_bytes()).hexdigest()
    text = f"""\
    name: u
    binaries:
      tool: {{url: '{TRUE.as_uri()}', sha256: {sha}}}
    axes: {{strategy: [none], glibc: ["2.36"]}}
    expect: [{{outcome: ok}}]
    """
    (binary,) = _provide(write(tmp_path, text), Cache(tmp_path / "cache")).values()
    assert binary.path.name == TRUE.name and binary.sha256 == sha


def test_a_local_file_that_changed_since_it_was_locked(tmp_path: Path) -> None:
    shutil.copy(TRUE, tmp_path / "mytool")
    text = """\
    name: f
    binaries:
      mine: {file: ./mytool, run: [--help]}
    axes: {strategy: [none], glibc: ["2.36"]}
    expect: [{outcome: ok}]
    """
    path = write(tmp_path, text)
    cache = Cache(tmp_path / "cache")
    _provide(path, cache)
    (tmp_path / "mytool").write_bytes(TRUE.read_bytes() + b"\0")
    with pytest.raises(LdmatrixError) as err:
        _provide(path, cache)  # the cached program of the old file is not used for the new one
    assert "binaries.mine.file: ./mytool has changed since it was locked" in str(err.value)
    provide.relock(path, "m.yaml", [b.artifact for b in matrix.load(path).binaries.values()], cache, NullProgress())
    (binary,) = _provide(path, cache).values()
    assert binary.path.read_bytes() == (tmp_path / "mytool").read_bytes()


def test_a_damaged_cached_program_is_extracted_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    net = Network(monkeypatch)
    net.wheel("tool", "1.0", {"tool-1.0.data/scripts/tool": TRUE.read_bytes()})
    cache = Cache(tmp_path / "cache")
    path = write(tmp_path, WHEEL_MATRIX)
    (binary,) = _provide(path, cache).values()
    binary.path.chmod(0o644)
    binary.path.write_bytes(b"damaged")
    net.down = True  # the verified download in the cache is enough
    (again,) = _provide(path, cache).values()
    assert again.path.read_bytes() == TRUE.read_bytes()


# ----------------------------------------------------------------------- running and judging it

def _result(rc: int, stdout: str = "", stderr: str = "") -> CommandResult:
    return CommandResult(rc, stdout, stderr, 0.01)


def test_a_real_programs_check_decides_ok() -> None:
    check = OutputCheck(0, r"^uv 0\.1\.17$")
    assert classify(_result(0, "uv 0.1.17\n"), check).outcome is Outcome.OK
    assert classify(_result(0, "uv 0.1.17\n"), check).evidence == "uv 0.1.17"
    assert classify(_result(0, "", "uv 0.1.17\n"), check).outcome is Outcome.OK  # stderr counts too
    assert classify(_result(0, "anything\n"), OutputCheck()).evidence == "exit 0"


def test_a_failed_check_is_error_with_its_last_line() -> None:
    check = OutputCheck(0, r"^uv 0\.1\.17$")
    verdict = classify(_result(0, "uv 0.2.0\n"), check)
    assert verdict == classify(_result(0, "uv 0.2.0\n"), check)
    assert verdict.outcome is Outcome.ERROR and verdict.evidence.startswith("uv 0.2.0 [no output matching")
    failed = classify(_result(2, "", "first\nerror: could not detect either glibc version nor musl libc version\n"),
                      check)
    assert failed.outcome is Outcome.ERROR
    assert failed.evidence == "error: could not detect either glibc version nor musl libc version [exit 2, expected 0]"


def test_the_loaders_lines_come_first() -> None:
    check = OutputCheck(127)
    missing = "/home/user/bin/uv: error while loading shared libraries: libz.so.1: cannot open shared object file"
    assert classify(_result(127, "", missing), check).outcome is Outcome.MISSING_LIBRARY
    assert classify(_result(-11), OutputCheck()).outcome is Outcome.CRASH


def test_a_launcher_runs_a_real_program_without_expect(tmp_path: Path) -> None:
    (tmp_path / "mytool").write_bytes(b"x")
    m = matrix.load(write(tmp_path, MATRIX))
    launched = program_argv(["/home/user/bin/rye", "/home/user/bin/uv"], m.binaries["uv"], True)
    assert launched == ["/home/user/bin/rye", "--no-expect", "/home/user/bin/uv", "--version"]
    assert program_argv(["/home/user/bin/uv"], m.binaries["uv"], False) == ["/home/user/bin/uv", "--version"]
    seed = matrix.load(Path(__file__).resolve().parent.parent / "matrices" / "seed.yaml")
    printer = program_argv(["/l", "/c"], seed.binaries["c-envprint"], True)
    assert printer == ["/l", "/c"]  # the start-up printer gets its --expect record from the launcher


def test_the_real_world_matrix_and_its_lock_agree() -> None:
    """Every artifact of matrices/real-world.yaml is pinned in its committed lock."""
    path = Path(__file__).resolve().parent.parent / "matrices" / "real-world.yaml"
    m = matrix.load(path)
    pins = lock.read_lock(lock.lock_path(path), str(path)).pins
    keys = {b.artifact.source.key for b in m.binaries.values() if b.artifact is not None}
    assert keys == set(pins)
    assert spec.Kind.WHEEL in {b.artifact.kind for b in m.binaries.values() if b.artifact}
