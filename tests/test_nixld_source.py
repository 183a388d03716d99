"""nix-ld sources and supplied builds: parsing, labels, NAR hashes, generations, versions, errors.

Fast: the trees here are tiny stand-ins for nix-ld's layout (no build runs); the real archives
are built in tests/test_nixld_build.py.
"""

from __future__ import annotations

import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from harness.cache import Cache
from harness.errors import LdmatrixError
from harness.nixld import binary, labels, request, source
from harness.nixld.nar import is_sri, tree_hash
from harness.nixld.provide import Supply, provide
from harness.nixld.source import Generation, SourceError
from harness.progress import NullProgress


def c_tree(root: Path, name: str = "nix-ld-1.2.2") -> Path:
    tree = root / name
    (tree / "src").mkdir(parents=True)
    (tree / "meson.build").write_text("project('nix-ld', ['c'],\n        version : '1')\n")
    (tree / "src" / "nix-ld.c").write_text("int main(void) { return 0; }\n")
    return tree


def rust_tree(root: Path, version: str = "2.0.9", name: str = "nix-ld-x") -> Path:
    tree = root / name
    (tree / "src").mkdir(parents=True)
    (tree / "Cargo.toml").write_text(f'[package]\nname = "nix-ld"\nversion = "{version}"\nedition = "2024"\n')
    (tree / "src" / "main.rs").write_text("fn main() {}\n")
    return tree


def tarball(tree: Path, dest: Path) -> Path:
    with tarfile.open(dest, "w:gz") as tar:
        tar.add(tree, arcname=tree.name)
    return dest


@pytest.fixture
def cache(tmp_path: Path) -> Cache:
    return Cache(tmp_path / "cache")


# --- --nix-ld items --------------------------------------------------------------------------------

def test_version_equals_path() -> None:
    req = request.parse("1.2.2=/x/nix-ld")
    assert (req.label, req.path, req.source) == ("1.2.2", Path("/x/nix-ld"), False)


def test_store_path_names_its_version() -> None:
    req = request.parse("/nix/store/nfxfy71ldi0wwr9lklbp5bp143aivaxg-nix-ld-1.2.2")
    assert (req.label, req.source) == ("1.2.2", False)


def test_source_with_and_without_label_and_revision() -> None:
    plain = request.parse("src:/a/nix-ld-2.0.6.tar.gz")
    assert (plain.label, plain.path, plain.rev, plain.source) == (None, Path("/a/nix-ld-2.0.6.tar.gz"), None, True)
    git = request.parse("2.0.6=src:/a/nix-ld.bundle#2.0.6")
    assert (git.label, git.path, git.rev) == ("2.0.6", Path("/a/nix-ld.bundle"), "2.0.6")


@pytest.mark.parametrize("text", ["/path/to/nix-ld", "=/x", "1.2.2=", "src:", "src:/x#"])
def test_bad_items_say_the_forms(text: str) -> None:
    with pytest.raises(LdmatrixError, match="expected VERSION=PATH"):
        request.parse(text)


@pytest.mark.parametrize("text", ["latest=/x", "main=src:/x", "a b=/x", "v2=src:/x"])
def test_labels_must_be_versions(text: str) -> None:
    with pytest.raises(LdmatrixError, match="is not a version"):
        request.parse(text)


def test_describe_labels_order_between_releases() -> None:
    between = labels.label_version("2.0.5-31-g4c22def")
    assert labels.label_version("2.0.5") < between < labels.label_version("2.0.6")  # type: ignore[operator]
    assert labels.label_version("main") is None


# --- NAR hashes ------------------------------------------------------------------------------------

def test_nar_hash_ignores_time_and_keeps_the_executable_bit(tmp_path: Path) -> None:
    tree = c_tree(tmp_path)
    first = tree_hash(tree)
    assert is_sri(first)
    (tree / "meson.build").touch()
    assert tree_hash(tree) == first
    (tree / "meson.build").chmod(0o755)
    assert tree_hash(tree) != first


@pytest.mark.skipif(shutil.which("nix") is None, reason="needs nix (apt-get install nix-bin) to compare with")
def test_nar_hash_is_what_nix_computes(tmp_path: Path) -> None:
    tree = c_tree(tmp_path)
    (tree / "run").write_text("#!/bin/sh\n")
    (tree / "run").chmod(0o755)
    (tree / "link").symlink_to("meson.build")
    nix = subprocess.run(["nix", "--extra-experimental-features", "nix-command", "hash", "path", str(tree)],
                         capture_output=True, text=True, check=True)
    assert tree_hash(tree) == nix.stdout.strip()


