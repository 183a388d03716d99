"""The HTML grids of the seed and real-world matrices, from real runs, rendered by a real browser
(Debian's chromium, headless): the rendered DOM (``--dump-dom``, after the page's script ran) has
every cell with its outcome's class, its mark and its link to details that exist; the PNGs go to
``$LDMATRIX_ARTIFACTS`` (default ``.ldmatrix/artifacts/``), which CI keeps."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import grid_dom
import pytest

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = Path(os.environ.get("LDMATRIX_ARTIFACTS") or REPO / ".ldmatrix" / "artifacts")
WIDTH = 1400

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("bwrap") is None, reason="needs bubblewrap: apt-get install -y bubblewrap"),
]


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.skip("needs a browser: apt-get install -y chromium (.ci/run installs it)")
    return found


def browse(page: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Headless chromium on the page (as root it needs --no-sandbox: it runs nothing but this page)."""
    flags = ["--headless", "--disable-gpu", "--hide-scrollbars", "--no-first-run", "--disable-extensions",
             *(["--no-sandbox"] if os.geteuid() == 0 else []), f"--user-data-dir={page.parent / 'chromium'}"]
    return subprocess.run([chromium(), *flags, *args, page.as_uri()], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module", params=["seed", "real-world"])
def grid(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path, dict]:
    name = request.param
    work = tmp_path_factory.mktemp(name)
    proc = subprocess.run([sys.executable, "-m", "harness", "run", str(REPO / "matrices" / f"{name}.yaml"), "-q",
                           "--out", "results", "--html", "grid.html"], capture_output=True, text=True, cwd=work,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=3600)
    assert proc.returncode in (0, 1), proc.stdout[-3000:] + proc.stderr[-3000:]  # 1: a cell not as expected
    records = [json.loads(line) for line in (work / "results" / name / "results.jsonl").read_text().splitlines()]
    return name, work / "grid.html", {r["cell_id"]: r for r in records if "cell_id" in r}


def mark(record: dict) -> str:
    if record["outcome"] is None:
        return "skipped"
    if record["outcome"] != record["expected"]:
        return "unexpected"
    return "bug" if record["bug"] else "expected"


def test_the_rendered_grid_has_every_cell_with_its_outcome_mark_and_link(grid: tuple[str, Path, dict]) -> None:
    _, page, records = grid
    proc = browse(page, "--dump-dom")
    assert proc.returncode == 0 and "</html>" in proc.stdout, proc.stderr[-2000:]
    dom = grid_dom.read(proc.stdout)
    assert sorted(c.cell_id for c in dom.cells) == sorted(records)
    for cell in dom.cells:
        record = records[cell.cell_id]
        outcome = record["outcome"] or "skipped"
        assert f"o-{outcome}" in cell.classes and f"m-{mark(record)}" in cell.classes, (cell.cell_id, cell.classes)
        assert cell.href == f"#cell-{cell.cell_id}" and f"cell-{cell.cell_id}" in dom.sections
    assert dom.texts["showing"] == f"{len(records)} cells"  # the page's script ran (it writes this)
    assert dom.fetched == []  # nothing to fetch: the page is the one file
    assert "ldmatrix show" in proc.stdout and f"--results {page.parent / 'results'}" in proc.stdout


def test_the_grid_renders_to_png(grid: tuple[str, Path, dict]) -> None:
    name, page, records = grid
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    rows = len({(r["axes"].get("binary"), r["axes"].get("strategy"), r["axes"].get("nix_ld"), r["axes"].get("env"),
                 r["axes"].get("launch"), r["axes"].get("libs")) for r in records.values()})
    columns = len({r["axes"].get("nixpkgs") or r["axes"].get("glibc") for r in records.values()})
    width = max(WIDTH, 600 + 175 * columns)
    height = min(16000, 900 + 24 * rows)
    shots = {f"grid-{name}.png": height, f"grid-{name}-top.png": 1200}
    for file, h in shots.items():
        target = ARTIFACTS / file
        proc = browse(page, f"--screenshot={target}", f"--window-size={width},{h}")
        assert proc.returncode == 0 and target.is_file(), proc.stderr[-2000:]
        data = target.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
