"""Run one build command (a sandbox argv) with its whole output in a log and its notable lines as
progress, killed with everything it started when it runs past its time limit."""

from __future__ import annotations

import os
import re
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


def failure(log: Path, entry: Path, rc: int | None, timeout: float, errors: str = r"\berror\b") -> str:
    """A failed build's log set aside beside its entry (``<entry>.failed.log``: the entry's scratch
    goes), and what to say of it: ``(why); log: PATH; last lines: ...``, the last lines those matching
    ``errors`` (a build tool's epilogue after them says nothing), else the last lines."""
    failed = entry.parent / f"{entry.name}.failed.log"
    os.replace(log, failed)
    why = f"timed out after {timeout:.0f} s" if rc is None else f"exit {rc}"
    lines = [line.strip() for line in failed.read_text(errors="replace").splitlines()
             if line.strip() and not line.startswith(("# ", "$ "))]  # ours, not the build's
    wrong = [line for line in lines if re.search(errors, line, re.IGNORECASE)]
    last = " | ".join(wrong[-3:] if wrong else lines[-3:]) or "no output"
    return f"({why}); log: {failed}; last lines: {last}"
