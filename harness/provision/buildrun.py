"""Run one build command (a sandbox argv) with its whole output in a log and its notable lines as
progress, killed with everything it started when it runs past its time limit."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

from harness.progress import Progress

Notable = Callable[[str], "str | None"]  # a line of output -> what progress says of it, None: nothing


def run_logged(argv: list[str], log: Path, progress: Progress, what: str, timeout: float, notable: Notable,
               every: float = 0.0) -> int | None:
    """Run ``argv``, appending its output to ``log``; a line ``notable`` names becomes a progress line
    (at most one per ``every`` seconds). The exit status, or None when it was killed at ``timeout``."""
    with log.open("a") as out:
        out.write(f"# sandbox: {' '.join(argv)}\n")
        out.flush()
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, errors="replace", start_new_session=True)
        timed_out = threading.Event()

        def kill() -> None:
            timed_out.set()
            os.killpg(proc.pid, signal.SIGKILL)

        timer = threading.Timer(timeout, kill)
        timer.start()
        last = 0.0
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                out.write(line)
                said = notable(line)
                if said is not None and time.monotonic() - last >= every:
                    last = time.monotonic()
                    progress.step(f"{what}: {said}")
            rc = proc.wait()
        except BaseException:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise
        finally:
            timer.cancel()
    return None if timed_out.is_set() else rc
