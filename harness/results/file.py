"""Read a ``results.jsonl`` back, line by line, keeping every damaged line as a reason.

A results file is a header line (matrix, runner, start time) and then one JSON object per
cell. A line that cannot be trusted (cut short by a killed run, not JSON, a field of the wrong
type, a cell recorded twice, longer than ``MAX_LINE``) is not skipped silently and does not end
the program: it becomes a ``DamagedLine`` naming file, line and what is wrong, and the caller
decides what that means.

Only a regular file of at most ``MAX_BYTES`` is read: a link to ``/dev/zero``, a FIFO or a device
is refused before a byte is read (a FIFO is opened without waiting for a writer).
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, BinaryIO

from harness.errors import LdmatrixError
from harness.model import CellResult, Outcome

_OUTCOME_FIELDS = ("outcome", "expected", "fixed_outcome", "predicted")
_KNOWN_FIELDS = {f.name for f in fields(CellResult)}
_REASON_WIDTH = 120  # a damaged line's reason is shown in one line; JSON errors can quote a lot
MAX_BYTES = 256 << 20  # a results file read at most; a seed run with nix-ld writes about 3 MB
MAX_LINE = 16 << 20  # one cell's line: its 1 MiB of stdout and of stderr kept, JSON-escaped
_SKIP_CHUNK = 1 << 20


@dataclass(frozen=True)
class DamagedLine:
    file: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.reason}"


@dataclass(frozen=True)
class ResultsFile:
    path: Path
    header: Mapping[str, Any] | None  # None: the header line is missing or damaged
    results: tuple[CellResult, ...]
    damaged: tuple[DamagedLine, ...]

    @property
    def matrix_name(self) -> str:
        return str(self.header.get("name", "?")) if self.header else "?"


class _Damaged(Exception):
    """One line's reason for not being a result; caught per line."""


def _outcome(record: Mapping[str, Any], key: str) -> Outcome | None:
    value = record.get(key)
    if value is None:
        return None
    try:
        return Outcome(value)
    except ValueError:
        raise _Damaged(f"{key}: unknown outcome {value!r} (allowed: {', '.join(o.value for o in Outcome)})") from None


def _expect(record: Mapping[str, Any], key: str, kinds: tuple[type, ...], what: str, required: bool = False) -> Any:
    if key not in record:
        if required:
            raise _Damaged(f"{key}: missing")
        return None
    value = record[key]
    if value is None and not required:
        return None
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        raise _Damaged(f"{key}: must be {what}, not {type(value).__name__}")
    return value


def _str_pairs(value: Any, key: str) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, list) or not all(
            isinstance(kv, list) and len(kv) == 2 and all(isinstance(x, str) for x in kv) for kv in value):
        raise _Damaged(f"{key}: must be a list of [name, value] pairs")
    return tuple((k, v) for k, v in value)


def _str_map(value: Any, key: str) -> dict[str, str]:
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise _Damaged(f"{key}: must be an object of strings")
    return dict(value)


def cell_result(record: Mapping[str, Any]) -> CellResult:
    """One cell's JSON object as a CellResult; raises _Damaged with the reason."""
    cell_id = _expect(record, "cell_id", (str,), "a string", required=True)
    if not cell_id:
        raise _Damaged("cell_id: empty")
    values: dict[str, Any] = {k: v for k, v in record.items() if k in _KNOWN_FIELDS}  # unknown: a newer ldmatrix
    for key in _OUTCOME_FIELDS:
        values[key] = _outcome(record, key)
    for key in ("evidence", "runner"):
        values[key] = _expect(record, key, (str,), "a string", required=True)
    values["prediction"] = _expect(record, "prediction", (str,), "a string") or ""
    for key in ("bug", "skip_reason"):
        values[key] = _expect(record, key, (str,), "a string or null")
    values["rc"] = _expect(record, "rc", (int,), "an integer or null")
    values["duration"] = float(_expect(record, "duration", (int, float), "a number", required=True))
    argv = record.get("argv", [])
    if not isinstance(argv, list) or not all(isinstance(a, str) for a in argv):
        raise _Damaged("argv: must be a list of strings")
    values["argv"] = tuple(argv)
    values["env"] = _str_pairs(record.get("env", []), "env")
    for key in ("stdout", "stderr"):
        values[key] = _expect(record, key, (str,), "a string") or ""
    values["axes"] = _str_map(record.get("axes", {}), "axes")
    values["extra"] = _str_map(record.get("extra", {}), "extra")
    if values["outcome"] is None and not values["skip_reason"]:
        raise _Damaged("neither an outcome nor a skip_reason: not a finished cell")
    if values["outcome"] is not None and values["skip_reason"]:
        raise _Damaged("both an outcome and a skip_reason")
    return CellResult(**values)


