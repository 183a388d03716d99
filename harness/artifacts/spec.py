"""A matrix's binaries from where people get them: a PyPI wheel, a Debian package, a URL, a local file.

    binaries:
      uv:    {wheel: uv==0.1.17, path: uv-0.1.17.data/scripts/uv, run: [--version],
              expect: {exit: 0, output: '^uv 0\\.1\\.17'}}
      hello: {deb: {package: hello, suite: bookworm}, path: usr/bin/hello, run: [--version]}
      tool:  {url: https://example.org/tool.tar.gz, sha256: <64 hex>, path: tool-1.0/bin/tool}
      mine:  {file: ./bin/mytool, built_in: bookworm}

``parse`` checks one such entry where it is written (file, line, key, allowed values) and gives the
``Artifact`` (where its bytes come from and which file in them is the program), how to run it and
what success looks like. ``built_in`` is the Debian suite whose root the ``container`` strategy
runs it in (a Debian package's own suite unless it says otherwise).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from harness import output_regex
from harness.errors import LdmatrixError, MatrixError, did_you_mean
from harness.model import OutputCheck
from harness.yamlsource import LocatedMap, describe_value


class Kind(enum.StrEnum):
    WHEEL = "wheel"
    DEB = "deb"
    URL = "url"
    FILE = "file"


COMMON_KEYS = ("path", "run", "expect", "built_in", "child", "script", "note")
# What a real program runs to start a child and judge it (harness/data/), by the program it is for.
SCRIPTS = {"spawn_child.js": "node"}
KIND_KEYS: dict[Kind, tuple[str, ...]] = {
    Kind.WHEEL: ("wheel", *COMMON_KEYS),
    Kind.DEB: ("deb", *COMMON_KEYS),
    Kind.URL: ("url", "sha256", *COMMON_KEYS),
    Kind.FILE: ("file", *COMMON_KEYS),
}
DEB_KEYS = ("package", "suite")
EXPECT_KEYS = ("exit", "output")
ANY_EXIT = "any"
SHA256 = re.compile(r"^[0-9a-f]{64}$")
DEB_PACKAGE = re.compile(r"^[a-z0-9][a-z0-9+.-]+$")
URL_SCHEMES = ("https://", "http://", "file:")


class ArtifactError(LdmatrixError):
    """Something about an artifact a matrix names: one line with the matrix file, line and key
    (as a MatrixError says it; one argument, so it can be re-raised with more said)."""


@dataclass(frozen=True)
class Where:
    """A key of a matrix entry, for errors: ``matrices/x.yaml:12: binaries.uv.wheel: ...``."""

    file: str
    line: int | None
    key: str

    def error(self, message: str, allowed: list[str] | None = None) -> ArtifactError:
        """What fetching or checking the artifact found (raised while provisioning)."""
        return ArtifactError(str(self.invalid(message, allowed)))

    def invalid(self, message: str, allowed: list[str] | None = None) -> MatrixError:
        """What is wrong with the matrix as written (raised while loading it)."""
        return MatrixError(self.file, self.line, self.key, message, allowed)


@dataclass(frozen=True)
class Wheel:
    project: str  # as written: "uv"
    version: str  # "0.1.17"

    @property
    def key(self) -> str:
        from packaging.utils import canonicalize_name

        return f"wheel:{canonicalize_name(self.project)}=={self.version}"

    def describe(self) -> str:
        return f"{self.project}=={self.version}"


@dataclass(frozen=True)
class Deb:
    package: str
    suite: str

    @property
    def key(self) -> str:
        return f"deb:{self.suite}/{self.package}"

    def describe(self) -> str:
        return f"Debian package {self.package} ({self.suite})"


@dataclass(frozen=True)
class Url:
    url: str
    sha256: str

    @property
    def key(self) -> str:
        return f"url:{self.url}#sha256={self.sha256}"

    @property
    def name(self) -> str:
        return self.url.rstrip("/").rsplit("/", 1)[-1] or "download"

    def describe(self) -> str:
        return self.url


@dataclass(frozen=True)
class LocalFile:
    written: str  # as the matrix writes it, "./bin/mytool"
    path: Path  # resolved against the matrix's directory

    @property
    def key(self) -> str:
        return f"file:{self.written}"

    def describe(self) -> str:
        return str(self.path)


Source = Wheel | Deb | Url | LocalFile


@dataclass(frozen=True)
class Artifact:
    """Where a binary's bytes come from, and which file in them is the program."""

    binary: str  # the matrix's name for it
    kind: Kind
    source: Source
    path: str | None  # inside the wheel, package or archive; None: the download is the ELF itself
    file: str  # the matrix, for errors
    lines: tuple[tuple[str, int], ...] = ()  # key -> line in the matrix

    @property
    def id(self) -> str:
        """One program of one pinned artifact: what the run's binaries are keyed by."""
        return f"{self.source.key}#{self.path or ''}"

    @property
    def name(self) -> str:
        """The program's file name: the last part of ``path`` (or of the URL, the local file)."""
        if self.path:
            return PurePosixPath(self.path).name
        if isinstance(self.source, LocalFile):
            return self.source.path.name
        if isinstance(self.source, Url):
            return self.source.name
        return self.binary

    def at(self, key: str) -> Where:
        """``binaries.<name>.<key>`` with its line."""
        lines = dict(self.lines)
        return Where(self.file, lines.get(key, lines.get("")), f"binaries.{self.binary}.{key}")


