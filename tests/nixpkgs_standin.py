"""TEST FIXTURE: a stand-in for a nixpkgs tree, for machines without nixpkgs (this one).

It is not nixpkgs and claims nothing about what nixpkgs gives: it is a tiny tree with nixpkgs'
*interface* (``import tree { system; config; overlays; }``, ``pkgs.glibc`` with a ``bin`` output
holding ``ldd``, ``pkgs.libxcrypt``, ``pkgs.stdenv.cc.cc.lib``, ``pkgs.busybox``,
``pkgs.bashInteractive``, ``pkgs.nix-ld``, ``nixos/lib/eval-config.nix`` answering
``config.programs.nix-ld.{package,libraries}``, and the package files ``ldmatrix pins update``
reads versions from), whose packages are real derivations that copy ldmatrix's store paths (its
own glibc build, harness/provision/glibc_build.py, and Debian's libraries) and a real nix-ld build
into a Nix store. So the code that realises a pin with Nix (``nix-instantiate``, ``nix-store
--realise``, ``nix-store --query --requisites``), fetches it by its hash, and binds the resulting
host store paths into cells runs for real here, with ldmatrix's glibc standing where a pin's glibc
would be. Its builder is Debian's static busybox.

The copied glibc's loader names its own store path in its search list; the copy is another store
path of the same length (its name is the same), so the builder writes the copy's path over the
original's where the loader holds it (byte offsets found here, written with busybox's dd), as Nix
rewrites a store path's hash in place: the copy searches its own lib/ as nixpkgs' loader does.

Its NixOS modules are what ``pins update`` reads a release's behaviour from, in the form of 24.05
and later (``STUB_LD_MODULE``, ``NIX_LD_MODULE``): stub-ld there, the base libraries set in config.
They are not evaluated here; they only say which release the stand-in stands for.
"""

from __future__ import annotations

import tarfile
from dataclasses import dataclass
from pathlib import Path

from harness.model import GlibcSet, StorePath

NAME = "standin-24.11"  # the pin's name in the test's pins file
TOP = "nixpkgs-standin"