def _short(text: str) -> str:
    return text if len(text) <= _REASON_WIDTH else text[:_REASON_WIDTH - 3] + "..."


def open_regular(path: Path, what: str, max_bytes: int) -> BinaryIO:
    """``path`` opened for reading, if it is a regular file of at most ``max_bytes``; else one line why."""
    file = str(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)  # a FIFO opens without a writer
    except FileNotFoundError:
        raise LdmatrixError(f"{file}: no such {what}"
                            + (" (a run writes <out>/<matrix>/results.jsonl)" if what == "results file" else "")) \
            from None
    except OSError as err:
        raise LdmatrixError(f"{file}: cannot read: {err.strerror}") from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise LdmatrixError(f"{file}: is a directory; give its results.jsonl")
        if not stat.S_ISREG(info.st_mode):
            raise LdmatrixError(f"{file}: is not a regular file (a device, a pipe or a socket), not a {what}")
        if info.st_size > max_bytes:
            raise LdmatrixError(f"{file}: is {info.st_size} bytes; at most {max_bytes} are read as a {what}")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _lines(handle: BinaryIO, file: str, max_bytes: int) -> Iterator[bytes | int]:
    """Each line of ``handle`` (with its newline), or for a line longer than ``MAX_LINE`` its length,
    unread; an error once more than ``max_bytes`` are read (the file grew after it was opened)."""
    total = 0
    while True:
        if total > max_bytes:
            raise LdmatrixError(f"{file}: grew past {max_bytes} bytes while it was read; at most that is read")
        raw = handle.readline(MAX_LINE + 1)
        if not raw:
            return
        total += len(raw)
        if len(raw) <= MAX_LINE or raw.endswith(b"\n"):
            yield raw
            continue
        while not raw.endswith(b"\n"):  # the rest of the long line, read in chunks and dropped
            raw = handle.readline(_SKIP_CHUNK)
            if not raw:
                break
            total += len(raw)
        yield MAX_LINE + 1


def read(path: Path) -> ResultsFile:
    """The results in ``path`` and its damaged lines; a file that is no results file at all is an error."""
    file = str(path)
    handle = open_regular(path, "results file", MAX_BYTES)
    header: dict[str, Any] | None = None
    results: list[CellResult] = []
    damaged: list[DamagedLine] = []
    first_seen: dict[str, int] = {}
    number = 0
    with handle:
        for number, raw in enumerate(_lines(handle, file, MAX_BYTES), start=1):
            try:
                if isinstance(raw, int):
                    raise _Damaged(f"longer than {MAX_LINE} bytes: not read")
                record = _record(raw)
                if "cell_id" not in record:
                    if number != 1 or "name" not in record:
                        raise _Damaged("neither the header (first line) nor a cell's result")
                    header = record
                    continue
                result = cell_result(record)
                if result.cell_id in first_seen:
                    raise _Damaged(f"cell {result.cell_id} again (first at line {first_seen[result.cell_id]}): "
                                   "one result per cell")
            except _Damaged as why:
                damaged.append(DamagedLine(file, number, _short(str(why))))
                continue
            first_seen[result.cell_id] = number
            results.append(result)
    if number == 0:
        raise LdmatrixError(f"{file}: is empty, not a results file (a run writes a header line first)")
    if header is None and not results:
        first = damaged[0].reason if damaged else "no header"
        raise LdmatrixError(f"{file}: not an ldmatrix results file (line 1: {first})")
    if header is None and not any(d.line == 1 for d in damaged):
        damaged.insert(0, DamagedLine(file, 1, "the header line (matrix, runner) is missing"))
    return ResultsFile(path, header, tuple(results), tuple(damaged))


def _record(raw: bytes) -> dict[str, Any]:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise _Damaged(f"not UTF-8 (byte 0x{raw[err.start]:02x} at column {err.start + 1})") from None
    truncated = " (cut short: the line has no end)" if not text.endswith("\n") else ""
    text = text.strip()
    if not text:
        raise _Damaged("an empty line")
    try:
        record = json.loads(text)
    except (ValueError, RecursionError) as err:
        raise _Damaged(f"not valid JSON{truncated}: {err}") from None
    if not isinstance(record, dict):
        raise _Damaged(f"not a JSON object but a {type(record).__name__}")
    return record