# --- sources -----------------------------------------------------------------------------------------

def test_c_archive_is_generation_1_named_by_its_directory(tmp_path: Path, cache: Cache) -> None:
    archive = tarball(c_tree(tmp_path / "t"), tmp_path / "anything.tar.gz")
    tree = source.load(archive, cache)
    assert (tree.generation, tree.version) == (Generation.C, "1.2.2")
    assert tree.nar_hash == tree_hash(tmp_path / "t" / "nix-ld-1.2.2")
    assert (tree.path / "src" / "nix-ld.c").is_file()


def test_rust_tree_reads_its_version_from_cargo(tmp_path: Path, cache: Cache) -> None:
    tree = source.load(rust_tree(tmp_path), cache)
    assert (tree.generation, tree.version) == (Generation.RUST, "2.0.9")


def test_a_label_must_agree_with_the_source(tmp_path: Path, cache: Cache) -> None:
    with pytest.raises(SourceError, match="is nix-ld 2.0.9, not 2.0.6"):
        source.load(rust_tree(tmp_path), cache, label="2.0.6")


def test_c_source_without_a_version_needs_a_label(tmp_path: Path, cache: Cache) -> None:
    tree = c_tree(tmp_path, name="checkout")
    with pytest.raises(SourceError, match="name it, --nix-ld 1.2.2=src:PATH"):
        source.load(tree, cache)
    assert source.load(tree, cache, label="1.2.3").version == "1.2.3"


def test_not_nix_ld_source(tmp_path: Path, cache: Cache) -> None:
    other = tmp_path / "hello-1.0"
    other.mkdir()
    (other / "Makefile").write_text("all:\n")
    archive = tarball(other, tmp_path / "hello-1.0.tar.gz")
    with pytest.raises(SourceError, match="not nix-ld source"):
        source.load(archive, cache)


