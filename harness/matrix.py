"""Load a matrix YAML, validate it against what ldmatrix knows, expand its axes into Cells.

Every error names the file, the line, the key and the allowed values.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from functools import cached_property
from pathlib import Path
from typing import Any

from harness import yamlsource
from harness.artifacts import spec as artifact_spec
from harness.errors import MatrixError, did_you_mean
from harness.model import (
    ALL_NAMINGS,
    Cell,
    Expectation,
    Launch,
    NameForm,
    NameLength,
    Naming,
    Outcome,
    OutputCheck,
    Strategy,
)
from harness.nixld.labels import EXAMPLE as LABEL_EXAMPLE
from harness.nixld.labels import is_label, label_version
from harness.nixld.nar import is_sri
from harness.nixld.pins import PinnedSource
from harness.results.outdir import MAX_ID_BYTES
from harness.root.environments import PROFILES
from harness.root.release import CURRENT, RELEASES
from harness.rule_index import RuleIndex, matches_all
from harness.runners import RUNNERS
from harness.yamlsource import LocatedList, LocatedMap, describe_value

TOP_KEYS = ("name", "description", "runner", "timeout", "binaries", "libraries", "axes", "nix_ld_sources", "exclude",
            "expect", "differs")
SOURCE_KEYS = ("url", "hash")
BINARY_KEYS = ("reproducer", "built_in", "child", "nix_built", "note")  # artifacts: harness/artifacts/spec.py
NIX_BUILT_KEYS = ("glibc", "libs")
NIX_LD_TEST_KEYS = ("nix_ld_test", "source", "built_in", "child", "expect", "note")  # nix-ld's own tests' fixtures
LIBRARY_KEYS = {"nix_ld_test": ("nix_ld_test", "source", "built_in", "note"), "dir": ("dir", "note")}
SOURCE_KINDS = ("reproducer", *(k.value for k in artifact_spec.Kind), "nix_ld_test")
AXIS_KEYS = ("binary", "strategy", "glibc", "nix_ld", "env", "launch", "libs", "nixos", "name")
MATCH_KEYS = (*AXIS_KEYS, "uses", "reproducer", "built_in")
RULE_KEYS = ("when", "outcome", "bug", "fixed_outcome", "note")
DIFFERS_KEYS = ("when", "between", "reason", "note")
BUILD_KINDS = ("debian", "nixpkgs")  # Debian's glibc builds, a nixpkgs pin's own
SIDES = (*BUILD_KINDS, *RUNNERS)  # what a difference is between (``differs``' ``between``)
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")  # a matrix's name is a directory of --out
BINARY_NAME = re.compile(r"[a-z0-9][a-z0-9.\-]*")
MAX_BINARY_NAME = 64  # it is part of every cell id, a folder name (at most 255 bytes)
MAX_TIMEOUT = 3600.0  # seconds per cell
MAX_CELLS = 100_000
NO_LIBRARIES, DEFAULT_LIBRARIES = "none", "default"
LIBRARY_STRATEGIES = frozenset({Strategy.PATCHELF, Strategy.LD_LIBRARY_PATH, Strategy.NIX_LD})
_CMP = re.compile(r"^(<=|>=|<|>|==|!=)\s*([0-9]+(?:\.[0-9]+)*)$")
_LOOKS_LIKE_CMP = re.compile(r"^\s*[<>=!]")
CMP_FORM = "an operator (<, <=, >, >=, ==, !=) and a version of numbers joined by '.', e.g. <2.38"
NO_SUITE = "?"  # a container cell's glibc when its program names no suite to run in (an error unless excluded)


@dataclass(frozen=True)
class NixBuilt:
    """A program Nix built against a glibc build of its own (a user profile from a newer channel): its
    interpreter and RUNPATH in that glibc's store paths and the listed libraries', whatever the cell's
    system glibc is."""

    glibc: str  # a store glibc build ("2.43")
    libs: tuple[str, ...] = ()  # nixpkgs attributes its RUNPATH names (their store paths, for that glibc)


@dataclass(frozen=True)
class NixLdTest:
    """A fixture of nix-ld's own tests (harness/nixld/suite.py), compiled from a nix-ld version's source."""

    test: str  # "dt-needed"; "libtest" for its library
    source: str  # the nix-ld version whose tests/*.c it is ("2.0.6")
    built_in: str  # the Debian suite whose build root compiles it


@dataclass(frozen=True)
class OwnLibrary:
    """A library directory of ours (``libraries:``): libtest built from nix-ld's source, or a directory.
    A cell's ``libs`` may name it: RUNPATH and LD_LIBRARY_PATH name it as they name packages; for
    nix-ld it is on NIX_LD_LIBRARY_PATH (as a shell that sets it, as nix-ld's tests do), not in
    programs.nix-ld.libraries."""

    name: str
    nix_ld_test: NixLdTest | None = None
    directory: Path | None = None


@dataclass(frozen=True)
class BinarySpec:
    name: str
    reproducer: str | None  # None: a real program from a wheel, package, URL or file (``artifact``)
    built_in: str | None  # Debian suite of the build root (an artifact's: the root container runs it in)
    # The binary it starts. A launcher (spawn-env) stands for a Nix-built program and the strategy is
    # about its child; a prebuilt parent (spawn-child, a wheel's node) is what the strategy is about,
    # and its child is another prebuilt program (under the same fix) or a Nix-built one (nix_built).
    child: str | None = None
    artifact: artifact_spec.Artifact | None = None
    run: tuple[str, ...] = ()  # an artifact's arguments
    check: OutputCheck | None = None  # an artifact's success (a reproducer prints its own check)
    nix_built: NixBuilt | None = None  # a Nix-built program (a prebuilt parent's child)
    prebuilt_parent: bool = False  # it starts ``child`` and is itself the program under test
    script: str | None = None  # harness/data file a real parent runs to start its child (node: spawn_child.js)
    nix_ld_test: NixLdTest | None = None  # a fixture of nix-ld's own tests; its child it starts by itself

    @property
    def passes_child(self) -> bool:
        """Its child is on its command line (a fixture of nix-ld's tests starts OUT_DIR/dt-needed itself)."""
        return self.nix_ld_test is None

    @property
    def key(self) -> tuple[str, str]:
        """Where the run's binaries hold it: (reproducer, suite), or ("artifact", its id)."""
        if self.artifact is not None:
            return ("artifact", self.artifact.id)
        if self.nix_ld_test is not None:
            return ("nix-ld-test", f"{self.nix_ld_test.source}:{self.nix_ld_test.test}:{self.nix_ld_test.built_in}")
        return (str(self.reproducer), str(self.built_in))


@dataclass(frozen=True)
class Matcher:
    """One key of a ``when``/``exclude`` entry: any-of values, ``not``, or version comparisons."""

    key: str
    values: tuple[str, ...] = ()
    negate: bool = False
    comparisons: tuple[tuple[str, tuple[int, ...]], ...] = ()

    def matches(self, value: str | None, facts: Mapping[str, Any]) -> bool:
        if self.key == "uses":
            atoms = {s.value for s in facts["strategy_atoms"]}
            hit = any(v in atoms for v in self.values)
        elif self.key == "glibc" and not self.comparisons and facts.get("nixpkgs"):
            # A plain glibc value names Debian's build of that version (the axis's values); a
            # nixpkgs pin's build is another build, matched only by comparisons (``<2.38``).
            hit = False
        elif self.comparisons:
            parse = label_version if self.key == "nix_ld" else parse_version
            version = parse(value) if value is not None else None
            hit = version is not None and all(_compare(version, op, ref) for op, ref in self.comparisons)
        else:
            hit = value in self.values
        return hit != self.negate


@dataclass(frozen=True)
class Rule:
    matchers: tuple[Matcher, ...]
    outcome: Outcome
    source: str
    bug: str | None = None
    fixed_outcome: Outcome | None = None  # None: what the later rules expect of the cell
    note: str | None = None

    def matches(self, facts: Mapping[str, Any]) -> bool:
        return matches_all(self.matchers, facts)


@dataclass(frozen=True)
class Difference:
    """A known difference between runners or builds (``differs``): where, between what, and why."""

    matchers: tuple[Matcher, ...]
    between: frozenset[str]  # two of SIDES
    reason: str
    source: str  # "matrices/seed.yaml:140"

    def names(self, sides_a: frozenset[str], sides_b: frozenset[str], facts: Iterable[Mapping[str, Any]]) -> bool:
        """Whether it names a difference between a cell of ``sides_a`` and one of ``sides_b`` (each its
        build kind and runner), ``when`` holding for one of the two cells (``facts``)."""
        first, second = sorted(self.between)
        crosses = (first in sides_a and second in sides_b) or (second in sides_a and first in sides_b)
        return crosses and any(matches_all(self.matchers, f) for f in facts)


@dataclass(frozen=True)
class Matrix:
    path: Path
    name: str
    description: str
    runner: str
    timeout: float
    binaries: Mapping[str, BinarySpec]
    cells: tuple[Cell, ...]
    rules: tuple[Rule, ...]
    nix_ld_sources: Mapping[str, PinnedSource] = dataclass_field(default_factory=dict)
    library_sets: Mapping[str, tuple[str, ...]] = dataclass_field(default_factory=dict)  # libs name -> attributes
    own_libraries: Mapping[str, OwnLibrary] = dataclass_field(default_factory=dict)  # ``libraries:``
    nixos: tuple[str, ...] = (CURRENT,)  # the NixOS releases (harness/root/release.py) Debian's columns run as
    differs: tuple[Difference, ...] = ()  # the known differences between runners or builds (ldmatrix parity)

    def release(self, cell: Cell) -> str | None:
        """The NixOS release of a cell on Debian's glibc builds; None for a pin's column (its own)."""
        return None if cell.nixpkgs else (cell.nixos or self.nixos[0])

    def libs_label(self, cell: Cell) -> str | None:
        """What a NixOS user of the cell's release writes for its library set (``mkForce []``,
        ``default+[jq]``, ``[jq]``), for a cell whose strategy takes one; None otherwise (or on a pin)."""
        if not set(cell.strategy) & LIBRARY_STRATEGIES or cell.nixpkgs:
            return None
        release = RELEASES[self.release(cell) or CURRENT]
        attrs = tuple(self.library_sets.get(cell.libs, ()))
        ours = [a for a in attrs if a in self.own_libraries]
        if ours and Strategy.NIX_LD in cell.strategy:  # on NIX_LD_LIBRARY_PATH, not in programs.nix-ld.libraries
            rest = tuple(a for a in attrs if a not in ours)
            label = release.libs_label("+".join(rest) or NO_LIBRARIES, rest, True)
            return f"{label} NIX_LD_LIBRARY_PATH=[{' '.join(ours)}]"
        return release.libs_label(cell.libs, attrs, Strategy.NIX_LD in cell.strategy)

    @cached_property
    def rule_index(self) -> RuleIndex:
        return RuleIndex([rule.matchers for rule in self.rules])

    def expectation(self, cell: Cell) -> Expectation:
        """The first rule that matches decides. A known bug's rule, unless it says its fixed outcome,
        leaves that to the rules after it: what the cell is expected to give once the bug is gone."""
        facts = cell_facts(cell, self.binaries, self.nixos[0])
        matching = (self.rules[i] for i in self.rule_index.matching(facts))
        rule = next(matching, None)
        if rule is None:
            raise AssertionError(f"validated matrix has no rule for {cell.id}")  # load() rules this out
        fixed = rule.fixed_outcome
        if rule.bug and fixed is None:
            fixed = next((later.outcome for later in matching if not later.bug), Outcome.OK)
        return Expectation(rule.outcome, rule.source, rule.bug, fixed or Outcome.OK)

    def select(self, pattern: str | None) -> tuple[Cell, ...]:
        """Cells whose id contains every space-separated word of ``pattern`` (``-k``)."""
        return tuple(c for c in self.cells if selects(pattern, c.id))


def selects(pattern: str | None, cell_id: str) -> bool:
    """``-k``: every space-separated word of ``pattern`` is in the cell's id (no pattern: every cell)."""
    return all(word in cell_id for word in (pattern or "").split())


def parse_version(text: str) -> tuple[int, ...] | None:
    parts = text.split(".")
    return tuple(int(p) for p in parts) if all(p.isdigit() for p in parts) else None


def _version_of(text: str) -> tuple[int, ...]:
    """A version a comparison names (``_CMP`` has checked its form)."""
    version = parse_version(text)
    assert version is not None, text
    return version


def _compare(version: tuple[int, ...], op: str, ref: tuple[int, ...]) -> bool:
    return {
        "<": version < ref, "<=": version <= ref, ">": version > ref,
        ">=": version >= ref, "==": version == ref, "!=": version != ref,
    }[op]


def parse_strategy(text: str) -> tuple[Strategy, ...] | str:
    """``patchelf+LD_LIBRARY_PATH`` -> the strategies, or a message saying what is wrong."""
    atoms = [a.strip() for a in str(text).split("+")]
    known = {s.value: s for s in Strategy}
    unknown = [a for a in atoms if a not in known]
    if unknown:
        return f"unknown strategy {unknown[0]!r}{did_you_mean(unknown[0], known)}"
    strategies = tuple(known[a] for a in atoms)
    if len(set(strategies)) != len(strategies):
        return "a strategy appears twice"
    if Strategy.CONTAINER in strategies and len(strategies) > 1:
        return "container runs the binary in its own FHS root and combines with nothing"
    if Strategy.NONE in strategies and len(strategies) > 1:
        return "none combines with nothing"
    return strategies


def cell_facts(cell: Cell, binaries: Mapping[str, BinarySpec], nixos: str = CURRENT) -> dict[str, Any]:
    """What rules match a cell by; ``nixos``: the matrix's release where the cell names none."""
    spec = binaries[cell.binary]
    return {
        "nixos": cell.nixos or (None if cell.nixpkgs else nixos),
        "binary": cell.binary,
        "strategy": cell.strategy_name,
        "strategy_atoms": cell.strategy,
        "glibc": cell.glibc,
        "nixpkgs": cell.nixpkgs,
        "nix_ld": cell.nix_ld,
        "env": cell.env,
        "launch": cell.launch.value,
        "libs": cell.libs,
        "name": cell.naming.value,
        "reproducer": spec.reproducer,
        "built_in": spec.built_in,
    }


BASH_STYLE = {NameForm.ABSOLUTE: Launch.BASH_LOGIN, NameForm.PATH: Launch.BASH_PATH,
              NameForm.DOT_SLASH: Launch.DOT_SLASH}


def _naming(launch: Launch, naming: Naming, real: bool) -> tuple[Launch, str | None]:
    """A cell's launch style and ``name`` (None: the style's own). bash names the program itself: a
    bash-path or dot-slash style keeps its own form, and bash-login with ./NAME is the dot-slash style
    (through PATH bash-path). A real program keeps its real file name."""
    if launch.uses_bash:
        form = launch.naming or naming.form
        launch, naming = BASH_STYLE[form], Naming(form, naming.length)
    if real:
        naming = Naming(naming.form)
    implied = launch.naming or NameForm.ABSOLUTE
    return launch, None if naming == Naming(implied, NameLength.REAL) else naming.value


def subject(binaries: Mapping[str, BinarySpec], name: str) -> BinarySpec:
    """The binary a cell's strategy is about: the cell's binary, or for a launcher its child."""
    spec = binaries[name]
    return binaries[spec.child] if spec.child and not spec.prebuilt_parent else spec


class _Loader:
    def __init__(self, path: Path, display: str, glibc_suites: Mapping[str, str], reproducers: Mapping[str, Any],
                 nixpkgs: Mapping[str, tuple[str, str | None]] | None = None,
                 suite_glibc: Mapping[str, str] | None = None):
        self.path, self.file = path, display
        self.nixpkgs = dict(nixpkgs or {})  # pin -> (its glibc version, its own nix-ld): more glibc builds
        self.glibc_suites = glibc_suites  # the store glibc builds: "2.40" -> "bookworm" (its packages' suite)
        # each suite's own glibc (a built_in suite's, the container's): "bookworm" -> "2.36"
        self.suite_glibc = dict(suite_glibc) if suite_glibc is not None else \
            {suite: glibc for glibc, suite in glibc_suites.items()}
        self.reproducers = reproducers
        self.library_sets: dict[str, tuple[str, ...]] = {NO_LIBRARIES: ()}  # libs axis name -> attributes
        self._allowed: dict[str, frozenset[str] | None] = {}  # what a when/exclude key may name, once per key
        self.own: dict[str, OwnLibrary] = {}  # ``libraries:``, our own library directories

    def error(self, where: Any, key: str, message: str, allowed: Iterable[str] | None = None, line: int | None = None):
        if line is None:
            line = where.line_of(key) if hasattr(where, "line_of") else getattr(where, "line", None)
        return MatrixError(self.file, line, key, message, list(allowed) if allowed is not None else None)

    def unknown(self, where: Any, key: str, what: str, value: Any, allowed: Iterable[str],
                line: int | None = None) -> MatrixError:
        """``unknown strategy 'patchelff'; did you mean 'patchelf'? (allowed: ...)``"""
        allowed = list(allowed)
        return self.error(where, key, f"{what} {str(value)!r}{did_you_mean(value, allowed)}", allowed, line=line)

    def check_keys(self, mapping: Any, allowed: tuple[str, ...], context: str, line: int | None = None) -> None:
        if not isinstance(mapping, dict):
            raise MatrixError(self.file, getattr(mapping, "line", line), context,
                              f"must be a mapping, not {describe_value(mapping)}")
        for key in mapping:
            if key not in allowed:
                raise self.unknown(mapping, str(key), f"unknown key in {context}:", key, allowed)

    def as_list(self, parent: Any, key: str) -> list[Any]:
        value = parent[key]
        if isinstance(value, list):
            return value
        if isinstance(value, dict):
            raise self.error(parent, key, "must be a value or a list of values")
        return [value]

    # --- sections -------------------------------------------------------------------------
    def binaries(self, doc: Any) -> dict[str, BinarySpec]:
        if "binaries" not in doc:
            raise MatrixError(self.file, doc.line, "binaries", "is required")
        section = doc["binaries"]
        if not isinstance(section, LocatedMap):
            raise MatrixError(self.file, getattr(section, "line", doc.line_of("binaries")), "binaries",
                              f"must be a mapping, not {describe_value(section)}")
        specs: dict[str, BinarySpec] = {}
        for name, entry in section.items():
            if not BINARY_NAME.fullmatch(str(name)):
                raise self.error(section, str(name), "a binary name is lower case letters, digits, '.' and '-'")
            if len(str(name)) > MAX_BINARY_NAME:
                raise self.error(section, str(name), f"a binary name is at most {MAX_BINARY_NAME} characters "
                                 f"(this one has {len(str(name))}): it is part of every cell's folder name")
            if isinstance(entry, dict) and artifact_spec.kind_of(entry):
                parsed = artifact_spec.parse(entry, str(name), self.file, self.path.resolve().parent, self.suite_glibc)
                # a real parent's verdict is its script's check line, about its child
                specs[str(name)] = BinarySpec(str(name), None, parsed.built_in, parsed.child, parsed.artifact,
                                              parsed.run, None if parsed.child else parsed.check,
                                              prebuilt_parent=parsed.child is not None, script=parsed.script)
                continue
            if isinstance(entry, dict) and "nix_ld_test" in entry:
                specs[str(name)] = self.nix_ld_test_binary(entry, str(name))
                continue
            if isinstance(entry, LocatedMap) and "reproducer" not in entry:
                raise MatrixError(self.file, entry.line, f"binaries.{name}",
                                  "say where it comes from: one of reproducer (with built_in), wheel, deb, url "
                                  "(with sha256) or file", list(SOURCE_KINDS))
            self.check_keys(entry, BINARY_KEYS, f"binaries.{name}", line=section.line_of(name))
            for required in ("reproducer", "built_in"):
                if required not in entry:
                    raise MatrixError(self.file, entry.line, f"binaries.{name}.{required}", "is required")
            reproducer = str(entry["reproducer"])
            if reproducer not in self.reproducers:
                raise self.unknown(entry, "reproducer", "unknown reproducer", reproducer, sorted(self.reproducers))
            suite = str(entry["built_in"])
            if suite not in self.suite_glibc:
                raise self.unknown(entry, "built_in", "unknown Debian suite", suite, sorted(self.suite_glibc))
            child = entry.get("child")
            needs_child = bool(getattr(self.reproducers[reproducer], "needs_child", False))
            if needs_child and child is None:
                raise MatrixError(self.file, entry.line, f"binaries.{name}.child",
                                  f"reproducer {reproducer!r} starts a child: name one of the binaries")
            if child is not None and not needs_child:
                raise self.error(entry, "child", f"reproducer {reproducer!r} starts no child")
            nix_built = self.nix_built(entry, str(name)) if "nix_built" in entry else None
            specs[str(name)] = BinarySpec(str(name), reproducer, suite, None if child is None else str(child),
                                          nix_built=nix_built,
                                          prebuilt_parent=bool(getattr(self.reproducers[reproducer],
                                                                       "prebuilt_parent", False)))
        for name, spec in specs.items():
            if spec.child is not None and spec.child not in specs:
                raise self.unknown(section[name], "child", "unknown binary", spec.child, sorted(specs))
            if spec.child is not None and specs[spec.child].child is not None:
                raise self.error(section[name], "child", "a child cannot itself be a launcher")
            if spec.child is not None and specs[spec.child].nix_built and not spec.prebuilt_parent:
                raise self.error(section[name], "child", f"{spec.child} is Nix-built: a launcher (itself standing "
                                 "for a Nix-built program) starts a prebuilt one; a prebuilt parent starts either")
        return specs

    def nix_ld_test(self, entry: Any, key: str, tests: Iterable[str]) -> NixLdTest:
        """``nix_ld_test: dt-needed, source: "2.0.6", built_in: bullseye``."""
        test, tests = str(entry["nix_ld_test"]), list(tests)
        if test not in tests:
            raise self.unknown(entry, f"{key}.nix_ld_test", "unknown test fixture of nix-ld", test, tests,
                               line=entry.line_of("nix_ld_test"))
        for required in ("source", "built_in"):
            if required not in entry:
                raise MatrixError(self.file, entry.line, f"{key}.{required}", "is required: "
                                  + ("the nix-ld version whose tests/*.c it is (nix_ld_sources)" if required == "source"
                                     else "the Debian suite whose build root compiles it"))
        source, suite = str(entry["source"]), str(entry["built_in"])
        if not is_label(source):
            raise self.error(entry, f"{key}.source", f"{source!r} is not a nix-ld version ({LABEL_EXAMPLE})",
                             line=entry.line_of("source"))
        if suite not in self.suite_glibc:
            raise self.unknown(entry, f"{key}.built_in", "unknown Debian suite", suite, sorted(self.suite_glibc),
                               line=entry.line_of("built_in"))
        return NixLdTest(test, source, suite)

    def nix_ld_test_binary(self, entry: Any, name: str) -> BinarySpec:
        from harness.nixld.suite import TESTS

        self.check_keys(entry, NIX_LD_TEST_KEYS, f"binaries.{name}")
        test = self.nix_ld_test(entry, f"binaries.{name}", TESTS)
        child = entry.get("child")
        check = artifact_spec.parse_expect(entry, name, self.file)
        return BinarySpec(name, None, test.built_in, None if child is None else str(child), check=check,
                          prebuilt_parent=child is not None, nix_ld_test=test)

    def own_libraries(self, doc: Any) -> dict[str, OwnLibrary]:
        """``libraries: {libtest: {nix_ld_test: libtest, source: "2.0.6", built_in: bullseye}, mine: {dir: ./lib}}``."""
        from harness.nixld.suite import LIBRARY
        from harness.provision.libraries import CONFIG as LIBRARIES

        if "libraries" not in doc:
            return {}
        section = doc["libraries"]
        if not isinstance(section, LocatedMap):
            raise self.error(doc, "libraries", "must map names to {nix_ld_test: libtest, ...} or {dir: PATH}")
        out = {}
        for name, entry in section.items():
            key = f"libraries.{name}"
            if str(name) in (NO_LIBRARIES, DEFAULT_LIBRARIES, *LIBRARIES.attributes):
                raise self.error(section, str(name), f"{name!r} is a library set already (none, default, a nixpkgs "
                                 "attribute): give yours another name")
            kinds = [k for k in LIBRARY_KEYS if isinstance(entry, LocatedMap) and k in entry]
            if len(kinds) != 1:
                raise MatrixError(self.file, getattr(entry, "line", section.line_of(name)), key,
                                  "say what it is, once: nix_ld_test (with source, built_in) or dir",
                                  list(LIBRARY_KEYS))
            self.check_keys(entry, LIBRARY_KEYS[kinds[0]], key)
            if kinds[0] == "dir":
                directory = (self.path.resolve().parent / str(entry["dir"])).resolve()
                if not directory.is_dir():
                    raise self.error(entry, f"{key}.dir", f"{entry['dir']} ({directory}) is not a directory",
                                     line=entry.line_of("dir"))
                out[str(name)] = OwnLibrary(str(name), directory=directory)
            else:
                out[str(name)] = OwnLibrary(str(name), nix_ld_test=self.nix_ld_test(entry, key, (LIBRARY,)))
        self.own = out
        return out

    def nix_built(self, entry: Any, name: str) -> NixBuilt:
        """``nix_built: {glibc: "2.43", libs: [stdenv.cc.cc]}``: a program Nix built against that glibc."""
        from harness.provision.libraries import CONFIG as LIBRARIES

        section, key = entry["nix_built"], f"binaries.{name}.nix_built"
        self.check_keys(section, NIX_BUILT_KEYS, key, line=entry.line_of("nix_built"))
        if "glibc" not in section:
            raise MatrixError(self.file, section.line, f"{key}.glibc", "is required: the glibc build Nix built it "
                              "against", sorted(self.glibc_suites, key=_version_of))
        glibc = str(section["glibc"])
        if glibc not in self.glibc_suites:
            raise self.unknown(section, f"{key}.glibc", "unknown glibc", glibc,
                               sorted(self.glibc_suites, key=_version_of), line=section.line_of("glibc"))
        libs = [str(a) for a in self.as_list(section, "libs")] if "libs" in section else []
        for attr in libs:
            if attr not in LIBRARIES.attributes:
                raise self.unknown(section, f"{key}.libs", "unknown library", attr, sorted(LIBRARIES.attributes),
                                   line=section.line_of("libs"))
        return NixBuilt(glibc, tuple(libs))

    def axes(self, doc: Any, binaries: Mapping[str, BinarySpec]) -> dict[str, list[Any]]:
        section = doc.get("axes")
        if section is None:
            raise MatrixError(self.file, doc.line, "axes", "is required", list(AXIS_KEYS))
        self.check_keys(section, AXIS_KEYS, "axes", line=doc.line_of("axes"))
        axes: dict[str, list[Any]] = {}
        checks = {
            "binary": (sorted(binaries), "unknown binary"),
            "glibc": (sorted(self.glibc_suites, key=_version_of), "unknown glibc"),
            "env": (sorted(PROFILES), "unknown environment profile"),
            "launch": ([style.value for style in Launch], "unknown launch style"),
            "nixos": (list(RELEASES), "unknown NixOS release"),
            "name": ([n.value for n in ALL_NAMINGS], "unknown way of naming the program"),
        }
        for key in AXIS_KEYS:
            if key not in section:
                continue
            values = self.as_list(section, key)
            if not values:
                raise self.error(section, key, "must not be empty")
            seen: set[str] = set()
            parsed: list[Any] = []
            for i, raw in enumerate(values):
                line = values.line_of(i) if hasattr(values, "line_of") else section.line_of(key)
                if key == "libs":
                    raw = self.library_set(section, raw, line)
                text = str(raw)
                if text in seen:
                    raise self.error(section, key, f"{text!r} is listed twice", line=line)
                seen.add(text)
                if key == "strategy":
                    strategies = parse_strategy(text)
                    if isinstance(strategies, str):
                        raise self.error(section, key, strategies, [s.value for s in Strategy], line=line)
                    parsed.append(strategies)
                elif key == "libs":
                    parsed.append(text)  # checked and named by library_set above
                elif key == "nix_ld":
                    if not is_label(text):
                        raise self.error(section, key, f"nix-ld label {text!r} is not a version ({LABEL_EXAMPLE})",
                                         line=line)
                    parsed.append(text)
                else:
                    allowed, what = checks[key]
                    if text not in allowed:
                        raise self.unknown(section, key, what, text, allowed, line=line)
                    parsed.append(text)
            axes[key] = parsed
        for required in ("strategy", "glibc"):
            if required not in axes:
                raise MatrixError(self.file, section.line, f"axes.{required}", "is required")
        if any(Strategy.NIX_LD in s for s in axes["strategy"]) and "nix_ld" not in axes:
            raise MatrixError(self.file, section.line, "axes.nix_ld",
                              "a nix-ld strategy needs the nix-ld versions to test, e.g. nix_ld: ['1.2.2', '2.0.6']")
        for name in axes.get("binary", ()):
            if binaries[name].nix_built is not None:
                raise self.error(section, "binary", f"{name} is Nix-built: it runs as a prebuilt parent's child "
                                 "(binaries.X.child), not on its own")
        axes.setdefault("binary", [name for name, spec in binaries.items() if spec.nix_built is None])
        axes.setdefault("env", ["nixos-login"])
        axes.setdefault("launch", [Launch.DIRECT.value])
        axes.setdefault("libs", [NO_LIBRARIES])
        axes.setdefault("nixos", [CURRENT])
        axes.setdefault("name", [NameForm.ABSOLUTE.value])
        return axes

    def library_set(self, section: Any, raw: Any, line: int) -> str:
        """A ``libs`` value: ``none``, ``default`` (programs.nix-ld's baseLibraries) or a list of
        nixpkgs attributes (a YAML list, or names joined by '+'); its name, registered once."""
        from harness.provision.libraries import CONFIG as LIBRARIES

        attrs = [str(a) for a in raw] if isinstance(raw, list) else str(raw).split("+")
        if not attrs or any(not a for a in attrs):
            raise self.error(section, "libs", "an empty library list", line=line)
        name = "+".join(attrs)
        if name in (NO_LIBRARIES, DEFAULT_LIBRARIES):
            self.library_sets[name] = () if name == NO_LIBRARIES else LIBRARIES.default
            return name
        for attr in attrs:
            if attr not in LIBRARIES.attributes and attr not in self.own:
                raise self.unknown(section, "libs", "unknown library", attr,
                                   [NO_LIBRARIES, DEFAULT_LIBRARIES, *sorted(self.own), *sorted(LIBRARIES.attributes)],
                                   line=line)
        self.library_sets[name] = tuple(attrs)
        return name

    def matchers(self, entry: Any, context: str, binaries: Mapping[str, BinarySpec],
                 axes: Mapping[str, list[Any]], line: int | None = None) -> tuple[Matcher, ...]:
        self.check_keys(entry, MATCH_KEYS, context, line=line)
        out = []
        for key in entry:
            raw = entry[key]
            negate = False
            if isinstance(raw, dict):
                self.check_keys(raw, ("not",), f"{context}.{key}")
                if "not" not in raw:
                    raise self.error(entry, key, "a mapping here is {not: [values]}")
                negate, raw = True, raw["not"]
            if isinstance(raw, list) and not raw:
                raise self.error(entry, key, "an empty list matches nothing: name at least one value")
            if isinstance(raw, list) and any(isinstance(v, (list, dict)) for v in raw):
                raise self.error(entry, key, "a list of plain values, not of lists or mappings")
            values = [str(v) for v in (raw if isinstance(raw, list) else [raw])]
            comparisons = [(_CMP.match(v)) for v in values]
            if key in ("glibc", "nix_ld"):
                for v, m in zip(values, comparisons):
                    if m is None and _LOOKS_LIKE_CMP.match(v):
                        raise self.error(entry, key, f"{v!r} is not a version comparison: {CMP_FORM}")
            if key in ("glibc", "nix_ld") and any(comparisons):
                if not all(comparisons):
                    raise self.error(entry, key, "mix comparisons (<2.38) and plain values in separate rules")
                cmps = tuple((m.group(1), _version_of(m.group(2))) for m in comparisons if m)
                out.append(Matcher(key, negate=negate, comparisons=cmps))
                continue
            if key == "nix_ld":
                for v in values:
                    if not is_label(v):
                        raise self.error(entry, key, f"nix-ld label {v!r} is not a version ({LABEL_EXAMPLE})")
            if key not in self._allowed:
                allowed = self.allowed_values(key, binaries, axes)
                self._allowed[key] = None if allowed is None else frozenset(allowed)
            known = self._allowed[key]
            if known is not None:
                for v in values:
                    if v not in known:
                        what = "strategy not in axes.strategy:" if key == "strategy" else "unknown value"
                        raise self.unknown(entry, key, what, v, self.allowed_values(key, binaries, axes) or ())
            out.append(Matcher(key, tuple(values), negate))
        return tuple(out)

    def allowed_values(self, key: str, binaries: Mapping[str, BinarySpec],
                       axes: Mapping[str, list[Any]]) -> list[str] | None:
        """What a ``when``/``exclude`` key may name; None: not checked here (nix_ld labels)."""
        return {
            "binary": sorted(binaries),
            # matched by its written name, so a rule names a strategy as the axis writes it
            "strategy": ["+".join(s.value for s in strategy) for strategy in axes["strategy"]],
            "glibc": sorted(self.glibc_suites, key=_version_of),
            "env": sorted(PROFILES),
            "launch": [style.value for style in Launch],
            "libs": axes["libs"],
            "nixos": axes["nixos"],
            "name": [n.value for n in ALL_NAMINGS],
            "uses": [s.value for s in Strategy],
            "reproducer": sorted(self.reproducers),
            "built_in": sorted(self.suite_glibc),
        }.get(key)

    def name(self, doc: Any) -> str:
        """The matrix's name: a plain slug, since it names the directory its results go to."""
        if "name" in doc:
            name = doc["name"]
            if not isinstance(name, (str, int)) or isinstance(name, bool) or not NAME.fullmatch(str(name)):
                raise self.error(doc, "name", f"{str(name)!r} is not a plain name: letters, digits, '.', '_', '-' "
                                 "(at most 64, not starting with '.'); it names the results directory")
            return str(name)
        if not NAME.fullmatch(self.path.stem):
            raise MatrixError(self.file, doc.line, "name", f"the file name {self.path.stem!r} is not a plain name "
                              "for the results directory: give one with name:")
        return self.path.stem

    def timeout(self, doc: Any) -> float:
        raw = doc.get("timeout", 20)
        try:
            if isinstance(raw, bool) or not isinstance(raw, (int, float, str)):
                raise ValueError
            timeout = float(raw)
        except (ValueError, OverflowError):
            raise self.error(doc, "timeout", f"{str(raw)!r} is not a number of seconds") from None
        if not 0 < timeout <= MAX_TIMEOUT:  # also refuses nan
            raise self.error(doc, "timeout", f"{str(raw)!r}: a cell's time limit is more than 0 and at most "
                             f"{MAX_TIMEOUT:.0f} seconds")
        return timeout

    def bound_cells(self, doc: Any, axes: Mapping[str, list[Any]]) -> None:
        """The axes' product, counted before a cell is made: a matrix is not a way to fill the memory."""
        count = len(axes["glibc"]) + len(self.nixpkgs)  # Debian's glibc builds and the pins'
        for key in ("binary", "strategy", "env", "launch", "libs", "nixos", "name"):
            count *= len(axes[key])
        count *= max(1, len(axes.get("nix_ld", ())))
        if count > MAX_CELLS:
            raise MatrixError(self.file, doc.line_of("axes"), "axes",
                              f"the axes make up to {count} cells; at most {MAX_CELLS}")

    def expand(self, axes: Mapping[str, list[Any]], binaries: Mapping[str, BinarySpec]) -> list[Cell]:
        """Every combination; some axes do not apply to some cells and collapse to one value there:
        ``container`` runs on its build suite's glibc and is started directly, and a bash launch
        style composes its own environment (bash's order), so the ``env`` profile is nixos-login; a
        library set is offered only by patchelf, LD_LIBRARY_PATH and nix-ld.

        The glibc builds are Debian's of the axis's versions, then each nixpkgs pin's own
        (``--nixpkgs``): (version, pin). A pin's own nix-ld joins the nix_ld axis on its column only."""
        builds = [(glibc, None) for glibc in axes["glibc"]] + [(v, pin) for pin, (v, _) in self.nixpkgs.items()]
        named = len(axes["nixos"]) > 1  # one release: the matrix's, not part of a cell's id
        cells: dict[str, Cell] = {}
        for binary, strategy, (glibc, pin), env, style, libs, nixos, written in itertools.product(
            axes["binary"], axes["strategy"], builds, axes["env"], axes["launch"], axes["libs"], axes["nixos"],
            axes["name"]
        ):
            launch = Launch(style)
            release = nixos if named and pin is None else None  # a pin's column is its own release
            if Strategy.CONTAINER in strategy:
                suite = subject(binaries, binary).built_in  # the root it runs in: its build suite's
                glibc = self.suite_glibc[suite] if suite else NO_SUITE  # NO_SUITE: refused unless excluded
                pin, launch, release = None, Launch.DIRECT, None
            if launch.uses_bash:
                env = "nixos-login"
            launch, name = _naming(launch, Naming.parse(written) or Naming(), binaries[binary].artifact is not None)
            if not set(strategy) & LIBRARY_STRATEGIES:
                libs = NO_LIBRARIES
            labels = list(axes.get("nix_ld", []))
            own = self.nixpkgs[pin][1] if pin else None
            if own and own not in labels:
                labels.append(own)
            for nix_ld in (labels or [None]) if Strategy.NIX_LD in strategy else [None]:
                cell = Cell(binary, strategy, glibc, nix_ld, env, launch, libs=libs, nixpkgs=pin, nixos=release,
                            name=name)
                cells.setdefault(cell.id, cell)
        return list(cells.values())

    def excludes(self, doc: Any, binaries: Mapping[str, BinarySpec],
                 axes: Mapping[str, list[Any]]) -> list[tuple[tuple[Matcher, ...], int]]:
        section = doc.get("exclude", LocatedList(self.file, doc.line))
        if not isinstance(section, LocatedList):
            raise self.error(doc, "exclude", "must be a list of conditions")
        return [(self.matchers(e, f"exclude[{i}]", binaries, axes, line=section.line_of(i)), section.line_of(i))
                for i, e in enumerate(section)]

    def rules(self, doc: Any, binaries: Mapping[str, BinarySpec], axes: Mapping[str, list[Any]]) -> list[Rule]:
        section = doc.get("expect")
        if not isinstance(section, LocatedList) or not section:
            raise MatrixError(self.file, getattr(section, "line", doc.line), "expect",
                              "is required: a list of rules {when: ..., outcome: ...}, first match wins")
        rules = []
        outcomes = [o.value for o in Outcome]
        for i, entry in enumerate(section):
            context = f"expect[{i}]"
            self.check_keys(entry, RULE_KEYS, context, line=section.line_of(i))
            if "outcome" not in entry:
                raise MatrixError(self.file, entry.line, f"{context}.outcome", "is required", outcomes)
            outcome = str(entry["outcome"])
            if outcome not in outcomes:
                raise self.unknown(entry, "outcome", "unknown outcome", outcome, outcomes)
            fixed = str(entry.get("fixed_outcome", "ok"))
            if "fixed_outcome" in entry and fixed not in outcomes:
                raise self.unknown(entry, "fixed_outcome", "unknown outcome", fixed, outcomes)
            bug = entry.get("bug")
            if bug is not None and not re.match(r"https?://\S+$", str(bug)):
                raise self.error(entry, "bug", "must be the URL of the upstream report")
            if "fixed_outcome" in entry and bug is None:
                raise self.error(entry, "fixed_outcome", "only a known bug (bug: URL) has a fixed outcome")
            when = entry.get("when", {})
            if not isinstance(when, dict):
                raise self.error(entry, "when", f"must be a mapping of conditions, not {describe_value(when)}")
            matchers = self.matchers(when, f"{context}.when", binaries, axes) if when else ()
            rules.append(Rule(matchers, Outcome(outcome), f"{self.file}:{section.line_of(i)}",
                              None if bug is None else str(bug),
                              Outcome(fixed) if "fixed_outcome" in entry else None, entry.get("note")))
        return rules

    def differs(self, doc: Any, binaries: Mapping[str, BinarySpec],
                axes: Mapping[str, list[Any]]) -> tuple[Difference, ...]:
        """``differs: [{when: ..., between: [debian, nixpkgs], reason: "..."}]``: the differences
        ``ldmatrix parity`` may find and accepts, each with its reason."""
        section = doc.get("differs", LocatedList(self.file, doc.line))
        if not isinstance(section, LocatedList):
            raise self.error(doc, "differs", "must be a list of {when: ..., between: [A, B], reason: ...}")
        out = []
        for i, entry in enumerate(section):
            context = f"differs[{i}]"
            self.check_keys(entry, DIFFERS_KEYS, context, line=section.line_of(i))
            for required in ("between", "reason"):
                if required not in entry:
                    raise MatrixError(self.file, entry.line, f"{context}.{required}", "is required",
                                      list(SIDES) if required == "between" else None)
            between, at = entry["between"], {"line": entry.line_of("between")}
            if not isinstance(between, list) or len(between) != 2 or any(isinstance(v, (list, dict)) for v in between):
                raise self.error(entry, f"{context}.between", "must name two sides, e.g. [debian, nixpkgs] or "
                                 "[sandbox, nixos-vm]", SIDES, **at)
            for side in between:
                if str(side) not in SIDES:
                    raise self.unknown(entry, f"{context}.between", "unknown side", side, SIDES, **at)
            if str(between[0]) == str(between[1]):
                raise self.error(entry, f"{context}.between", f"names {between[0]!r} twice: a difference is between "
                                 "two sides", SIDES, **at)
            reason = entry["reason"]
            if not isinstance(reason, str) or not reason.strip():
                raise self.error(entry, f"{context}.reason", "must say why the sides differ, in words",
                                 line=entry.line_of("reason"))
            when = entry.get("when", {})
            if not isinstance(when, dict):
                raise self.error(entry, "when", f"must be a mapping of conditions, not {describe_value(when)}")
            matchers = self.matchers(when, f"{context}.when", binaries, axes) if when else ()
            out.append(Difference(matchers, frozenset(str(s) for s in between), reason.strip(),
                                  f"{self.file}:{section.line_of(i)}"))
        return tuple(out)

    def nix_ld_sources(self, doc: Any) -> dict[str, PinnedSource]:
        section = doc.get("nix_ld_sources", LocatedMap(self.file, doc.line))
        if not isinstance(section, LocatedMap):
            raise self.error(doc, "nix_ld_sources", "must map nix-ld versions to {url: ..., hash: sha256-...}")
        out = {}
        for version, entry in section.items():
            key = f"nix_ld_sources.{version}"
            if not is_label(str(version)):
                raise self.error(section, str(version), f"not a nix-ld version ({LABEL_EXAMPLE})")
            self.check_keys(entry, SOURCE_KEYS, key)
            for required in SOURCE_KEYS:
                if required not in entry:
                    raise MatrixError(self.file, entry.line, f"{key}.{required}", "is required")
            url, nar_hash = str(entry["url"]), str(entry["hash"])
            if not re.match(r"^https?://\S+$", url):
                raise self.error(entry, "url", f"not an http(s) URL: {url!r}")
            if not is_sri(nar_hash):
                raise self.error(entry, "hash", "must be the NAR hash of the unpacked tree, sha256-<base64> "
                                 "(nix hash path DIR)")
            out[str(version)] = PinnedSource(str(version), url, nar_hash, f"{self.file}:{section.line_of(version)}")
        return out


def load(path: Path | str, *, glibc_suites: Mapping[str, str] | None = None,
         reproducers: Mapping[str, Any] | None = None, extra_nix_ld: Iterable[str] = (),
         nixpkgs: Mapping[str, tuple[str, str | None]] | None = None,
         suite_glibc: Mapping[str, str] | None = None) -> Matrix:
    """``extra_nix_ld``: nix-ld versions supplied on the command line; they join the nix_ld axis.
    ``nixpkgs``: pins (``--nixpkgs``) -> (glibc version, the pin's own nix-ld version or None); each
    pin's glibc build joins the glibc axis as a column of its own, and its nix-ld the nix_ld axis
    there."""
    path = Path(path)
    display = _display(path)
    if glibc_suites is None:
        from harness.provision.suites import SUITE_GLIBC, SUITES
        glibc_suites, suite_glibc = SUITES, suite_glibc or SUITE_GLIBC
    if reproducers is None:
        from harness.reproducers import REPRODUCERS
        reproducers = REPRODUCERS
    loader = _Loader(path, display, glibc_suites, reproducers, nixpkgs, suite_glibc)
    doc = yamlsource.load(path, display)
    loader.check_keys(doc, TOP_KEYS, "the matrix")
    name = loader.name(doc)
    binaries = loader.binaries(doc)
    own = loader.own_libraries(doc)
    axes = loader.axes(doc, binaries)
    if "nix_ld" in axes:
        axes["nix_ld"] += [label for label in extra_nix_ld if label not in axes["nix_ld"]]
    loader.bound_cells(doc, axes)
    cells = loader.expand(axes, binaries)
    excludes = loader.excludes(doc, binaries, axes)
    facts = {c.id: cell_facts(c, binaries, axes["nixos"][0]) for c in cells}
    cells = _without_excluded(display, cells, facts, excludes)
    if not cells:
        raise MatrixError(display, doc.line, "axes", "every cell is excluded")
    _check_id_lengths(display, doc, cells)
    for cell in cells:
        if Strategy.CONTAINER in cell.strategy and cell.glibc == NO_SUITE:
            name = subject(binaries, cell.binary).name
            raise MatrixError(display, doc["binaries"].line_of(name), f"binaries.{name}.built_in",
                              "the container strategy runs a program in a Debian suite's root: name it with "
                              "built_in (or exclude its container cells)", sorted(loader.suite_glibc))
    rules = loader.rules(doc, binaries, axes)
    index = RuleIndex([rule.matchers for rule in rules])
    decided: dict[str, int] = {}  # cell id -> the rule that decides it
    for cell in cells:
        first = index.first(facts[cell.id])
        if first is None:
            raise MatrixError(display, doc.line_of("expect"), "expect",
                              f"no rule decides cell {cell.id}: add a last rule with no 'when'")
        decided[cell.id] = first
    used = set(decided.values())
    for i, rule in enumerate(rules):
        if i not in used:
            raise MatrixError(display, _line_of(rule), f"expect[{i}]", _why_unused(i, rules, cells, facts, decided))
    sources = loader.nix_ld_sources(doc)
    differs = loader.differs(doc, binaries, axes)
    runner = str(doc.get("runner", "sandbox"))
    if runner not in RUNNERS:
        raise loader.unknown(doc, "runner", "unknown runner", runner, RUNNERS)
    return Matrix(path, name, str(doc.get("description", "")).strip(), runner, loader.timeout(doc), binaries,
                  tuple(cells), tuple(rules), sources, dict(loader.library_sets), own, tuple(axes["nixos"]), differs)


def _without_excluded(display: str, cells: list[Cell], facts: Mapping[str, Mapping[str, Any]],
                      excludes: list[tuple[tuple[Matcher, ...], int]]) -> list[Cell]:
    """The cells no ``exclude`` entry matches; an entry that excludes nothing is a mistake."""
    index = RuleIndex([matchers for matchers, _ in excludes])
    used: set[int] = set()
    kept = []
    for cell in cells:
        hits = set(index.matching(facts[cell.id]))
        used |= hits
        if not hits:
            kept.append(cell)
    for i, (_, line) in enumerate(excludes):
        if i not in used:
            raise MatrixError(display, line, "exclude", "excludes no cell: a typo in a value?")
    return kept


def _check_id_lengths(display: str, doc: Any, cells: Iterable[Cell]) -> None:
    """A cell's id names its folder (``cells/<id>``, made as ``.tmp-<id>-XXXXXXXX``): at most 255 bytes."""
    for cell in cells:
        size = len(cell.id.encode())
        if size > MAX_ID_BYTES:
            raise MatrixError(display, doc.line_of("axes"), "axes",
                              f"cell {cell.id[:60]}... has an id of {size} bytes; a cell's folder name is at most "
                              f"255 bytes, so an id at most {MAX_ID_BYTES}: shorten the binary's name or the "
                              "library set's (name it with fewer attributes)")


def _line_of(rule: Rule) -> int:
    return int(rule.source.rsplit(":", 1)[1])


def _why_unused(i: int, rules: list[Rule], cells: Iterable[Cell], facts: Mapping[str, Mapping[str, Any]],
                decided: Mapping[str, int]) -> str:
    """Why rule ``i`` decides no cell: it matches none, or an earlier rule decides those it matches."""
    shadowed = next((cell for cell in cells if rules[i].matches(facts[cell.id])), None)
    if shadowed is None:
        return "matches no cell"
    earlier = decided[shadowed.id]
    return (f"decides no cell: every cell it matches is decided by an earlier rule, as expect[{earlier}] "
            f"(line {_line_of(rules[earlier])}) decides {shadowed.id}")


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)
