"""Ctrl-C during a run: the cells running stop at once, and a second Ctrl-C stops ldmatrix itself.

While ``handling()`` is in force (``session.execute``), SIGINT does not raise in the middle of the
main thread's work. The first one calls ``request()``: every running cell's ``kill`` (registered
with ``watch``) is called, so a sandbox's processes or a container die now, not at their time
limit; each such cell is recorded as interrupted (``CommandResult.interrupted``: an ``error`` saying
so, never an outcome), cells not started are not run, and the session ends with ``Interrupted``
carrying the results so far (the CLI prints them as a grid). A second SIGINT runs the registered
last words (the cells' half-written folders removed) and exits at once with status 130.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

EXIT_STATUS = 130
_lock = threading.Lock()
_requested = threading.Event()
_kills: dict[int, Callable[[], None]] = {}
_last_words: dict[int, Callable[[], None]] = {}
_ids = iter(range(1 << 62))


class Interrupted(KeyboardInterrupt):
    """The run was interrupted; ``results`` are the cells recorded before it stopped."""

    def __init__(self, results: list[Any]):
        super().__init__("interrupted")
        self.results = results


def requested() -> bool:
    return _requested.is_set()


def reset() -> None:
    _requested.clear()


def _kill_all() -> None:
    with _lock:
        kills = list(_kills.values())
    for kill in kills:
        try:
            kill()
        except Exception:  # noqa: BLE001, S110 - one cell that cannot be killed must not keep the others alive
            pass


def request() -> None:
    """Stop every running cell now (from a thread: a signal handler must not wait on a lock)."""
    _requested.set()
    threading.Thread(target=_kill_all, name="ldmatrix-interrupt", daemon=True).start()


@contextmanager
def watch(kill: Callable[[], None]) -> Iterator[Callable[[], bool]]:
    """While a cell runs, ``kill`` is how to stop it; yields: whether it was stopped by an interrupt."""
    stopped = threading.Event()

    def hook() -> None:
        stopped.set()
        kill()

    with _lock:
        key = next(_ids)
        _kills[key] = hook
    try:
        if _requested.is_set():  # interrupted between the check before the cell and now
            hook()
        yield stopped.is_set
    finally:
        with _lock:
            _kills.pop(key, None)


@contextmanager
def last_words(action: Callable[[], None]) -> Iterator[None]:
    """``action`` runs if a second Ctrl-C ends the process before this block ends."""
    with _lock:
        key = next(_ids)
        _last_words[key] = action
    try:
        yield
    finally:
        with _lock:
            _last_words.pop(key, None)


def _handler(signum: int, frame: object) -> None:
    if not _requested.is_set():
        print("\nldmatrix: interrupted: stopping the running cells (Ctrl-C again to stop at once)",
              file=sys.stderr, flush=True)
        request()
        return
    with _lock:
        actions = list(_last_words.values())
    for action in actions:
        try:
            action()
        except Exception:  # noqa: BLE001, S110 - leaving now whatever happens
            pass
    print("ldmatrix: interrupted again: stopped", file=sys.stderr, flush=True)
    os._exit(EXIT_STATUS)


def exit_at_next() -> None:
    """From now on (an interrupted run printing what it has), Ctrl-C ends the process at once."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, lambda signum, frame: os._exit(EXIT_STATUS))


@contextmanager
def handling(enabled: bool = True) -> Iterator[None]:
    """SIGINT as above while the block runs (in the main thread; elsewhere, or not ``enabled``,
    nothing changes: Ctrl-C raises KeyboardInterrupt where the main thread is)."""
    reset()
    if not enabled or threading.current_thread() is not threading.main_thread():
        try:
            yield
        finally:
            reset()
        return
    previous = signal.signal(signal.SIGINT, _handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        reset()
