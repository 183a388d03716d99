"""Provisioning: lock, digests, layouts, verified downloads. Fast and offline unless marked slow."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import urllib.error
from pathlib import Path

import pytest

from harness.cache import entry as cache_entry
from harness.cache import Cache
from harness.errors import ProvisionError
from harness.progress import NullProgress
from harness.model import StorePath
from harness.provision import LOCK_PATH, SUITES, fetch, load_lock, mirror, nixbase32
from harness.provision.suites import SUITE_GLIBC
from harness.provision import build_root, buildroot, provision_glibc
from harness.provision.archive import parse_packages, parse_release, pick
from harness.provision.debversion import compare, upstream
from harness.provision.lockfile import Lock, LockedDeb, SuiteLock, parse_lock, write_lock
from harness.provision.store import make_store_path, store_version
from harness.provision.suites import CONFIG, SuitesConfig

needs_dpkg_deb = pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="needs dpkg-deb")


# --- suites map and lock -------------------------------------------------------------------

def test_suites_map() -> None:
    assert SUITES["2.31"] == "bullseye" and SUITES["2.36"] == "bookworm" and SUITES["2.41"] == "trixie"
    assert "sid" in SUITES.values()
    # a store glibc newer than its packages' suite's own: the packages ask for no newer symbol versions
    for glibc, suite in SUITES.items():
        assert tuple(map(int, SUITE_GLIBC[suite].split("."))) <= tuple(map(int, glibc.split(".")))
    assert SUITES["2.40"] == "bookworm" and CONFIG.glibc_build("2.40").build == "trixie"
    assert CONFIG.wanted()["bookworm"] == ("bash-static", "busybox-static", "libc6", "libcrypt1", "libgcc-s1")
    assert CONFIG.wanted()["bullseye"] == ("libc6", "libcrypt1", "libgcc-s1")


def test_committed_lock_is_valid_and_sorted() -> None:
    lock = load_lock(LOCK_PATH)
    assert {s.suite for s in lock.suites} == set(SUITE_GLIBC)
    for suite, glibc in SUITE_GLIBC.items():
        assert upstream(lock.deb(suite, "libc6").version) == glibc
    text = LOCK_PATH.read_text()
    assert text == json.dumps(json.loads(text), indent=2, sort_keys=True) + "\n"


def _raw_lock() -> dict:
    return json.loads(LOCK_PATH.read_text())


@pytest.mark.parametrize(
    "mutate, key",
    [
        (lambda r: r["suites"]["bookworm"]["packages"]["libc6"].update(sha256="XYZ"),
         "suites.bookworm.packages.libc6.sha256"),
        (lambda r: r["suites"]["bookworm"]["packages"]["libc6"].update(size=-1),
         "suites.bookworm.packages.libc6.size"),
        (lambda r: r["suites"]["sid"]["packages"]["libc6"].update(filename="../etc/passwd"),
         "suites.sid.packages.libc6.filename"),
        (lambda r: r["suites"]["trixie"]["packages"].pop("libcrypt1"), "suites.trixie.packages.libcrypt1"),
        (lambda r: r["suites"].update(buster={}), "suites.buster"),
        (lambda r: r.update(format=99), "format"),
    ],
)
def test_lock_validation_names_the_key(mutate, key: str) -> None:
    raw = _raw_lock()
    mutate(raw)
    with pytest.raises(ProvisionError) as err:
        parse_lock(raw, Path("packages.lock.json"))
    msg = str(err.value)
    assert f"packages.lock.json: {key}:" in msg and "\n" not in msg


def test_lock_missing_and_broken(tmp_path: Path) -> None:
    with pytest.raises(ProvisionError, match="no lock file; run `ldmatrix lock`"):
        load_lock(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{\n  oops\n}")
    with pytest.raises(ProvisionError, match=r"bad.json:2: not valid JSON"):
        load_lock(bad)


def test_lock_roundtrip(tmp_path: Path) -> None:
    lock = load_lock(LOCK_PATH)
    out = tmp_path / "lock.json"
    write_lock(lock, out)
    assert out.read_text() == LOCK_PATH.read_text()
    assert not [p for p in tmp_path.iterdir() if p.name != "lock.json"]


# --- Nix base-32 and names -----------------------------------------------------------------

def test_nix_base32_known_vector() -> None:
    # nix-hash --type sha256 --to-base32 of sha256("")
    assert nixbase32.encode(hashlib.sha256(b"").digest()) == "0mdqa9w1p6cmli6976v4wi0sw9r4p5prkj7lzfd1877wk11c9c73"
    assert nixbase32.encode(bytes(20)) == "0" * 32
    assert nixbase32.encode(b"\x01" + bytes(19)) == "0" * 31 + "1"


def test_digest_is_32_nix_chars_and_depends_on_everything() -> None:
    d = nixbase32.digest("glibc", "2.36-9", "a" * 64)
    assert len(d) == 32 and set(d) <= set(nixbase32.ALPHABET)
    assert d != nixbase32.digest("glibc", "2.36-9", "b" * 64)
    assert d != nixbase32.digest("glibc", "2.36-10", "a" * 64)


@pytest.mark.parametrize("deb, nix", [("1:4.4.33-2", "4.4.33-2"), ("2.36-9+deb12u14", "2.36-9+deb12u14"),
                                      ("1.0~rc1-1", "1.0-rc1-1")])
def test_store_version(deb: str, nix: str) -> None:
    assert store_version(deb) == nix


def test_debian_version_compare() -> None:
    assert compare("2.36-9+deb12u14", "2.36-9+deb12u9") > 0
    assert compare("1.0~rc1", "1.0") < 0
    assert compare("1:1.0", "2.0") > 0
    assert compare("2.41-12", "2.41-12") == 0
    assert upstream("1:4.4.33-2") == "4.4.33"


# --- mirror from apt configuration -----------------------------------------------------------

def test_mirror_from_deb822_skips_security_and_foreign(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv(mirror.ENV_VAR, raising=False)
    d = tmp_path / "sources.list.d"
    d.mkdir()
    (d / "a-vendor.list").write_text("deb [signed-by=/x.gpg] https://example.invalid/apt stable main\n")
    (d / "debian.sources").write_text(
        "Types: deb\nURIs: http://sec.invalid/debian-security\nSuites: bookworm-security\nComponents: main\n"
        "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n"
        "# comment\nTypes: deb\nURIs: http://mirror.invalid/debian/\nSuites: bookworm bookworm-updates\n"
        "Components: main contrib\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
    )
    assert mirror.debian_mirror(tmp_path) == "http://mirror.invalid/debian"


def test_mirror_from_one_line_and_env(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv(mirror.ENV_VAR, raising=False)
    (tmp_path / "sources.list").write_text(
        "# deb http://commented.invalid/debian sid main\n"
        "deb http://one.invalid/debian trixie main\n"
    )
    assert mirror.debian_mirror(tmp_path) == "http://one.invalid/debian"
    monkeypatch.setenv(mirror.ENV_VAR, "http://env.invalid/debian/")
    assert mirror.debian_mirror(tmp_path) == "http://env.invalid/debian"


def test_no_mirror_says_what_to_set(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv(mirror.ENV_VAR, raising=False)
    with pytest.raises(ProvisionError, match=mirror.ENV_VAR):
        mirror.debian_mirror(tmp_path)


# --- archive indexes ------------------------------------------------------------------------

RELEASE = """Origin: Debian
Suite: unstable
Codename: sid
Date: Fri, 30 Oct 2026 08:08:01 UTC
Valid-Until: Fri, 06 Nov 2026 08:08:01 UTC
Acquire-By-Hash: yes
SHA256:
 0123 42 main/binary-amd64/Packages.xz
 4567 7 main/binary-amd64/Release
