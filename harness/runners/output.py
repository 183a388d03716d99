"""A cell's stdout and stderr, kept up to a bound: the head and the tail, the middle counted.

Both runners read output through ``Bounded``: a program that prints forever costs the harness a
fixed amount of memory, the results stay small, and the cut is visible: a marker line where bytes
were dropped, and the number of dropped bytes in the CommandResult. The head keeps a loader's
messages (they come first), the tail a reproducer's closing ``LDMATRIX-CHECK`` line.
"""

from __future__ import annotations

TAIL_SHARE = 4  # a quarter of the bound is the tail


class Bounded:
    def __init__(self, limit: int, name: str) -> None:
        self.name = name
        self.head_limit = limit - limit // TAIL_SHARE
        self.tail_limit = limit // TAIL_SHARE
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0

    def feed(self, data: bytes) -> None:
        self.total += len(data)
        room = self.head_limit - len(self.head)
        if room > 0:
            self.head += data[:room]
            data = data[room:]
        if data:
            self.tail += data
            if len(self.tail) > 2 * self.tail_limit:  # trim now and then, not on every chunk
                del self.tail[:-self.tail_limit]

    def skip(self, count: int) -> None:
        """Count ``count`` bytes that were not read (the middle of a file read as head and tail)."""
        if count > 0:
            self.total += count
            if self.tail:  # bytes fed before the gap are not the tail any more
                self.tail.clear()

    def result(self) -> tuple[str, int]:
        """The text kept (with a marker line where bytes were dropped) and how many bytes were dropped."""
        tail = bytes(self.tail[-self.tail_limit:]) if self.tail_limit else b""
        if self.total == len(self.head) + len(tail):
            return (bytes(self.head) + tail).decode(errors="replace"), 0
        newline = tail.find(b"\n")
        if 0 <= newline < len(tail) - 1:  # start the tail at a line
            tail = tail[newline + 1:]
        dropped = self.total - len(self.head) - len(tail)
        head = bytes(self.head).decode(errors="replace")
        marker = f"[ldmatrix: {dropped} bytes of {self.name} cut here; the output was {self.total} bytes]\n"
        text = head + ("" if head.endswith("\n") or not head else "\n") + marker + tail.decode(errors="replace")
        return text, dropped
