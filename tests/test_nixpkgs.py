"""nixpkgs pins and their columns, without Nix: the pins file (a pin without a hash is refused),
`ldmatrix pins update` against a replaced network, the glibc axis with a pin's column, and the
realisation's handling of what Nix says."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from harness.cli import main
from harness.errors import LdmatrixError
from harness.model import Cell, Strategy
from harness.commands import pins as pins_cli
from harness.nixpkgs import pins as pins_mod
from harness.nixpkgs import realise

SOURCE = {"archive": "https://example.invalid/a/{rev}.tar.gz", "head": "https://example.invalid/h/{channel}"}
REV = "ab" * 20
HASH = "sha256-" + "B" * 43 + "="


def write_pins(path: Path, **pins) -> Path:
    path.write_text(json.dumps({"source": SOURCE, "pins": pins}))
    return path


def hashed(**extra) -> dict:
    return {"channel": "nixos-24.11", "rev": REV, "url": SOURCE["archive"].format(rev=REV), "sha256": HASH,
            "glibc": "2.40", "nix_ld": "2.0.3", **extra}


# --------------------------------------------------------------------------- the pins file


def test_the_shipped_pins_are_refused_until_they_have_a_hash() -> None:
    pins = pins_mod.load()
    assert {"nixos-24.11", "nixos-unstable"} <= set(pins.pins)
    assert any(p.supported for p in pins.pins.values())
    for pin in pins.pins.values():
        assert pin.url is None or pin.url.startswith("https://github.com/NixOS/nixpkgs/archive/")
        if pin.sha256 is None:
            with pytest.raises(LdmatrixError, match=f"pin {pin.name} has no (hash|revision), so it is refused"):
                pins.select([pin.name])


def test_a_pin_is_chosen_by_name_revision_or_supported(tmp_path: Path) -> None:
    pins = pins_mod.load(write_pins(tmp_path / "p.json", **{"nixos-24.11": hashed(supported=True),
                                                            "nixos-25.05": hashed(rev="cd" * 20)}))
    assert [p.name for p in pins.select(["nixos-24.11"])] == ["nixos-24.11"]
    assert [p.name for p in pins.select([REV[:9]])] == ["nixos-24.11"]
    assert [p.name for p in pins.select(["supported", "nixos-24.11"])] == ["nixos-24.11"]
    with pytest.raises(LdmatrixError, match="no pin of .* has that revision"):
        pins.select(["0123456789"])
    with pytest.raises(LdmatrixError, match="unknown pin; did you mean 'nixos-24.11'"):
        pins.select(["nixos-24.1"])


@pytest.mark.parametrize("entry, message", [
    ({"rev": "xyz"}, "pins.p.rev: 'xyz' is not 40 hex digits"),
    ({"sha256": "abc"}, "pins.p.sha256: 'abc' is not sha256-<base64>"),
    ({"glibc": "2"}, "pins.p.glibc: '2' is not a glibc version"),
    ({"supported": "yes"}, "pins.p.supported: must be true or false"),
    ({"url": "ftp://x"}, "pins.p.url: 'ftp://x' is not an http(s) or file URL"),
    ({"shaa256": "x"}, "pins.p.shaa256: unknown key; did you mean 'sha256'?"),
    ({"stub_ld": "yes"}, "pins.p.stub_ld: must be true, false or null"),
    ({"nix_ld_libraries": "ad"}, "pins.p.nix_ld_libraries: 'ad'; did you mean 'add'? is not a form (allowed: "
                                 "replace, add, or null"),
])
def test_a_damaged_pin_is_one_line_naming_the_key(tmp_path: Path, entry: dict, message: str) -> None:
    path = write_pins(tmp_path / "p.json", p=hashed(**entry))
    with pytest.raises(LdmatrixError) as err:
        pins_mod.load(path)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_a_hashed_pin_without_a_glibc_version_is_refused(tmp_path: Path) -> None:
    pins = pins_mod.load(write_pins(tmp_path / "p.json", p=hashed(glibc=None)))
    with pytest.raises(LdmatrixError, match="records no glibc version"):
        pins.select(["p"])


def test_a_pins_release_is_what_its_tree_said_and_unknown_until_read(tmp_path: Path) -> None:
    from harness.root.release import LibraryList

    pins = pins_mod.load(write_pins(tmp_path / "p.json", **{
        "nixos-24.11": hashed(stub_ld=True, nix_ld_libraries="add"),
        "nixos-unstable": hashed(channel="nixos-unstable", stub_ld=True, nix_ld_libraries="add"),
        "old": hashed(channel="nixos-23.11", stub_ld=False, nix_ld_libraries="replace"),
        "unread": hashed(stub_ld=True)}))
    release = pins.pins["nixos-24.11"].source().release
    assert release is not None and (release.version, release.codename, release.stub_ld, release.libraries) == (
        "24.11", "Vicuña", True, LibraryList.ADD)
    unstable = pins.pins["nixos-unstable"].release
    assert unstable is not None and (unstable.version, unstable.codename) == ("unstable", "")
    old = pins.pins["old"].release
    assert old is not None and (old.version, old.stub_ld, old.libraries) == ("23.11", False, LibraryList.REPLACE)
    assert pins.pins["unread"].release is None and pins.pins["unread"].source().release is None


# --------------------------------------------------------------------------- pins update

# What `pins update` reads of NixOS's modules, in the two forms nixpkgs has had (harness/root/release.py
# cites the revisions read): the base list as the option's default, or set in config.
NIX_LD_REPLACES = """{ pkgs, lib, config, ... }:
let
  base = with pkgs; [ zlib openssl ];  # the base libraries
