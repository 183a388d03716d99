"""A bad matrix fails with one line naming file, line, key and the allowed values."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from harness import matrix
from harness.errors import MatrixError
from harness.model import Outcome, Strategy

REPO = Path(__file__).resolve().parent.parent

GOOD = """\
name: t
binaries:
  c-hello: {reproducer: hello, built_in: bullseye}
  c-envprint: {reproducer: envprint, built_in: bullseye}
  rust-spawn-env: {reproducer: spawn-env, built_in: bullseye, child: c-envprint}
axes:
  strategy: [none, patchelf, container, nix-ld]
  glibc: ["2.31", "2.36"]
  nix_ld: ["1.2.2", "2.0.6"]
expect:
  - when: {strategy: none}
    outcome: missing-interpreter
  - when: {binary: rust-spawn-env, strategy: nix-ld, nix_ld: "<2"}
    outcome: env-corrupted
    bug: https://example.org/bug
  - outcome: ok
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "m.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def error_of(tmp_path: Path, text: str) -> MatrixError:
    with pytest.raises(MatrixError) as info:
        matrix.load(write(tmp_path, text))
    message = str(info.value)
    assert "\n" not in message
    return info.value


def test_good_matrix_expands(tmp_path: Path) -> None:
    m = matrix.load(write(tmp_path, GOOD))
    ids = [c.id for c in m.cells]
    assert "rust-spawn-env.nix-ld-1.2.2.glibc-2.36" in ids
    assert "c-hello.container.glibc-2.31" in ids
    assert not any("container.glibc-2.36" in i for i in ids)  # container runs on the build suite's glibc
    assert len(ids) == len(set(ids)) == 3 * (2 * 2 + 1 + 2 * 2)


def test_first_matching_rule_wins_and_names_its_line(tmp_path: Path) -> None:
    m = matrix.load(write(tmp_path, GOOD))
    cells = {c.id: c for c in m.cells}
    bug = m.expectation(cells["rust-spawn-env.nix-ld-1.2.2.glibc-2.31"])
    assert bug.outcome is Outcome.ENV_CORRUPTED and bug.bug == "https://example.org/bug"
    assert bug.source.endswith("m.yaml:13")
    assert m.expectation(cells["rust-spawn-env.nix-ld-2.0.6.glibc-2.31"]).outcome is Outcome.OK
    assert m.expectation(cells["c-hello.none.glibc-2.36"]).outcome is Outcome.MISSING_INTERPRETER


def test_unknown_strategy_names_line_and_allowed(tmp_path: Path) -> None:
    err = error_of(tmp_path, GOOD.replace("[none, patchelf,", "[none, patchelff,"))
    assert err.line == 7 and err.key == "strategy"
    assert "patchelff" in str(err) and "LD_LIBRARY_PATH" in str(err) and "m.yaml:7" in str(err)


def test_unknown_top_level_key(tmp_path: Path) -> None:
    err = error_of(tmp_path, GOOD.replace("axes:", "axis: {}\naxes:"))
    assert err.key == "axis" and err.line == 6 and "expect" in (err.allowed or [])


def test_unknown_glibc(tmp_path: Path) -> None:
    err = error_of(tmp_path, GOOD.replace('"2.36"]', '"2.35"]'))
    assert err.line == 8 and "2.35" in str(err) and "2.43" in str(err)


def test_unquoted_version_keeps_its_text(tmp_path: Path) -> None:
    m = matrix.load(write(tmp_path, GOOD.replace('["2.31", "2.36"]', "[2.31, 2.36]")))
    assert {c.glibc for c in m.cells} == {"2.31", "2.36"}


def test_unknown_reproducer(tmp_path: Path) -> None:
    err = error_of(tmp_path, GOOD.replace("reproducer: hello", "reproducer: helo"))
    assert err.line == 3 and err.key == "reproducer" and "hello" in (err.allowed or [])


def test_unknown_outcome(tmp_path: Path) -> None:
    err = error_of(tmp_path, GOOD.replace("outcome: missing-interpreter", "outcome: missing-interp"))
    assert err.line == 12 and "missing-interpreter" in (err.allowed or [])