"""


def test_parse_release_and_expiry_warning() -> None:
    from datetime import datetime, timezone

    rel = parse_release(RELEASE, "sid", now=datetime(2026, 11, 1, tzinfo=timezone.utc))
    assert rel.sha256["main/binary-amd64/Packages.xz"] == (42, "0123") and rel.by_hash and not rel.warning
    late = parse_release(RELEASE, "sid", now=datetime(2026, 12, 1, tzinfo=timezone.utc))
    assert "expired" in late.warning
    with pytest.raises(ProvisionError, match="not 'trixie'"):
        parse_release(RELEASE, "trixie")


def test_parse_packages_picks_newest() -> None:
    text = (
        "Package: libc6\nVersion: 2.36-9+deb12u9\nArchitecture: amd64\nFilename: pool/a.deb\nSize: 1\nSHA256: aa\n\n"
        "Package: libc6-dev\nVersion: 9\nArchitecture: amd64\nFilename: pool/x.deb\nSize: 1\nSHA256: xx\n\n"
        "Package: libc6\nVersion: 2.36-9+deb12u14\nArchitecture: amd64\nFilename: pool/b.deb\nSize: 2\n"
        "Description: x\n continued: line\nSHA256: bb\n"
    )
    stanzas = parse_packages(text, {"libc6"})
    assert list(stanzas) == ["libc6"]
    deb = pick(stanzas, "bookworm", "libc6", "amd64")
    assert (deb.version, deb.filename, deb.size, deb.sha256) == ("2.36-9+deb12u14", "pool/b.deb", 2, "bb")
    with pytest.raises(ProvisionError, match="no libcrypt1"):
        pick(stanzas, "bookworm", "libcrypt1", "amd64")


# --- downloads ------------------------------------------------------------------------------

def _deb_entry(data: bytes, package: str = "libc6", version: str = "2.36-9") -> LockedDeb:
    return LockedDeb("bookworm", package, version, "amd64", f"pool/main/x/{package}_{version}_amd64.deb",
                     len(data), hashlib.sha256(data).hexdigest())


class _Resp(io.BytesIO):
    pass


def _serve(monkeypatch, payload: bytes | BaseException, calls: list[str] | None = None) -> None:
    def fake(url: str, timeout: float):
        if calls is not None:
            calls.append(url)
        if isinstance(payload, BaseException):
            raise payload
        return _Resp(payload)

    monkeypatch.setattr(fetch, "urlopen", fake)
    monkeypatch.setattr(fetch, "BACKOFF", (0.0, 0.0))


def _no_network(monkeypatch) -> None:
    def fail(url: str, timeout: float):
        raise AssertionError(f"network used: {url}")

    monkeypatch.setattr(fetch, "urlopen", fail)


def test_download_verifies_and_is_reused_offline(tmp_path: Path, monkeypatch) -> None:
    cache = Cache(tmp_path)
    data = b"a .deb" * 1000
    deb = _deb_entry(data)
    calls: list[str] = []
    _serve(monkeypatch, data, calls)
    path = fetch.download_deb(deb, cache, NullProgress(), mirror="http://m.invalid/debian")
    assert path.name == f"{deb.sha256}.deb" and path.read_bytes() == data
    assert calls == [f"http://m.invalid/debian/{deb.filename}"]
    _no_network(monkeypatch)
    monkeypatch.setenv("LDMATRIX_DEBIAN_MIRROR", "")
    assert fetch.download_deb(deb, cache, NullProgress()) == path
    assert os.listdir(cache.downloads) == [path.name]


def test_sha256_mismatch_leaves_nothing(tmp_path: Path, monkeypatch) -> None:
    cache = Cache(tmp_path)
    deb = _deb_entry(b"the right bytes")
    _serve(monkeypatch, b"the wrong bytes")
    with pytest.raises(ProvisionError) as err:
        fetch.download_deb(deb, cache, NullProgress(), mirror="http://m.invalid/debian")
    assert "sha256" in str(err.value) and "\n" not in str(err.value)
    assert os.listdir(cache.downloads) == []


def test_corrupt_cached_file_is_replaced(tmp_path: Path, monkeypatch) -> None:
    cache = Cache(tmp_path)
    data = b"good"
    deb = _deb_entry(data)
    (cache.downloads / f"{deb.sha256}.deb").write_bytes(b"bad!")
    _serve(monkeypatch, data)
    path = fetch.download_deb(deb, cache, NullProgress(), mirror="http://m.invalid/debian")
    assert path.read_bytes() == data


def test_404_says_gone_in_one_line(tmp_path: Path, monkeypatch) -> None:
    cache = Cache(tmp_path)
    deb = _deb_entry(b"x", version="2.36-9+deb12u13")
    calls: list[str] = []
    _serve(monkeypatch, urllib.error.HTTPError("u", 404, "Not Found", {}, None), calls)  # type: ignore[arg-type]
    with pytest.raises(ProvisionError) as err:
        fetch.download_deb(deb, cache, NullProgress(), mirror="http://m.invalid/debian")
    msg = str(err.value)
    assert "\n" not in msg and len(calls) == 1
    assert "libc6 2.36-9+deb12u13" in msg and "gone" in msg
    assert "run `ldmatrix lock` to move to the archive's current version" in msg
    assert os.listdir(cache.downloads) == []


def test_transient_errors_are_retried_then_reported(tmp_path: Path, monkeypatch) -> None:
    cache = Cache(tmp_path)
    deb = _deb_entry(b"x")
    calls: list[str] = []
    _serve(monkeypatch, urllib.error.URLError(ConnectionRefusedError(111, "Connection refused")), calls)
    with pytest.raises(ProvisionError) as err:
        fetch.download_deb(deb, cache, NullProgress(), mirror="http://m.invalid/debian")
    msg = str(err.value)
    assert len(calls) == fetch.ATTEMPTS and deb.filename in msg and "Connection refused" in msg
    assert "\n" not in msg and "m.invalid" not in msg
    assert os.listdir(cache.downloads) == []


def test_truncated_transfer_then_success(tmp_path: Path, monkeypatch) -> None:
    import http.client

    cache = Cache(tmp_path)
    data = b"0123456789" * 100
    deb = _deb_entry(data)
    monkeypatch.setattr(fetch, "BACKOFF", (0.0, 0.0))
    attempts = iter([http.client.IncompleteRead(b"0123"), None])

    def flaky(url: str, timeout: float):
        err = next(attempts)
        if err is not None:
            class Broken(io.BytesIO):
                def read(self, n: int = -1) -> bytes:  # noqa: ARG002
                    raise err
            return Broken()
        return _Resp(data)

    monkeypatch.setattr(fetch, "urlopen", flaky)
    path = fetch.download_deb(deb, cache, NullProgress(), mirror="http://m.invalid/debian")
    assert path.read_bytes() == data and os.listdir(cache.downloads) == [path.name]


# --- store path layout ----------------------------------------------------------------------

def _build_deb(tmp_path: Path, name: str, files: dict[str, bytes | str], version: str = "1.0") -> bytes:
    """A .deb of ``name`` ``version`` from ``files``: bytes are file contents, str are symlink targets."""
    root = tmp_path / f"src-{name}"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text(
        f"Package: {name}\nVersion: {version}\nArchitecture: amd64\nMaintainer: t <t@t>\nDescription: test\n"
    )
    for rel, content in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            p.symlink_to(content)
        else:
            p.write_bytes(content)
    out = tmp_path / f"{name}.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "-Zgzip", "-b", str(root), str(out)],
                   check=True, capture_output=True)
    return out.read_bytes()


def _put(cache: Cache, deb_bytes: bytes, package: str, version: str, suite: str = "bookworm") -> LockedDeb:
    d = LockedDeb(suite, package, version, "amd64", f"pool/main/x/{package}.deb", len(deb_bytes),
                  hashlib.sha256(deb_bytes).hexdigest())
    (cache.downloads / f"{d.sha256}.deb").write_bytes(deb_bytes)
    return d


BULLSEYE_STYLE = {
    "lib/x86_64-linux-gnu/ld-2.31.so": b"loader",
    "lib/x86_64-linux-gnu/ld-linux-x86-64.so.2": "ld-2.31.so",
    "lib/x86_64-linux-gnu/libc-2.31.so": b"libc",
    "lib/x86_64-linux-gnu/libc.so.6": "libc-2.31.so",
    "lib/x86_64-linux-gnu/libm.so.6": "/lib/x86_64-linux-gnu/libc-2.31.so",  # absolute: rewritten
    "lib64/ld-linux-x86-64.so.2": "/lib/x86_64-linux-gnu/ld-2.31.so",
    "usr/lib/x86_64-linux-gnu/gconv/UTF-16.so": b"gconv",
    "usr/lib/x86_64-linux-gnu/libfoo.so": "../../../lib/x86_64-linux-gnu/libc-2.31.so",
    "usr/share/doc/libc6/copyright": b"doc",
}
MERGED_USR_STYLE = {
    "usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2": b"loader",
    "usr/lib/x86_64-linux-gnu/libc.so.6": b"libc",
    "usr/lib64/ld-linux-x86-64.so.2": "../lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
}


@needs_dpkg_deb
@pytest.mark.parametrize("files", [BULLSEYE_STYLE, MERGED_USR_STYLE], ids=["bullseye", "merged-usr"])
def test_glibc_layout_is_flat_with_valid_links(tmp_path: Path, monkeypatch, files) -> None:
    _no_network(monkeypatch)
    cache = Cache(tmp_path / "cache")
    deb = _put(cache, _build_deb(tmp_path, "libc6", files, "2.31-13+deb11u11"), "libc6", "2.31-13+deb11u11")
    sp = make_store_path("glibc", deb, cache, NullProgress())
    assert sp.host_path == cache.store / sp.basename and sp.basename.endswith("-glibc-2.31-13+deb11u11")
    lib = sp.host_path / "lib"
    assert (lib / "ld-linux-x86-64.so.2").read_bytes() == b"loader"
    assert (lib / "libc.so.6").read_bytes() == b"libc"
    for p in lib.rglob("*"):
        assert p.exists(), f"dangling {p}"
        if p.is_symlink():
            assert not os.readlink(p).startswith("/")
    if files is BULLSEYE_STYLE:
        assert os.readlink(lib / "libm.so.6") == "libc-2.31.so"
        assert os.readlink(lib / "libfoo.so") == "libc-2.31.so"
        assert (lib / "gconv" / "UTF-16.so").read_bytes() == b"gconv"
    assert sorted(os.listdir(sp.host_path)) == ["lib"]
    assert [p.name for p in cache.store.iterdir()] == [sp.basename]  # no temp dirs left
    # reused: same path, nothing rebuilt
    mtime = sp.host_path.stat().st_mtime_ns
    assert make_store_path("glibc", deb, cache, NullProgress()) == sp
    assert sp.host_path.stat().st_mtime_ns == mtime


@needs_dpkg_deb
def test_missing_loader_is_an_error(tmp_path: Path, monkeypatch) -> None:
    _no_network(monkeypatch)
    cache = Cache(tmp_path / "cache")
    deb = _put(cache, _build_deb(tmp_path, "libc6", {"usr/lib/x86_64-linux-gnu/libc.so.6": b"c"}, "2.99-1"),
               "libc6", "2.99-1")
    with pytest.raises(ProvisionError, match="ld-linux-x86-64.so.2 missing"):
        make_store_path("glibc", deb, cache, NullProgress())
    assert list(cache.store.iterdir()) == []


@needs_dpkg_deb
def test_provision_glibc_offline_from_cache(tmp_path: Path, monkeypatch) -> None:
    """The store paths beside a store glibc come from the lock's .debs, offline once cached; glibc
    itself is built (harness/provision/glibc_build.py) trusting the gcc-lib store path's lib/."""
    from harness.provision import glibc_build

    _no_network(monkeypatch)
    cache = Cache(tmp_path / "cache")
    libc = _put(cache, _build_deb(tmp_path, "libc6", MERGED_USR_STYLE, "2.41-12"), "libc6", "2.41-12")
    crypt = _put(cache, _build_deb(tmp_path, "libcrypt1", {
        "usr/lib/x86_64-linux-gnu/libcrypt.so.1.1.0": b"crypt",
        "usr/lib/x86_64-linux-gnu/libcrypt.so.1": "libcrypt.so.1.1.0"}, "1:4.4.38-1"), "libcrypt1", "1:4.4.38-1")
    gcc = _put(cache, _build_deb(tmp_path, "libgcc-s1", {
        "usr/lib/x86_64-linux-gnu/libgcc_s.so.1": b"gcc"}, "14.2.0-19"), "libgcc-s1", "14.2.0-19")
    bb = _put(cache, _build_deb(tmp_path, "busybox-static", {"bin/busybox": b"bb"}, "1:1.35.0-4"),
              "busybox-static", "1:1.35.0-4")
    config = SuitesConfig("amd64", {"9.99": "bookworm"}, dict(CONFIG.packages), "busybox-static",
                          "busybox", "bookworm", (), "apt", "sid", ())
    lock = Lock(tmp_path / "lock.json", "amd64", (SuiteLock("bookworm", "", (bb, libc, crypt, gcc)),))
    trusted: list[str] = []

    def built(version, lock, gcc_lib, cache, progress):
        trusted.append(gcc_lib.lib_dir)
        out = tmp_path / "glibc-out"
        return glibc_build.GlibcBuild(StorePath("glibc", version, "d" * 32, out), tmp_path / "bin", out / "log", "gcc")

    monkeypatch.setattr(glibc_build, "provide", built)
    g = provision_glibc("9.99", cache, NullProgress(), lock=lock, config=config)
    assert g.suite == "bookworm" and g.glibc_version == "9.99"
    assert trusted == [g.gcc_lib.lib_dir]
    assert g.libxcrypt.basename.endswith("-libxcrypt-4.4.38-1")  # epoch dropped
    assert (g.libxcrypt.host_path / "lib" / "libcrypt.so.1").read_bytes() == b"crypt"
    assert (g.gcc_lib.host_path / "lib" / "libgcc_s.so.1").read_bytes() == b"gcc"
    assert os.readlink(g.shell.host_path / "bin" / "sh") == "busybox"
    assert g.loader == f"{g.glibc.store_path}/lib/ld-linux-x86-64.so.2"
    with pytest.raises(ProvisionError, match=r"allowed: 9.99"):
        provision_glibc("1.0", cache, NullProgress(), lock=lock, config=config)