@dataclass(frozen=True)
class Parsed:
    artifact: Artifact
    run: tuple[str, ...]
    check: OutputCheck
    built_in: str | None
    child: str | None = None  # the binary it starts (a prebuilt parent: VS Code's server's node)
    script: str | None = None  # how it starts it: a file of harness/data/ it runs (SCRIPTS)


def kind_of(entry: Mapping[str, Any]) -> list[Kind]:
    return [kind for kind in Kind if kind.value in entry]


def parse(entry: Any, name: str, file: str, base_dir: Path, suites: Mapping[str, str]) -> Parsed:
    """One ``binaries:`` entry naming a wheel, a Debian package, a URL or a file (exactly one)."""
    here = _Here(entry, name, file)
    kinds = kind_of(entry)
    if len(kinds) != 1:
        raise here.at(kinds[1].value).invalid(f"say where it comes from once: {kinds[0].value} or {kinds[1].value}, "
                                            "not both")
    kind = kinds[0]
    if "reproducer" in entry:
        raise here.at("reproducer").invalid(f"a binary is a reproducer or comes from a {kind.value}, not both")
    here.check_keys(entry, KIND_KEYS[kind], f"binaries.{name}")
    parsers: dict[Kind, Callable[[_Here, Path, Mapping[str, str]], Source]] = {
        Kind.WHEEL: _wheel, Kind.DEB: _deb, Kind.URL: _url, Kind.FILE: _file}
    source = parsers[kind](here, base_dir, suites)
    path = _path(here, kind)
    built_in = entry.get("built_in", source.suite if isinstance(source, Deb) else None)
    if built_in is not None:
        built_in = str(built_in)
        if built_in not in suites:
            raise here.at("built_in").invalid(f"unknown Debian suite {built_in!r}{did_you_mean(built_in, suites)}: "
                                            "the suite whose root the container strategy runs it in",
                                            sorted(suites))
    lines = (*tuple((str(k), entry.line_of(k)) for k in entry), ("", entry.line))
    artifact = Artifact(name, kind, source, path, file, lines)
    child, script = _child(here)
    return Parsed(artifact, _run(here), _expect(here), built_in, child, script)


