"""YAML that remembers where each value came from, so errors can name file and line.

``load(path)`` gives plain dicts, lists and scalars, except that every mapping is a
``LocatedMap`` (a dict with ``line_of(key)``) and every list a ``LocatedList``
(with ``line_of(index)``). Duplicate keys are an error, not a silent overwrite.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from harness.errors import MatrixError


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
            key = _convert(key_node, file)
            key_line = key_node.start_mark.line + 1
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


def _scalar(node: yaml.ScalarNode) -> Any:
    # Floats keep their text: a glibc or nix-ld version written as 2.40 must not become 2.4.
    if node.tag == "tag:yaml.org,2002:float":
        return node.value
    return _RESOLVER.construct_object(node, deep=True)


def load(path: Path, display: str | None = None) -> Any:
    file = display or str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise MatrixError(file, None, "file", f"cannot read: {err.strerror}") from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        line = mark.line + 1 if mark else None
        raise MatrixError(file, line, "yaml", f"not valid YAML: {err.problem or err.context}") from None
    if node is None:
        raise MatrixError(file, 1, "file", "is empty")
    return _convert(node, file)
