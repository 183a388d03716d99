"""Spreading a matrix over machines: --shard K/N slices, `ldmatrix merge`, `ldmatrix ci-matrix`.

Fast: slices of the real matrices and merges of results files written here. The real run of the
seed matrix in shards, merged and compared with the unsharded run, is tests/test_shard_e2e.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness import matrix as matrix_mod
from harness import shard
from harness.results import merge
from harness.cli import main
from harness.errors import LdmatrixError
from harness.model import CellResult, Outcome
from harness.session import result_record

REPO = Path(__file__).resolve().parent.parent
SEED = REPO / "matrices" / "seed.yaml"


@pytest.fixture(scope="module")
def seed() -> matrix_mod.Matrix:
    return matrix_mod.load(SEED)


@pytest.mark.parametrize("text, want", [("1/1", (1, 1)), ("2/4", (2, 4)), (" 4 / 4 ", (4, 4))])
def test_shard_parses(text: str, want: tuple[int, int]) -> None:
    parsed = shard.parse(text)
    assert (parsed.index, parsed.count) == want and parsed.name == f"{want[0]}of{want[1]}"


@pytest.mark.parametrize("text", ["0/4", "5/4", "1/0", "2", "a/b", "-1/2", "1/2/3"])
def test_a_bad_shard_is_one_line_naming_the_form(text: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", str(SEED), f"--shard={text}"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "argument --shard" in err and ("K/N" in err or "1 to N" in err), err


@pytest.mark.parametrize("count", [1, 2, 3, 7])
def test_slices_cover_every_cell_once_in_the_matrixs_order(seed: matrix_mod.Matrix, count: int) -> None:
    parts = shard.slices(seed, seed.cells, count)
    ids = [c.id for part in parts for c in part]
    assert sorted(ids) == sorted(c.id for c in seed.cells) and len(ids) == len(set(ids))
    position = {c.id: i for i, c in enumerate(seed.cells)}
    for part in parts:
        assert [position[c.id] for c in part] == sorted(position[c.id] for c in part)


def test_slices_are_balanced_by_expected_cost(seed: matrix_mod.Matrix) -> None:
    parts = shard.slices(seed, seed.cells, 4)
    loads = [sum(shard.cost(seed, c) for c in part) for part in parts]
    heaviest = max(shard.cost(seed, c) for c in seed.cells)
    assert max(loads) - min(loads) <= heaviest, loads
    # python launches cost more than direct starts: balancing by cost is not balancing by count
    python = [c for c in seed.cells if c.launch.value == "python"]
    direct = [c for c in seed.cells if c.launch.value == "direct" and c.strategy == python[0].strategy]
    assert shard.cost(seed, python[0]) > shard.cost(seed, direct[0])


def test_a_cell_expected_to_time_out_weighs_its_time_limit(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text("name: slow\ntimeout: 2\nbinaries: {c-hello: {reproducer: hello, built_in: bullseye}}\n"
                    "axes: {strategy: [none, patchelf], glibc: ['2.36', '2.41']}\n"
                    "expect: [{when: {strategy: none, glibc: '2.36'}, outcome: timeout}, {outcome: ok}]\n")
    matrix = matrix_mod.load(path)
    slow = next(c for c in matrix.cells if c.id == "c-hello.none.glibc-2.36")
    assert shard.cost(matrix, slow) == 2 / shard.START_SECONDS
    parts = shard.slices(matrix, matrix.cells, 2)
    assert [c.id for c in parts[0]] == [slow.id] and len(parts[1]) == 3


def test_slices_are_the_same_in_every_process(seed: matrix_mod.Matrix) -> None:
    again = matrix_mod.load(SEED)
    assert [[c.id for c in p] for p in shard.slices(seed, seed.cells, 3)] == \
        [[c.id for c in p] for p in shard.slices(again, again.cells, 3)]


# --------------------------------------------------------------------------- merge


def _write(path: Path, seed: matrix_mod.Matrix, part, **header) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps({"matrix": str(SEED), "name": "seed", "runner": "sandbox", "started": 1.0, **header})]
    for cell in part:
        expected = seed.expectation(cell).outcome
        lines.append(json.dumps(result_record(CellResult(
            cell_id=cell.id, outcome=expected, evidence="the line", expected=expected, bug=None, skip_reason=None,
            rc=0, duration=0.01, runner="sandbox", axes=cell.axes))))
    path.write_text("\n".join(lines) + "\n")
    return path


def _shards(tmp_path: Path, seed: matrix_mod.Matrix, count: int, cells=None) -> list[Path]:
    parts = shard.slices(seed, cells or seed.cells, count)
    return [_write(tmp_path / f"s{k}" / "seed" / "results.jsonl", seed, part, shard=f"{k}/{count}", cells=len(part))
            for k, part in enumerate(parts, start=1)]


def test_merged_shards_list_every_cell_in_the_matrixs_order(tmp_path: Path, seed: matrix_mod.Matrix) -> None:
    merged = merge.merge(reversed(_shards(tmp_path, seed, 3)))
    assert [r.cell_id for r in merged.results] == [c.id for c in seed.cells]
    assert merged.header["cells"] == len(seed.cells) and len(merged.header["merged"]) == 3
    assert "shard" not in merged.header


@pytest.mark.parametrize("damage, message", [
    (lambda files: files[:2], "shard 3/3 missing"),
    (lambda files: [*files, files[0]], "shard 1/3 given twice"),
    (lambda files: files[:2] + [_cut(files[2])], "the run was cut short"),
    (lambda files: files[:2] + [_rename(files[2], "glibc")], "runs of different matrices"),
    (lambda files: files[:2] + [_append(files[2], files[0])], "in both"),
    (lambda files: files[:2] + [_garble(files[2])], "a damaged result"),
    (lambda files: files[:2] + [_reshard(files[2], "3/4")], "the other shards of its run"),
])
def test_merge_refuses_what_would_not_be_the_whole_run(tmp_path: Path, seed: matrix_mod.Matrix, damage,
                                                       message: str, capsys: pytest.CaptureFixture[str]) -> None:
    files = damage(_shards(tmp_path, seed, 3))
    assert main(["merge", *map(str, files), "--out", str(tmp_path / "merged")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("ldmatrix: merge: ") and message in err, err


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def _cut(path: Path) -> Path:
    path.write_text("\n".join(_lines(path)[:-1]) + "\n")
    return path


def _with_header(path: Path, extra: tuple[str, ...] = (), **changes) -> Path:
    """``path`` with its header's keys changed (a number given as "+1" is added to) and ``extra`` lines."""
    lines = _lines(path)
    header = json.loads(lines[0])
    for key, value in changes.items():
        header[key] = header[key] + int(value) if isinstance(value, str) and value.startswith("+") else value
    path.write_text("\n".join([json.dumps(header), *lines[1:], *extra]) + "\n")
    return path