def _q(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("${", "\\${") + '"'


def _src(var: str, path: StorePath | Path, name: str) -> str:
    host = path.host_path if isinstance(path, StorePath) else path
    return f"  {var} = builtins.path {{ path = /. + {_q(str(host))}; name = {_q(name)}; }};"


def default_nix(glibc: GlibcSet, bash: StorePath, nix_ld: StorePath) -> str:
    return "\n".join([
        "# TEST FIXTURE (tests/nixpkgs_standin.py): nixpkgs' interface, Debian's packages. Not nixpkgs.",
        "{ system ? builtins.currentSystem, config ? { }, overlays ? [ ] }:",
        "let",
        _src("bbSrc", glibc.shell, "standin-busybox-tool"),
        _src("glibcSrc", glibc.glibc, "standin-glibc-src"),
        _src("xcryptSrc", glibc.libxcrypt, "standin-libxcrypt-src"),
        _src("gccLibSrc", glibc.gcc_lib, "standin-gcc-lib-src"),
        _src("bashSrc", bash, "standin-bash-src"),
        _src("nixLdSrc", nix_ld, "standin-nix-ld-src"),
        '  build = name: outputs: script: derivation {',
        '    inherit name system outputs;',
        '    BB = "${bbSrc}/bin/busybox";',
        '    builder = "${bbSrc}/bin/busybox";',
        '    args = [ "sh" "-ec" script ];',
        '  };',
        '  copy = name: src: build name [ "out" ] "$BB cp -R ${src} $out";',
        "in rec {",
        f'  glibc = build "glibc-{glibc.glibc.version}" [ "out" "bin" ] \'\'',
        "    $BB cp -R ${glibcSrc} $out",
        *_rewrite_own_path(glibc),
        "    $BB mkdir -p $bin/bin",
        "    $BB printf '#!/bin/sh\\nexec %s/lib/ld-linux-x86-64.so.2 --list \"$@\"\\n' $out > $bin/bin/ldd",
        "    $BB chmod 555 $bin/bin/ldd",
        "  '';",
        f'  libxcrypt = copy "libxcrypt-{glibc.libxcrypt.version}" xcryptSrc;',
        f'  gcc = build "gcc-{glibc.gcc_lib.version}" [ "out" "lib" ] "$BB mkdir -p $out/bin && $BB cp -R ${{gccLibSrc}} $lib";',
        "  stdenv = { cc = { cc = gcc; }; };",
        f'  busybox = copy "busybox-{glibc.shell.version}" bbSrc;',
        f'  bashInteractive = copy "bash-interactive-{bash.version}" bashSrc;',
        f'  nix-ld = copy "nix-ld-{nix_ld.version}" nixLdSrc;',
        "}",
        "",
    ])


EVAL_CONFIG = """# TEST FIXTURE (tests/nixpkgs_standin.py): answers what ldmatrix asks of NixOS's programs.nix-ld.
{ system ? builtins.currentSystem, modules ? [ ], ... }:
let pkgs = import ../.. { inherit system; };
in {
  config.programs.nix-ld = {
    package = pkgs.nix-ld;
    libraries = [ pkgs.stdenv.cc.cc ];
  };
}
"""


# The two forms pins update tells apart (harness/nixpkgs/update.py), as 24.05 and later have them.
STUB_LD_MODULE = """# TEST FIXTURE (tests/nixpkgs_standin.py): stands for NixOS's stub-ld module. Not nixpkgs.
{ lib, ... }: { options.environment.stub-ld.enable = lib.mkEnableOption "stub-ld" // { default = true; }; }
"""
NIX_LD_MODULE = """# TEST FIXTURE (tests/nixpkgs_standin.py): stands for NixOS's nix-ld module. Not nixpkgs.
{ pkgs, lib, config, ... }:
{
  options.programs.nix-ld.libraries = lib.mkOption { type = lib.types.listOf lib.types.package; default = [ ]; };
  config = lib.mkIf config.programs.nix-ld.enable {
    programs.nix-ld.libraries = [ pkgs.stdenv.cc.cc ];
  };
}
"""


def _rewrite_own_path(glibc: GlibcSet) -> list[str]:
    """Builder lines that write ``$out`` over the copied loader's own store path, at each place it holds
    it (its search list, its cache file's path)."""
    loader = glibc.glibc.host_path / "lib" / "ld-linux-x86-64.so.2"
    data = loader.read_bytes()
    old = glibc.glibc.store_path.encode()
    offsets, at = [], data.find(old)
    while at >= 0:
        offsets.append(at)
        at = data.find(old, at + 1)
    assert offsets, f"{loader} does not name its own store path"
    target = "$out/lib/ld-linux-x86-64.so.2"
    return ["    $BB chmod -R u+w $out", *(f'    $BB printf %s "$out" | $BB dd of={target} bs=1 seek={at} conv=notrunc '
                                            "2>/dev/null" for at in offsets)]


@dataclass(frozen=True)
class Standin:
    archive: Path
    tree: Path


def make(directory: Path, glibc: GlibcSet, bash: StorePath, nix_ld: StorePath) -> Standin:
    """The stand-in tree under ``directory`` and its archive (``<directory>/nixpkgs-standin.tar.gz``)."""
    tree = directory / TOP
    files = {
        "default.nix": default_nix(glibc, bash, nix_ld),
        "nixos/lib/eval-config.nix": EVAL_CONFIG,
        # Where `ldmatrix pins update` reads the versions, as in nixpkgs.
        "pkgs/development/libraries/glibc/common.nix": f'{{ }}:\nlet\n  version = "{glibc.glibc_version}";\nin {{ }}\n',
        "pkgs/by-name/ni/nix-ld/package.nix": f'{{ }}:\n{{\n  pname = "nix-ld";\n  version = "{nix_ld.version}";\n}}\n',
        "nixos/modules/config/stub-ld.nix": STUB_LD_MODULE,
        "nixos/modules/programs/nix-ld.nix": NIX_LD_MODULE,
    }
    for relative, text in files.items():
        path = tree / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    archive = directory / f"{TOP}.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tree, arcname=TOP)
    return Standin(archive, tree)