in {
  options.programs.nix-ld.libraries = lib.mkOption {
    type = lib.types.listOf lib.types.package;
    default = base;
  };
  config = lib.mkIf config.programs.nix-ld.enable { environment.variables.NIX_LD = "x"; };
}
"""
NIX_LD_ADDS = """{ pkgs, lib, config, ... }:
{
  options.programs.nix-ld = {
    libraries = lib.mkOption {
      type = lib.types.listOf lib.types.package;
      description = "Libraries {for} everyone";
      default = [ ];  # the base list is set below
    };
  };
  config = lib.mkIf config.programs.nix-ld.enable {
    programs.nix-ld.libraries = with pkgs; [ zlib openssl ];
  };
}
"""
STUB_LD = "{ lib, ... }: { options.environment.stub-ld.enable = lib.mkEnableOption \"stub-ld\" // { default = true; }; }\n"


def _archive(glibc: str = "2.42", nix_ld: str = "2.0.6", nix_ld_module: str | None = NIX_LD_ADDS,
             stub_ld: bool = True) -> bytes:
    files = {"nixpkgs-x/pkgs/development/libraries/glibc/common.nix": f'  version = "{glibc}";\n  patchSuffix = "-1";\n',
             "nixpkgs-x/pkgs/by-name/ni/nix-ld/package.nix": f'  pname = "nix-ld";\n  version = "{nix_ld}";\n'}
    if nix_ld_module is not None:
        files["nixpkgs-x/nixos/modules/programs/nix-ld.nix"] = nix_ld_module
    if stub_ld:
        files["nixpkgs-x/nixos/modules/config/stub-ld.nix"] = STUB_LD
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, text in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(text.encode())
            tar.addfile(info, io.BytesIO(text.encode()))
    return buffer.getvalue()


def test_pins_update_moves_a_pin_to_its_channels_head(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    path = write_pins(tmp_path / "p.json", **{"nixos-unstable": {"channel": "nixos-unstable", "rev": None,
                                                                "sha256": None, "supported": True}})
    fetched = []

    def fetch(url: str, dest: Path) -> None:
        fetched.append(url)
        dest.write_bytes(json.dumps({"sha": REV}).encode() if "/h/" in url else _archive())

    monkeypatch.setattr(pins_cli, "FETCH", fetch)
    assert main(["pins", "--pins", str(path), "update", "--supported", "-q"]) == 0
    assert fetched == [SOURCE["head"].format(channel="nixos-unstable"), SOURCE["archive"].format(rev=REV)]
    pin = pins_mod.load(path).pins["nixos-unstable"]
    assert (pin.rev, pin.glibc, pin.nix_ld, pin.supported) == (REV, "2.42", "2.0.6", True)
    assert json.loads(path.read_text())["pins"]["nixos-unstable"] | {"stub_ld": True, "nix_ld_libraries": "add"} == \
        json.loads(path.read_text())["pins"]["nixos-unstable"]  # the tree's release, written
    from harness.nixld.nar import tree_hash

    (tmp_path / "tree").mkdir()
    with tarfile.open(fileobj=io.BytesIO(_archive())) as tar:
        tar.extractall(tmp_path / "tree", filter="data")
    assert pin.sha256 == tree_hash(tmp_path / "tree" / "nixpkgs-x")  # the archive's single top directory
    assert pin.refusal("x") is None
    assert "nixos-unstable: " + REV in capsys.readouterr().out


def test_pins_update_says_in_one_line_when_github_is_unreachable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    from harness.nixpkgs.update import Unreachable

    path = write_pins(tmp_path / "p.json", p=hashed())
    before = path.read_text()

    def fetch(url: str, dest: Path) -> None:
        raise Unreachable("api.github.com cannot be reached ([Errno -2] Name or service not known)")

    monkeypatch.setattr(pins_cli, "FETCH", fetch)
    assert main(["pins", "--pins", str(path), "update", "-q"]) == 2
    err = capsys.readouterr().err
    assert err == ("ldmatrix: pins update: api.github.com cannot be reached ([Errno -2] Name or service not known): "
                   "run it on a machine that can reach GitHub; nothing was changed\n")
    assert path.read_text() == before


@pytest.mark.parametrize("module, stub_ld, form", [
    (NIX_LD_ADDS, True, "add"),
    (NIX_LD_REPLACES, False, "replace"),
    (NIX_LD_ADDS.replace("programs.nix-ld.libraries = ", "environment.systemPackages = "), True, None),
    (None, True, None),
])
def test_pins_update_reads_the_releases_behaviour_from_the_tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                module: str | None, stub_ld: bool,
                                                                form: str | None) -> None:
    """stub-ld is there or not; the base libraries are the option's default (replace) or set in config
    (add); a module of neither form, or none, leaves the release unknown (never guessed from the name)."""
    path = write_pins(tmp_path / "p.json", **{"nixos-24.05": {"channel": "nixos-24.05"}})

    def fetch(url: str, dest: Path) -> None:
        archive = _archive(nix_ld_module=module, stub_ld=stub_ld)
        dest.write_bytes(json.dumps({"sha": REV}).encode() if "/h/" in url else archive)

    monkeypatch.setattr(pins_cli, "FETCH", fetch)
    assert main(["pins", "--pins", str(path), "update", "nixos-24.05", "-q"]) == 0
    entry = json.loads(path.read_text())["pins"]["nixos-24.05"]
    assert (entry["stub_ld"], entry["nix_ld_libraries"]) == (stub_ld, form)
    release = pins_mod.load(path).pins["nixos-24.05"].release
    assert (release is None) == (form is None)
    if release is not None:
        assert (release.version, release.stub_ld, release.libraries.value) == ("24.05", stub_ld, form)


class _GitHub:
    """A local stand-in of GitHub's API: answers 403 with X-RateLimit-Remaining 0, records the headers."""

    def __init__(self) -> None:
        import http.server
        import threading

        seen = self.seen = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                seen.append(dict(self.headers))
                self.send_response(403)
                self.send_header("X-RateLimit-Remaining", "0")
                self.end_headers()
                self.wfile.write(b'{"message": "API rate limit exceeded"}')

            def log_message(self, *args) -> None:
                pass

        self.server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.origin = f"http://127.0.0.1:{self.server.server_port}"
        self.url = f"{self.origin}/repos/NixOS/nixpkgs/commits/x"


