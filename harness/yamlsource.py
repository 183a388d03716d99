"""YAML that remembers where each value came from, so errors can name file and line.

``load(path)`` gives plain dicts, lists and scalars, except that every mapping is a
``LocatedMap`` (a dict with ``line_of(key)``) and every list a ``LocatedList``
(with ``line_of(index)``). Duplicate keys are an error, not a silent overwrite.

A matrix is small and plain, so anything else is refused before a single node is built: more
than ``MAX_BYTES``, nesting deeper than ``MAX_DEPTH``, anchors and aliases (``&x``/``*x``: an
alias bomb expands 583 bytes into billions of nodes), tags other than YAML's own plain types
(``!!python/...``, ``!!binary``), keys that are not plain values, binary or non-UTF-8 files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from harness.errors import MatrixError
from harness.textfile import UnreadableText, read_text

MAX_BYTES = 1 << 20  # 1 MiB; the shipped matrices are about 4 KB
MAX_DEPTH = 20  # mappings and lists inside each other; a matrix needs 5
# libyaml's parser when PyYAML has it (ten times the speed of the pure-Python one, the same events)
LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
PLAIN_TAGS = frozenset(f"tag:yaml.org,2002:{t}" for t in ("str", "int", "float", "bool", "null", "map", "seq"))


class LocatedMap(dict):
    def __init__(self, file: str, line: int):
        super().__init__()
        self.file, self.line = file, line
        self.key_lines: dict[Any, int] = {}

    def line_of(self, key: Any) -> int:
        return self.key_lines.get(key, self.line)


class LocatedList(list):
    def __init__(self, file: str, line: int):
        super().__init__()
        self.file, self.line = file, line
        self.item_lines: list[int] = []

    def line_of(self, index: int) -> int:
        return self.item_lines[index] if index < len(self.item_lines) else self.line


def _convert(node: yaml.Node, file: str) -> Any:
    line = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out = LocatedMap(file, line)
        for key_node, value_node in node.value:
            key_line = key_node.start_mark.line + 1
            if not isinstance(key_node, yaml.ScalarNode):
                raise MatrixError(file, key_line, "yaml", "a key must be a plain value, not a list or a mapping")
            key = _convert(key_node, file)
            if key in out:
                raise MatrixError(file, key_line, str(key), f"duplicate key (first at line {out.line_of(key)})")
            out[key] = _convert(value_node, file)
            out.key_lines[key] = key_line
        return out
    if isinstance(node, yaml.SequenceNode):
        seq = LocatedList(file, line)
        for item in node.value:
            seq.append(_convert(item, file))
            seq.item_lines.append(item.start_mark.line + 1)
        return seq
    return _scalar(node)


_RESOLVER = yaml.SafeLoader("")


def _scalar(node: yaml.Node) -> Any:
    # Floats keep their text: a glibc or nix-ld version written as 2.40 must not become 2.4.
    if node.tag == "tag:yaml.org,2002:float":
        return node.value
    return _RESOLVER.construct_object(node, deep=True)


def _line(event: yaml.Event) -> int:
    return event.start_mark.line + 1 if event.start_mark is not None else 0


def _refuse_what_is_not_plain(text: str, file: str) -> None:
    """Walk the parser's events (nothing is built): no anchors, aliases, foreign tags or deep nesting."""
    depth = 0
    for event in yaml.parse(text, Loader=LOADER):
        if isinstance(event, yaml.AliasEvent):
            raise MatrixError(file, _line(event), "yaml",
                              f"alias *{event.anchor} refused: anchors and aliases are not supported, "
                              "write the value out")
        if isinstance(event, yaml.NodeEvent) and event.anchor is not None:
            raise MatrixError(file, _line(event), "yaml",
                              f"anchor &{event.anchor} refused: anchors and aliases are not supported, "
                              "write the value out")
        tag = getattr(event, "tag", None)
        if isinstance(event, (yaml.ScalarEvent, yaml.CollectionStartEvent)) and tag not in (None, "!") \
                and tag not in PLAIN_TAGS:
            raise MatrixError(file, _line(event), "yaml", f"tag {tag} refused: only plain values, lists and mappings")
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                raise MatrixError(file, _line(event), "yaml", f"nested more than {MAX_DEPTH} levels deep")
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


def load(path: Path, display: str | None = None) -> Any:
    file = display or str(path)
    try:
        text = read_text(path, MAX_BYTES)
    except UnreadableText as err:
        raise MatrixError(file, err.line, "file", err.reason) from None
    try:
        _refuse_what_is_not_plain(text, file)
        node = yaml.compose(text, Loader=LOADER)
        if node is None:
            raise MatrixError(file, 1, "file", "is empty")
        return _convert(node, file)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        line = mark.line + 1 if mark else None
        if "nesting depth" in str(err.problem):  # libyaml's own bound, met before ours while it scans ahead
            raise MatrixError(file, line, "yaml", f"nested more than {MAX_DEPTH} levels deep") from None
        raise MatrixError(file, line, "yaml", f"not valid YAML: {err.problem or err.context}") from None
    except yaml.YAMLError as err:
        raise MatrixError(file, None, "yaml", f"not valid YAML: {str(err).splitlines()[0]}") from None


def describe_value(value: Any) -> str:
    """What a value read from YAML is, for an error message: "a mapping", "a list", "the value 'x'"."""
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return "nothing" if value is None else f"the value {str(value)!r}"