class _Here:
    """The entry being parsed, for its values and its errors."""

    def __init__(self, entry: Any, name: str, file: str):
        self.entry, self.name, self.file = entry, name, file

    def at(self, key: str, mapping: Any = None) -> Where:
        mapping = self.entry if mapping is None else mapping
        line = mapping.line_of(key) if hasattr(mapping, "line_of") else getattr(mapping, "line", None)
        return Where(self.file, line, f"binaries.{self.name}.{key}")

    def check_keys(self, mapping: Any, allowed: tuple[str, ...], context: str) -> None:
        for key in mapping:
            if key not in allowed:
                raise Where(self.file, mapping.line_of(key), str(key)).invalid(
                    f"unknown key in {context}: {str(key)!r}{did_you_mean(key, allowed)}", list(allowed))

    def text(self, key: str, mapping: Any = None) -> str:
        mapping = self.entry if mapping is None else mapping
        value = mapping[key]
        if not isinstance(value, (str, int, float)) or isinstance(value, bool) or not str(value).strip():
            raise self.at(key, mapping).invalid(f"must be a plain value, not {describe_value(value)}")
        if "\0" in str(value):
            raise self.at(key, mapping).invalid(f"{str(value)!r} has a NUL byte: no file name, URL or argument "
                                                "can hold one")
        return str(value).strip()


def _wheel(here: _Here, base_dir: Path, suites: Mapping[str, str]) -> Wheel:
    from packaging.requirements import InvalidRequirement, Requirement

    text = here.text("wheel")
    where = here.at("wheel")
    try:
        requirement = Requirement(text)
    except InvalidRequirement as err:
        raise where.invalid(f"{text!r} is not a requirement ({str(err).splitlines()[0]}); "
                          "write name==version, e.g. uv==0.1.17") from None
    specs = list(requirement.specifier)
    if requirement.extras or requirement.marker or requirement.url or len(specs) != 1 \
            or specs[0].operator not in ("==", "===") or "*" in specs[0].version:
        raise where.invalid(f"{text!r} is not pinned to one version: write name==version, e.g. uv==0.1.17")
    return Wheel(requirement.name, specs[0].version)


def _deb(here: _Here, base_dir: Path, suites: Mapping[str, str]) -> Deb:
    section = here.entry["deb"]
    if not isinstance(section, LocatedMap):
        raise here.at("deb").invalid("must be a mapping {package: NAME, suite: SUITE}, "
                                     f"not {describe_value(section)}")
    here.check_keys(section, DEB_KEYS, f"binaries.{here.name}.deb")
    for key in DEB_KEYS:
        if key not in section:
            raise Where(here.file, section.line, f"binaries.{here.name}.deb.{key}").invalid("is required")
    package, suite = here.text("package", section), here.text("suite", section)
    if not DEB_PACKAGE.match(package):
        raise Where(here.file, section.line_of("package"), f"binaries.{here.name}.deb.package").invalid(
            f"{package!r} is not a Debian package name")
    if suite not in suites:
        raise Where(here.file, section.line_of("suite"), f"binaries.{here.name}.deb.suite").invalid(
            f"unknown Debian suite {suite!r}{did_you_mean(suite, suites)}", sorted(suites))
    return Deb(package, suite)


def _url(here: _Here, base_dir: Path, suites: Mapping[str, str]) -> Url:
    url = here.text("url")
    if not url.startswith(URL_SCHEMES) or any(c.isspace() for c in url):
        raise here.at("url").invalid(f"{url!r} is not an http(s) or file: URL")
    if "sha256" not in here.entry:
        raise here.at("url").invalid("a URL needs the sha256 of what it serves: add sha256: <64 hex digits> "
                                   "(sha256sum FILE)")
    sha = here.text("sha256").lower()
    if not SHA256.match(sha):
        raise here.at("sha256").invalid(f"{sha!r} is not a sha256: 64 hex digits (sha256sum FILE)")
    return Url(url, sha)


def _file(here: _Here, base_dir: Path, suites: Mapping[str, str]) -> LocalFile:
    written = here.text("file")
    path = (base_dir / written).resolve() if not Path(written).is_absolute() else Path(written)
    if not path.is_file():
        why = "is a directory" if path.is_dir() else "does not exist"
        raise here.at("file").invalid(f"{written} ({path}) {why}: name a program file (relative to the matrix)")
    return LocalFile(written, path)