def test_pins_update_sends_github_token_and_names_the_rate_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    from harness.nixpkgs import update

    github = _GitHub()
    try:
        monkeypatch.setattr(update, "TOKEN_ORIGINS", (github.origin,))
        path = write_pins(tmp_path / "p.json", p={"channel": "nixos-24.11"})
        raw = json.loads(path.read_text())
        raw["source"]["head"] = github.url.replace("/x", "/{channel}")
        path.write_text(json.dumps(raw))
        before = path.read_text()
        monkeypatch.setenv("GITHUB_TOKEN", "secret-token")
        monkeypatch.setattr(pins_cli, "FETCH", update.fetch_url)
        assert main(["pins", "--pins", str(path), "update", "-q"]) == 2
        err = capsys.readouterr().err
        assert err == ("ldmatrix: pins update: 127.0.0.1: GitHub's rate limit stopped it (HTTP 403); even with "
                       "$GITHUB_TOKEN and run it again later; nothing was changed\n")
        assert github.seen and github.seen[0].get("Authorization") == "Bearer secret-token"
        assert path.read_text() == before
        monkeypatch.delenv("GITHUB_TOKEN")
        assert main(["pins", "--pins", str(path), "update", "-q"]) == 2
        assert "set GITHUB_TOKEN to a token" in capsys.readouterr().err
        assert "Authorization" not in github.seen[-1]
    finally:
        github.server.shutdown()


