"""``command.sh`` reproduces its cell: for each launch style and each runner, one cell is run, then its
``command.sh`` is run again as written (``sh command.sh``, here as whoever runs the tests, root
included) and its output classified as the run's was; the outcome and proving line must be the
recorded ones. (Run as root, the script used to leave its fresh HOME root's: a bash or Python
launcher could not write its record there, and the printer said "cannot read expect file".)
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from harness.docker import engine as docker_engine
from harness import matrix as matrix_mod
from harness.cache import REPO_ROOT
from harness.model import CommandResult, Launch
from harness.outcome import classify
from harness.session import RunOptions, execute

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(shutil.which("bwrap") is None, reason="needs bubblewrap: apt-get install -y bubblewrap")]

# The start-up printer under nix-ld 2.0.6 (it records what it is passed, through every launcher),
# and the same patched (no nix-ld): one cell per launch style.
SELECT = "c-envprint.{strategy}glibc-2.36"
RUNNERS = ("sandbox", pytest.param("docker", marks=[
    pytest.mark.docker, pytest.mark.skipif(docker_engine.unavailable() is not None,
                                           reason=f"no Docker engine: {docker_engine.unavailable()}")]))


def run_cells(runner: str, out: Path) -> list[tuple[str, dict]]:
    from harness import nixld
    from harness.cache import Cache
    from harness.progress import NullProgress

    supply = nixld.supply([], nixld.archives_from_env(), Cache.default(), NullProgress())
    matrix = matrix_mod.load(REPO_ROOT / "matrices" / "seed.yaml", extra_nix_ld=supply.labels)
    picked: dict[str, tuple[str, dict]] = {}
    for strategy in ("nix-ld-2.0.6.", "patchelf."):
        options = RunOptions(runner=runner, select=SELECT.format(strategy=strategy), out=out / strategy, jobs=2,
                             nix_ld=supply)  # a run starts its directory afresh
        for r in execute(matrix, options):
            style = r.axes["launch"]
            if r.outcome is not None and r.axes["env"] == "nixos-login" and style not in picked:
                picked[style] = (r.cell_id, {"outcome": r.outcome, "evidence": r.evidence,
                                             "folder": r.extra["workdir"]})
    return list(picked.values())


@pytest.mark.parametrize("runner", RUNNERS)
def test_command_sh_reproduces_each_launch_style(runner: str, tmp_path: Path) -> None:
    cells = run_cells(runner, tmp_path / "out")
    assert len(cells) == len(Launch), f"one cell per launch style: {[cell_id for cell_id, _ in cells]}"
    for cell_id, recorded in cells:
        script = Path(recorded["folder"]) / "command.sh"
        started = time.monotonic()
        again = subprocess.run(["sh", str(script)], capture_output=True, text=True, timeout=120, cwd="/",
                               env={"PATH": os.environ["PATH"], **({"DOCKER_HOST": os.environ["DOCKER_HOST"]}
                                                                   if "DOCKER_HOST" in os.environ else {})})
        verdict = classify(CommandResult(again.returncode, again.stdout, again.stderr, time.monotonic() - started))
        assert (verdict.outcome, verdict.evidence) == (recorded["outcome"], recorded["evidence"]), \
            f"{cell_id} ({runner}): sh command.sh gave {verdict}; stderr: {again.stderr[-500:]}"