def _rename(path: Path, name: str) -> Path:
    return _with_header(path, name=name)


def _reshard(path: Path, text: str) -> Path:
    return _with_header(path, shard=text)


def _append(path: Path, other: Path) -> Path:
    return _with_header(path, (_lines(other)[1],), cells="+1")


def _garble(path: Path) -> Path:
    lines = _lines(path)
    path.write_text("\n".join([*lines[:-1], lines[-1][:40]]) + "\n")
    return path


def test_merge_writes_the_run_and_its_grid(tmp_path: Path, seed: matrix_mod.Matrix,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    cells = seed.select("c-hello glibc-2.36")
    files = _shards(tmp_path, seed, 2, cells)
    folder = files[0].parent / "cells" / shard.slices(seed, cells, 2)[0][0].id
    folder.mkdir(parents=True)
    (folder / "command.sh").write_text("#!/bin/sh\n")
    html = tmp_path / "grid.html"
    assert main(["merge", *map(str, files), "--out", str(tmp_path / "merged"), "--html", str(html)]) == 0
    out = capsys.readouterr().out
    assert f"seed: {len(cells)} as expected" in out
    written = tmp_path / "merged" / "seed" / "results.jsonl"
    records = [json.loads(line) for line in _lines(written)]
    assert [r["cell_id"] for r in records[1:]] == [c.id for c in cells]
    copied = next(r for r in records[1:] if r["cell_id"] == folder.name)
    assert Path(copied["extra"]["workdir"], "command.sh").is_file()
    assert html.read_text().count("data-cell=") == len(cells)


def test_merge_refuses_to_write_over_a_shard(tmp_path: Path, seed: matrix_mod.Matrix,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    files = _shards(tmp_path, seed, 2, seed.select("c-hello glibc-2.36"))
    assert main(["merge", *map(str, files), "--out", str(tmp_path / "s1")]) == 2
    assert "one of the shards; give the merge its own --out" in capsys.readouterr().err


# --------------------------------------------------------------------------- ci-matrix


def test_ci_matrix_is_a_strategy_matrix_of_builds_times_shards(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    pins = tmp_path / "pins.json"
    pin = {"channel": "nixos-24.11", "rev": "ab" * 20, "url": "https://example.invalid/a.tar.gz",
           "sha256": "sha256-" + "B" * 43 + "=", "glibc": "2.40", "nix_ld": "2.0.3", "supported": True}
    pins.write_text(json.dumps({"source": {"archive": "https://example.invalid/{rev}", "head": "https://example.invalid/{channel}"},
                                "pins": {"nixos-24.11": pin, "nixos-25.05": {**pin, "channel": "nixos-25.05"}}}))
    assert main(["ci-matrix", str(SEED), "matrices/glibc.yaml", "--shards", "3", "--nixpkgs", "supported",
                 "--pins", str(pins)]) == 0
    jobs = json.loads(capsys.readouterr().out)["include"]
    assert len(jobs) == 3 * 3
    assert {(j["build"], j["shard"]) for j in jobs} == {(b, f"{k}/3") for b in ("debian", "nixos-24.11", "nixos-25.05")
                                                         for k in (1, 2, 3)}
    debian = next(j for j in jobs if j["build"] == "debian")
    assert debian["nixpkgs"] == "" and debian["matrices"] == f"{SEED} matrices/glibc.yaml"
    assert debian["names"] == "seed glibc" and debian["artifact"] == "results-debian-1of3"
    assert len({j["artifact"] for j in jobs}) == len(jobs)


def test_ci_matrix_checks_each_matrix_first(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ci-matrix", str(tmp_path / "nope.yaml"), "--shards", "2"]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_merge_of_nothing_is_refused() -> None:
    with pytest.raises(LdmatrixError, match="every shard"):
        merge.merge([])


def test_outcome_vocabulary_is_kept_in_merged_records(tmp_path: Path, seed: matrix_mod.Matrix) -> None:
    merged = merge.merge(_shards(tmp_path, seed, 2, seed.select("c-hello glibc-2.36")))
    assert all(isinstance(r.outcome, Outcome) for r in merged.results)