# --- build roots ----------------------------------------------------------------------------

def test_build_root_without_mmdebstrap(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(buildroot.shutil, "which", lambda name: None)
    with pytest.raises(ProvisionError, match="install it: apt-get install -y mmdebstrap"):
        build_root("bookworm", Cache(tmp_path), NullProgress())


def _fake_root(cache: Cache, suite: str = "trixie") -> Path:
    """A build root as mmdebstrap leaves it, as far as ldmatrix looks: dpkg's status and md5sums."""
    root = cache.buildroots / f"{suite}-{buildroot.root_digest(suite)}"
    (root / "var/lib/dpkg/info").mkdir(parents=True)
    (root / "var/lib/dpkg/status").write_text(
        "Package: libc6\nStatus: install ok installed\nArchitecture: amd64\nVersion: 2.41-12+deb13u5\n\n"
    )
    (root / "usr/bin").mkdir(parents=True)
    (root / "usr/bin/gcc").write_bytes(b"gcc" * 100)
    md5 = hashlib.md5(b"gcc" * 100).hexdigest()
    (root / "var/lib/dpkg/info/gcc.md5sums").write_text(f"{md5}  usr/bin/gcc\n")
    return root


def test_build_root_reuses_complete_root(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("LDMATRIX_DEBIAN_MIRROR", raising=False)
    monkeypatch.setattr(buildroot.shutil, "which", lambda name: pytest.fail("mmdebstrap called"))
    cache = Cache(tmp_path)
    root = _fake_root(cache)
    br = build_root("trixie", cache, NullProgress())  # made before manifests: checked once, adopted
    assert (br.path, br.glibc_version, br.suite) == (root, "2.41", "trixie")
    assert cache_entry.check(cache_entry.Entry(cache, "buildroots", root.name)) is None
    assert build_root("trixie", cache, NullProgress()) == br


def test_damaged_build_root_is_named_in_one_line_and_not_used(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("LDMATRIX_DEBIAN_MIRROR", raising=False)
    monkeypatch.setattr(buildroot.shutil, "which", lambda name: pytest.fail("mmdebstrap called"))
    cache = Cache(tmp_path)
    root = _fake_root(cache)
    build_root("trixie", cache, NullProgress())
    with (root / "usr/bin/gcc").open("ab") as f:
        f.write(b"planted")
    with pytest.raises(ProvisionError) as err:
        build_root("trixie", cache, NullProgress())
    message = str(err.value)
    assert "\n" not in message and "build root trixie" in message and "usr/bin/gcc" in message
    assert f"rm -rf {root}" in message


def test_build_root_made_before_manifests_that_dpkg_disowns_is_refused(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("LDMATRIX_DEBIAN_MIRROR", raising=False)
    monkeypatch.setattr(buildroot.shutil, "which", lambda name: pytest.fail("mmdebstrap called"))
    cache = Cache(tmp_path)
    root = _fake_root(cache)
    (root / "usr/bin/gcc").write_bytes(b"not gcc")
    with pytest.raises(ProvisionError, match=r"/usr/bin/gcc \(of gcc\) does not match dpkg's md5sum"):
        build_root("trixie", cache, NullProgress())


def test_build_root_digest_covers_inputs() -> None:
    assert buildroot.root_digest("trixie") != buildroot.root_digest("bookworm")
    assert buildroot.root_digest("trixie") != buildroot.root_digest("trixie", mirror="http://x.invalid")


def test_build_root_unknown_suite(tmp_path: Path) -> None:
    with pytest.raises(ProvisionError, match="allowed: bullseye"):
        build_root("woody", Cache(tmp_path), NullProgress())


# --- slow, networked ------------------------------------------------------------------------

@pytest.mark.slow
def test_refresh_lock_from_the_archive(tmp_path: Path) -> None:
    from harness.provision import refresh_lock

    lock = refresh_lock(tmp_path / "lock.json", NullProgress())
    assert load_lock(tmp_path / "lock.json") == Lock(tmp_path / "lock.json", lock.architecture, lock.suites,
                                                     lock.sources)
    assert {s.key for s in lock.sources} == {f"glibc-{v}" for v in SUITES}  # each store glibc's source


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("bwrap") is None, reason="needs bubblewrap")
@pytest.mark.parametrize("glibc", sorted(SUITES))
def test_real_store_paths_run_in_a_nixos_like_root(glibc: str) -> None:
    g = provision_glibc(glibc, Cache.default(), NullProgress())  # the shared cache: a glibc build is minutes
    argv = ["bwrap", "--unshare-all", "--tmpfs", "/", "--dir", "/nix/store"]
    for sp in g.store_paths:
        argv += ["--ro-bind", str(sp.host_path), sp.store_path]
    argv += ["--dir", "/bin", "--symlink", f"{g.shell.store_path}/bin/sh", "/bin/sh"]
    # the store's loader runs libc.so.6 (which prints its version) in a root with no /lib64
    script = f"{g.loader} --library-path {g.glibc.lib_dir} {g.glibc.lib_dir}/libc.so.6 && test ! -e /lib64"
    proc = subprocess.run(argv + ["/bin/sh", "-c", script],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert f"version {glibc}" in proc.stdout.splitlines()[0]


# --- a checked cache: store paths -------------------------------------------------------------

class _Steps:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def step(self, message: str) -> None:
        self.lines.append(message)


def _glibc_store_path(tmp_path: Path, monkeypatch) -> tuple[Cache, LockedDeb, Path]:
    _no_network(monkeypatch)
    cache = Cache(tmp_path / "cache")
    files = {**MERGED_USR_STYLE, "usr/lib/x86_64-linux-gnu/libc.so.6": b"\x7fELF" + b"libc" * 4096}
    deb = _put(cache, _build_deb(tmp_path, "libc6", files, "2.36-9+deb12u14"), "libc6", "2.36-9+deb12u14")
    return cache, deb, make_store_path("glibc", deb, cache, NullProgress()).host_path


@needs_dpkg_deb
def test_truncated_store_libc_is_detected_and_rebuilt(tmp_path: Path, monkeypatch) -> None:
    cache, deb, path = _glibc_store_path(tmp_path, monkeypatch)
    libc = path / "lib" / "libc.so.6"
    whole = libc.read_bytes()
    with libc.open("r+b") as f:
        f.truncate(100)  # cut short, as a full disk or a killed copy leaves it
    steps = _Steps()
    again = make_store_path("glibc", deb, cache, steps).host_path
    assert again == path and (again / "lib" / "libc.so.6").read_bytes() == whole
    assert any("is damaged" in line and "lib/libc.so.6" in line and "rebuilding" in line for line in steps.lines)
    assert [p.name for p in cache.store.iterdir()] == [path.name]


@needs_dpkg_deb
def test_file_planted_in_store_path_is_detected_and_rebuilt(tmp_path: Path, monkeypatch) -> None:
    cache, deb, path = _glibc_store_path(tmp_path, monkeypatch)
    (path / "lib" / "libcrypt.so.1").write_bytes(b"planted")  # would turn missing-library into ok
    steps = _Steps()
    make_store_path("glibc", deb, cache, steps)
    assert not (path / "lib" / "libcrypt.so.1").exists()
    assert any("lib/libcrypt.so.1 is not in the manifest" in line for line in steps.lines)


@needs_dpkg_deb
def test_same_size_rewrite_of_store_file_is_detected(tmp_path: Path, monkeypatch) -> None:
    cache, deb, path = _glibc_store_path(tmp_path, monkeypatch)
    entry = cache_entry.Entry(cache, "store", path.name)
    libc = path / "lib" / "libc.so.6"
    data = bytearray(libc.read_bytes())
    data[10] ^= 0xFF
    libc.write_bytes(bytes(data))  # same size, new mtime: the cheap check sees it
    assert "lib/libc.so.6 was modified" in cache_entry.check(entry)
    os.utime(libc, ns=(0, next(r.mtime_ns for r in cache_entry.read_manifest(entry).files
                                 if r.path == "lib/libc.so.6")))
    assert cache_entry.check(entry) is None  # mtime put back: only the full verify can tell
    assert "lib/libc.so.6: sha256" in cache_entry.verify(entry)


@needs_dpkg_deb
def test_store_path_made_before_manifests_is_adopted_or_replaced(tmp_path: Path, monkeypatch) -> None:
    cache, deb, path = _glibc_store_path(tmp_path, monkeypatch)
    entry = cache_entry.Entry(cache, "store", path.name)
    entry.manifest_path.unlink()  # as an older ldmatrix left it
    steps = _Steps()
    make_store_path("glibc", deb, cache, steps)
    assert cache_entry.check(entry) is None and not any("replacing" in line for line in steps.lines)
    entry.manifest_path.unlink()
    (path / "lib" / "libc.so.6").write_bytes(b"short")
    steps = _Steps()
    make_store_path("glibc", deb, cache, steps)
    assert any("differs from a fresh build" in line for line in steps.lines)
    assert (path / "lib" / "libc.so.6").read_bytes().startswith(b"\x7fELFlibc")


@needs_dpkg_deb
def test_deb_that_is_not_its_lock_entry_is_refused(tmp_path: Path, monkeypatch) -> None:
    _no_network(monkeypatch)
    cache = Cache(tmp_path / "cache")
    # trixie's libc6 under bookworm's name and version, its checksum copied into the lock
    deb = _put(cache, _build_deb(tmp_path, "libc6", MERGED_USR_STYLE, "2.41-12"), "libc6", "2.36-9+deb12u14")
    with pytest.raises(ProvisionError) as err:
        make_store_path("glibc", deb, cache, NullProgress())
    message = str(err.value)
    assert "\n" not in message and "is libc6 2.41-12" in message and "says libc6 2.36-9+deb12u14" in message
    assert list(cache.store.iterdir()) == []


def test_lock_entry_from_wrong_suite_is_refused() -> None:
    raw = _raw_lock()
    raw["suites"]["bookworm"]["packages"]["libc6"] = dict(raw["suites"]["trixie"]["packages"]["libc6"])
    with pytest.raises(ProvisionError) as err:
        parse_lock(raw, Path("packages.lock.json"))
    message = str(err.value)
    assert message.startswith("packages.lock.json: suites.bookworm.packages.libc6.version: is 2.41")
    assert "bookworm stands for glibc 2.36" in message and "\n" not in message


@pytest.mark.parametrize("filename", [
    "pool/main/g/glibc/libc6_2.41-12+deb13u5_amd64.deb",  # another version
    "pool/main/g/glibc/libc6-dev_2.36-9+deb12u14_amd64.deb",  # another package
    "pool/main/g/glibc/libc6_2.36-9+deb12u14_i386.deb",  # another architecture
])
def test_lock_filename_must_be_the_package_and_version(filename: str) -> None:
    raw = _raw_lock()
    raw["suites"]["bookworm"]["packages"]["libc6"]["filename"] = filename
    with pytest.raises(ProvisionError, match=r"suites.bookworm.packages.libc6.filename: .* is not libc6 2.36"):
        parse_lock(raw, Path("packages.lock.json"))