def test_corrupt_archive(tmp_path: Path, cache: Cache) -> None:
    archive = tarball(c_tree(tmp_path / "t"), tmp_path / "nix-ld-1.2.2.tar.gz")
    data = archive.read_bytes()
    archive.write_bytes(data[: len(data) // 2])
    with pytest.raises(SourceError, match="not a readable archive"):
        source.load(archive, cache)


def test_pinned_hash_mismatch(tmp_path: Path, cache: Cache) -> None:
    archive = tarball(c_tree(tmp_path / "t"), tmp_path / "nix-ld-1.2.2.tar.gz")
    with pytest.raises(SourceError, match="does not match the pinned"):
        source.load(archive, cache, expected_hash="sha256-" + "A" * 43 + "=")


def git_repo(tmp_path: Path) -> tuple[Path, str]:
    repo = rust_tree(tmp_path, "2.0.5", name="repo")

    def run(*args: str) -> str:
        return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True,
                              env={"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
                                   "GIT_COMMITTER_EMAIL": "t@t", "HOME": str(tmp_path)}).stdout.strip()

    run("init", "-q")
    run("add", ".")
    run("commit", "-qm", "release")
    run("tag", "2.0.5")
    (repo / "src" / "main.rs").write_text("fn main() { }\n")
    run("commit", "-qam", "a fix")
    return repo, run("rev-parse", "HEAD")


def test_git_tag_and_commit_labels(tmp_path: Path, cache: Cache) -> None:
    repo, head = git_repo(tmp_path)
    assert source.load(repo, cache, rev="2.0.5").version == "2.0.5"
    after = source.load(repo, cache, rev=head[:10])
    assert after.version == f"2.0.5-1-g{head[:7]}" and after.commit == head


def test_git_bundle_needs_a_revision_and_knows_its_tags(tmp_path: Path, cache: Cache) -> None:
    repo, _ = git_repo(tmp_path)
    bundle = tmp_path / "nix-ld.bundle"
    subprocess.run(["git", "-C", str(repo), "bundle", "create", str(bundle), "--all"], check=True,
                   capture_output=True)
    with pytest.raises(SourceError, match="needs a revision"):
        source.load(bundle, cache)
    with pytest.raises(SourceError, match=r"unknown revision 'nope' \(tags: 2.0.5\)"):
        source.load(bundle, cache, rev="nope")
    assert source.load(bundle, cache, rev="2.0.5").version == "2.0.5"


def test_missing_path(tmp_path: Path, cache: Cache) -> None:
    with pytest.raises(SourceError, match="no such file"):
        source.load(tmp_path / "nope.tar.gz", cache)


# --- supplied builds --------------------------------------------------------------------------------

def test_a_dynamically_linked_program_is_refused(tmp_path: Path) -> None:
    with pytest.raises(LdmatrixError, match="statically linked"):
        binary.install("1.2.2", Path(shutil.which("true") or "/bin/true"), Cache(tmp_path))


def test_not_elf_is_refused(tmp_path: Path) -> None:
    fake = tmp_path / "nix-ld"
    fake.write_text("#!/bin/sh\n")
    with pytest.raises(LdmatrixError, match="not an ELF"):
        binary.install("1.2.2", fake, Cache(tmp_path))


def test_missing_build(tmp_path: Path) -> None:
    with pytest.raises(LdmatrixError, match="not found"):
        binary.install("1.2.2", tmp_path / "nope", Cache(tmp_path))


# --- no nix-ld to be had -----------------------------------------------------------------------------

def test_a_label_nothing_can_serve_names_every_way_to_supply_one(cache: Cache) -> None:
    got = provide(["1.9.9"], Supply(), {}, cache, NullProgress())
    reason = got.missing["1.9.9"]
    assert "--nix-ld 1.9.9=/path/to/nix-ld" in reason and "nix build nixpkgs#nix-ld" in reason
    assert "src:" in reason and "--nix-ld-archives DIR" in reason
    assert not got.store_paths


def test_archives_serve_a_version_the_matrix_does_not_pin(tmp_path: Path, cache: Cache,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """--nix-ld-archives is honoured for every matrix: without nix_ld_sources the archive named for
    the version is used (its version read from the tree), not a skip recommending that very flag."""
    import importlib

    provide_mod = importlib.import_module("harness.nixld.provide")

    archives = tmp_path / "archives"
    archives.mkdir()
    tarball(rust_tree(tmp_path / "t", "2.0.9", "nix-ld-2.0.9"), archives / "nix-ld-2.0.9.tar.gz")
    built: list[tuple[str, str]] = []

    def fake_build(tree, label, tc, cache, progress):  # the build itself is tests/test_nixld_build.py's
        built.append((tree.version, label))
        return "store path", f"built from {tree.origin} ({tree.nar_hash})"

    monkeypatch.setattr(provide_mod, "_from_source", fake_build)
    monkeypatch.setattr(provide_mod, "toolchain", lambda cache, progress: None)
    got = provide(["2.0.9", "2.0.8"], Supply(archives=(archives,)), {}, cache, NullProgress())
    assert built == [("2.0.9", "2.0.9")] and "nix-ld-2.0.9.tar.gz" in got.origins["2.0.9"]
    reason = got.missing["2.0.8"]
    assert f"no archive for it in {archives}" in reason and "--nix-ld-archives" not in reason
    assert "--nix-ld 2.0.8=/path/to/nix-ld" in reason and "src:" in reason


# --- one clear line each, from the command line ------------------------------------------------------

def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    from harness import cli

    rc = cli.main(argv)
    err = capsys.readouterr().err
    return rc, [line for line in err.splitlines() if not line.startswith("[ldmatrix")]


@pytest.mark.parametrize("make, message", [
    (lambda tmp: tmp / "nope.tar.gz", "no such file or directory"),
    (lambda tmp: tarball(c_tree(tmp / "t"), tmp / "x.tar.gz").write_bytes(b"\x1f\x8b garbage") and tmp / "x.tar.gz",
     "not a readable archive"),
    (lambda tmp: tarball((tmp / "hello-1.0").mkdir() or tmp / "hello-1.0", tmp / "hello-1.0.tar.gz"),
     "not nix-ld source"),
])
def test_bad_sources_on_the_command_line_give_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str], make, message: str) -> None:
    monkeypatch.setenv("LDMATRIX_CACHE", str(tmp_path / "cache"))
    path = make(tmp_path)
    rc, lines = run_cli(["run", "matrices/seed.yaml", "--nix-ld", f"src:{path}"], capsys)
    assert rc == 2 and len(lines) == 1 and message in lines[0], lines


def test_a_damaged_archive_for_a_pinned_version_is_an_error_not_a_skip(tmp_path: Path, cache: Cache) -> None:
    from harness.nixld.pins import PinnedSource

    archives = tmp_path / "archives"
    archives.mkdir()
    tarball(c_tree(tmp_path / "t"), archives / "nix-ld-1.2.2.tar.gz")
    pin = PinnedSource("1.2.2", "https://example.invalid/1.2.2.tar.gz", "sha256-" + "A" * 43 + "=", "m.yaml:3")
    with pytest.raises(SourceError, match="does not match the pinned"):
        provide(["1.2.2"], Supply(archives=(archives,)), {"1.2.2": pin}, cache, NullProgress())