def _path(here: _Here, kind: Kind) -> str | None:
    if "path" not in here.entry:
        if kind in (Kind.WHEEL, Kind.DEB):
            example = "uv-0.1.17.data/scripts/uv" if kind is Kind.WHEEL else "usr/bin/jq"
            raise here.at(kind.value).invalid(f"say which file of the {kind.value} is the program: path: {example}")
        return None  # a URL or a file that is the program itself (checked when it is fetched)
    text = here.text("path").lstrip("/")
    parts = PurePosixPath(text).parts
    if not parts or ".." in parts or "\0" in text:
        raise here.at("path").invalid(f"{here.entry['path']!r} is not a path inside the {kind.value}")
    return str(PurePosixPath(*parts))


def _child(here: _Here) -> tuple[str | None, str | None]:
    """``child: NAME`` with ``script: FILE``: the program starts that binary by running one of ours."""
    if "child" not in here.entry and "script" not in here.entry:
        return None, None
    if "child" not in here.entry or "script" not in here.entry:
        missing = "script" if "child" in here.entry else "child"
        raise here.at("child" if missing == "script" else "script").invalid(
            f"a real program starts its child by running a script of ours: give child: and {missing}:",
            sorted(SCRIPTS))
    script = here.text("script")
    if script not in SCRIPTS:
        raise here.at("script").invalid(f"unknown script {script!r}{did_you_mean(script, SCRIPTS)}", sorted(SCRIPTS))
    if "expect" in here.entry:
        raise here.at("expect").invalid("a program that starts a child is judged by its script's check of the "
                                        "child: leave out expect:")
    return here.text("child"), script


def _run(here: _Here) -> tuple[str, ...]:
    if "run" not in here.entry:
        return ()
    value = here.entry["run"]
    if not isinstance(value, list) or any(isinstance(v, (list, dict)) or v is None for v in value):
        raise here.at("run").invalid("the program's arguments as a list of plain values, e.g. run: [--version]")
    for v in value:
        if "\0" in str(v):
            raise here.at("run").invalid(f"{str(v)!r} has a NUL byte: a program's argument cannot hold one")
    return tuple(str(v) for v in value)


def _expect(here: _Here) -> OutputCheck:
    return parse_expect(here.entry, here.name, here.file)


def parse_expect(entry: Any, name: str, file: str) -> OutputCheck:
    """``expect: {exit: N, output: REGEX}`` (or a list of regular expressions, each to be found)."""
    if "expect" not in entry:
        return OutputCheck()
    section = entry["expect"]
    if not isinstance(section, LocatedMap):
        raise Where(file, entry.line_of("expect"), f"binaries.{name}.expect").invalid(
            "what success looks like: {exit: 0, output: REGEX}")
    _Here(entry, name, file).check_keys(section, EXPECT_KEYS, f"binaries.{name}.expect")
    status = section.get("exit", 0)
    if status == ANY_EXIT:
        status = None  # whatever the program exits with, once it ran (``ldmatrix inspect``'s own cells)
    elif isinstance(status, bool) or not isinstance(status, int) or not 0 <= status <= 255:
        raise Where(file, section.line_of("exit"), f"binaries.{name}.expect.exit").invalid(
            f"{status!r} is not an exit status (0 to 255, or {ANY_EXIT})")
    raw = section.get("output")
    patterns = [str(p) for p in raw] if isinstance(raw, list) else [] if raw is None else [str(raw)]
    for pattern in patterns:
        try:
            output_regex.compile_pattern(pattern)
        except output_regex.RegexError as err:
            raise Where(file, section.line_of("output"), f"binaries.{name}.expect.output").invalid(
                f"{pattern!r} is not a regular expression: {err}") from None
    return OutputCheck(status, patterns[0] if patterns else None, tuple(patterns[1:]))