def test_rule_matching_no_cell(tmp_path: Path) -> None:
    text = GOOD.replace("  - outcome: ok\n", "  - outcome: ok\n  - when: {strategy: patchelf}\n    outcome: ok\n")
    err = error_of(tmp_path, text)
    assert err.line == 17 and "decides no cell" in str(err) and "expect[2] (line 16) decides" in str(err)


def test_cell_without_rule(tmp_path: Path) -> None:
    err = error_of(tmp_path, GOOD.replace("  - outcome: ok\n", ""))
    assert "no rule decides cell" in str(err)


def test_duplicate_binary(tmp_path: Path) -> None:
    text = GOOD.replace("  c-envprint:", "  c-hello: {reproducer: hello, built_in: trixie}\n  c-envprint:")
    err = error_of(tmp_path, text)
    assert err.line == 4 and "duplicate" in str(err)


def test_duplicate_axis_value(tmp_path: Path) -> None:
    err = error_of(tmp_path, GOOD.replace("[none, patchelf,", "[none, none, patchelf,"))
    assert "twice" in str(err) and err.line == 7


def test_unknown_key_in_when(tmp_path: Path) -> None:
    err = error_of(tmp_path, GOOD.replace("when: {strategy: none}", "when: {stratgy: none}"))
    assert err.key == "stratgy" and err.line == 11 and "strategy" in (err.allowed or [])


def test_launcher_needs_child(tmp_path: Path) -> None:
    err = error_of(tmp_path, GOOD.replace(", child: c-envprint}", "}"))
    assert "starts a child" in str(err)


def test_container_combines_with_nothing(tmp_path: Path) -> None:
    err = error_of(tmp_path, GOOD.replace("container,", "container+patchelf,"))
    assert "combines with nothing" in str(err)


def test_yaml_syntax_error_has_line(tmp_path: Path) -> None:
    err = error_of(tmp_path, GOOD.replace("glibc: [", "glibc: [[", 1))
    assert err.line is not None and err.key == "yaml"


def test_exclude_that_excludes_nothing(tmp_path: Path) -> None:
    err = error_of(tmp_path, GOOD.replace("expect:", "exclude:\n  - {binary: c-hello, glibc: '2.41'}\nexpect:"))
    assert err.key == "exclude" and err.line == 11 and "excludes no cell" in str(err)


def test_extra_nix_ld_joins_the_axis(tmp_path: Path) -> None:
    m = matrix.load(write(tmp_path, GOOD), extra_nix_ld=["1.2.3"])
    ids = {c.id for c in m.cells}
    assert "rust-spawn-env.nix-ld-1.2.3.glibc-2.31" in ids
    cell = next(c for c in m.cells if c.id == "rust-spawn-env.nix-ld-1.2.3.glibc-2.31")
    assert m.expectation(cell).outcome is Outcome.ENV_CORRUPTED


@pytest.mark.parametrize("name", ["seed.yaml", "glibc.yaml"])
def test_shipped_matrices_load(name: str) -> None:
    m = matrix.load(REPO / "matrices" / name)
    assert m.cells
    assert any(Strategy.CONTAINER in c.strategy for c in m.cells)


def test_seed_has_the_seed_facts() -> None:
    m = matrix.load(REPO / "matrices" / "seed.yaml")
    cells = {c.id: m.expectation(c).outcome for c in m.cells}
    assert cells["c-hello.none.glibc-2.36"] is Outcome.MISSING_INTERPRETER
    assert cells["c-hello.patchelf.glibc-2.36"] is Outcome.OK
    assert cells["c-needs-libcrypt.patchelf.glibc-2.36"] is Outcome.MISSING_LIBRARY
    assert cells["c-needs-libcrypt.patchelf+LD_LIBRARY_PATH.glibc-2.36"] is Outcome.OK
    assert cells["c-needs-glibc-2.38.patchelf.glibc-2.31"] is Outcome.GLIBC_TOO_OLD
    assert cells["c-needs-glibc-2.38.patchelf.glibc-2.41"] is Outcome.OK
    assert cells["rust-spawn-env.nix-ld-1.2.2.glibc-2.36.libs-default"] is Outcome.ENV_CORRUPTED
    assert cells["rust-spawn-inherit.nix-ld-1.2.2.glibc-2.36.libs-default"] is Outcome.ENV_CORRUPTED  # AT_EXECFN
    assert cells["rust-spawn-env.nix-ld+patchelf-1.2.2.glibc-2.36.libs-default"] is Outcome.OK
    # cargo-run: nothing damaged, but 1.x leaves nix-ld's directory appended to LD_LIBRARY_PATH
    assert cells["rust-spawn-env.nix-ld-1.2.2.glibc-2.36.cargo-run.libs-default"] is Outcome.ENV_CORRUPTED
    assert cells["rust-spawn-env.nix-ld-2.0.6.glibc-2.36.cargo-run.libs-default"] is Outcome.OK
    assert cells["rust-spawn-env.nix-ld-2.0.6.glibc-2.36.libs-default"] is Outcome.OK