def test_the_token_goes_to_githubs_api_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A pins file's source may name any host: the token is sent to GitHub's API alone (over https)."""
    from harness.nixpkgs import update

    github = _GitHub()
    try:
        monkeypatch.setenv("GITHUB_TOKEN", "secret-token")
        with pytest.raises(update.RateLimited, match="set GITHUB_TOKEN to a token"):
            update.fetch_url(github.url, tmp_path / "x")  # 127.0.0.1 is not GitHub's API
        assert "Authorization" not in github.seen[-1]
    finally:
        github.server.shutdown()


def test_the_real_fetch_names_the_host_it_cannot_reach(tmp_path: Path) -> None:
    from harness.nixpkgs.update import Unreachable, fetch_url

    with pytest.raises(Unreachable, match=r"^nonexistent\.invalid cannot be reached"):
        fetch_url("https://nonexistent.invalid/x", tmp_path / "x")


# --------------------------------------------------------------------------- a pin's column


SEED = Path(__file__).resolve().parent.parent / "matrices" / "seed.yaml"


def test_a_pins_glibc_build_is_a_column_of_its_own() -> None:
    from harness.matrix import load

    plain = load(SEED)
    matrix = load(SEED, nixpkgs={"nixos-24.11": ("2.40", "2.0.3")})
    pin_cells = [c for c in matrix.cells if c.nixpkgs == "nixos-24.11"]
    assert pin_cells and all(c.glibc == "2.40" for c in pin_cells)
    assert {c.id for c in plain.cells} <= {c.id for c in matrix.cells}  # Debian's columns stay
    assert Cell("c-hello", (Strategy.PATCHELF,), "2.40", nixpkgs="nixos-24.11").id == "c-hello.patchelf.nixos-24.11"
    assert not any(c.nixpkgs for c in matrix.cells if Strategy.CONTAINER in c.strategy)  # the build suite's own
    by_id = {c.id: c for c in matrix.cells}
    # the pin's own nix-ld joins the nix_ld axis on its column only: Debian's columns stay as they were
    assert "c-hello.nix-ld-2.0.3.nixos-24.11.libs-default" in by_id
    assert "c-hello.nix-ld-2.0.3.glibc-2.36.libs-default" not in by_id
    assert "c-hello.nix-ld-2.0.6.nixos-24.11.libs-default" in by_id
    # "glibc: <2.38" compares the pin's glibc; the 2.0.5 crash rule names Debian's builds, not the pin's
    assert matrix.expectation(by_id["c-needs-glibc-2.38.patchelf.nixos-24.11"]).outcome.value == "ok"
    assert matrix.expectation(by_id["c-hello.nix-ld-2.0.5.nixos-24.11.libs-default"]).bug is None
    assert matrix.expectation(by_id["c-hello.nix-ld-2.0.5.glibc-2.31.libs-default"]).bug is not None
    old = load(SEED, nixpkgs={"nixos-23.05": ("2.37", None)})
    assert old.expectation(next(c for c in old.cells if c.id == "c-needs-glibc-2.38.patchelf.nixos-23.05")
                           ).outcome.value == "glibc-too-old"


def test_the_grid_labels_a_pins_column_with_its_glibc() -> None:
    from harness.results import report
    from harness.model import CellResult, Outcome

    cell = Cell("c-hello", (Strategy.PATCHELF,), "2.40", nixpkgs="nixos-24.11")
    debian = Cell("c-hello", (Strategy.PATCHELF,), "2.43")
    results = [CellResult(c.id, Outcome.OK, "ok", Outcome.OK, None, None, 0, 0.0, "sandbox", axes=c.axes)
               for c in (cell, debian)]
    header = report.grid(results).splitlines()[0]
    assert header.index("glibc 2.43") < header.index("nixos-24.11 · glibc 2.40")


# --------------------------------------------------------------------------- realisation


def test_a_store_path_splits_as_nix_splits_names(tmp_path: Path) -> None:
    store = realise.NixStore(tmp_path)
    for name in ("glibc-2.40-66-bin", "xgcc-13.3.0-libgcc", "ld-library-path"):
        (tmp_path / "nix" / "store" / f"{'a' * 32}-{name}").mkdir(parents=True)
    got = [(p.name, p.version) for p in (realise.store_path(f"/nix/store/{'a' * 32}-{n}", store)
                                          for n in ("glibc-2.40-66-bin", "xgcc-13.3.0-libgcc", "ld-library-path"))]
    assert got == [("glibc", "2.40-66-bin"), ("xgcc", "13.3.0-libgcc"), ("ld-library-path", "")]
    sp = realise.store_path(f"/nix/store/{'a' * 32}-ld-library-path", store)
    assert sp.store_path == f"/nix/store/{'a' * 32}-ld-library-path" and sp.host_path.is_dir()
    with pytest.raises(LdmatrixError, match="not in the Nix store under"):
        realise.store_path(f"/nix/store/{'b' * 32}-gone-1.0", store)


def _fake_nix(tmp_path: Path, stderr: str, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(parents=True)
    for tool in ("nix-instantiate", "nix-store"):
        (bin_dir / tool).write_text(f"#!/bin/sh\necho '{stderr}' >&2\nexit 1\n")
        (bin_dir / tool).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")


def test_a_pin_nix_cannot_fetch_is_unavailable_a_wrong_hash_is_an_error(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.progress import NullProgress

    pin = pins_mod.load(write_pins(tmp_path / "p.json", p=hashed())).pins["p"]
    _fake_nix(tmp_path / "a", "error: unable to download 'https://x': Could not resolve host name (6)", monkeypatch)
    with pytest.raises(realise.NixUnavailable, match="Could not resolve host name"):
        realise.realise_with_nix(pin, realise.NixStore(), tmp_path / "w1", NullProgress())
    _fake_nix(tmp_path / "b", "error: hash mismatch in file downloaded from 'https://x'", monkeypatch)
    with pytest.raises(LdmatrixError, match="does not match the pin's hash") as err:
        realise.realise_with_nix(pin, realise.NixStore(), tmp_path / "w2", NullProgress())
    assert not isinstance(err.value, realise.NixUnavailable)


def test_the_realisation_expression_parses(tmp_path: Path) -> None:
    import shutil
    import subprocess

    if shutil.which("nix-instantiate") is None:
        pytest.skip("nix-instantiate not found: apt-get install -y nix-bin")
    pin = pins_mod.load(write_pins(tmp_path / "p.json", p=hashed())).pins["p"]
    path = tmp_path / "realise.nix"
    path.write_text(realise.expression(pin))
    proc = subprocess.run(["nix-instantiate", "--parse", str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    text = path.read_text()
    for attribute in ("pkgs.glibc;", "pkgs.glibc.bin;", "pkgs.libxcrypt;", "pkgs.stdenv.cc.cc.lib;", "pkgs.busybox;",
                      "pkgs.bashInteractive;", "nixLd.package;", "nixLd.libraries;", f'sha256 = "{HASH}"'):
        assert attribute in text