SOURCES = """\
nix_ld_sources:
  "1.2.2": {url: "https://example.org/nix-ld-1.2.2.tar.gz", hash: "sha256-+z9t7BLugZO1WhyYEq6FI38TMh2EwfgfAv3RDFSjwtc="}
expect:"""


def test_nix_ld_sources_are_pinned_by_tree_hash(tmp_path: Path) -> None:
    m = matrix.load(write(tmp_path, GOOD.replace("expect:", SOURCES)))
    pin = m.nix_ld_sources["1.2.2"]
    assert pin.nar_hash.startswith("sha256-") and pin.where.endswith(":11")
    assert "nix-ld-1.2.2.tar.gz" in pin.archive_names()


@pytest.mark.parametrize("change, key, message", [
    (("sha256-+z9t7BLugZO1WhyYEq6FI38TMh2EwfgfAv3RDFSjwtc=", "deadbeef"), "hash", "NAR hash of the unpacked tree"),
    (("https://example.org/", "ftp://example.org/"), "url", "not an http(s) URL"),
    (('"1.2.2": {', '"latest": {'), "latest", "not a nix-ld version"),
    ((', hash: "sha256-+z9t7BLugZO1WhyYEq6FI38TMh2EwfgfAv3RDFSjwtc="', ""), "nix_ld_sources.1.2.2.hash",
     "is required"),
])
def test_bad_nix_ld_sources(tmp_path: Path, change: tuple[str, str], key: str, message: str) -> None:
    err = error_of(tmp_path, GOOD.replace("expect:", SOURCES.replace(*change)))
    assert err.key == key and message in str(err)


def test_nix_ld_axis_labels_must_be_versions(tmp_path: Path) -> None:
    err = error_of(tmp_path, GOOD.replace('nix_ld: ["1.2.2", "2.0.6"]', 'nix_ld: ["1.2.2", "latest"]'))
    assert err.key == "nix_ld" and "is not a version" in str(err)


def test_a_known_bug_is_fixed_into_what_the_later_rules_expect(tmp_path: Path) -> None:
    text = GOOD.replace("  - outcome: ok", "  - when: {binary: rust-spawn-env}\n    outcome: crash\n  - outcome: ok")
    m = matrix.load(write(tmp_path, text))
    cell = next(c for c in m.cells if c.id == "rust-spawn-env.nix-ld-1.2.2.glibc-2.36")
    expectation = m.expectation(cell)
    assert (expectation.outcome, expectation.fixed_outcome) == (Outcome.ENV_CORRUPTED, Outcome.CRASH)


def test_seed_nix_ld_facts_as_observed() -> None:
    m = matrix.load(REPO / "matrices" / "seed.yaml")
    cells = {c.id: m.expectation(c) for c in m.cells}
    crash = cells["c-needs-libcrypt.nix-ld-2.0.5.glibc-2.31.libs-default"]
    assert (crash.outcome, crash.fixed_outcome) == (Outcome.CRASH, Outcome.MISSING_LIBRARY)
    assert cells["c-hello.nix-ld-2.0.5.glibc-2.36.libs-default"].outcome is Outcome.OK
    assert cells["c-hello.nix-ld-1.2.2.glibc-2.43.libs-default"].outcome is Outcome.OK
    assert set(m.nix_ld_sources) == {"1.2.2", "1.2.3", "2.0.5", "2.0.6"}
