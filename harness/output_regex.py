"""A matrix's ``expect: {output: REGEX}``, matched with RE2: time linear in the output, whatever the pattern.

Python's ``re`` backtracks: ``^(a+)+$`` against a hundred ``a`` and a ``!`` would not end in our
lifetime, and it cannot be interrupted. RE2 (google-re2) never backtracks, so a match costs time
in proportion to the output (at most 1 MiB of stdout and of stderr are kept) and memory up to
``MAX_MEMORY`` per pattern. What RE2 cannot do in bounded time (backreferences, look-around) is
refused when the matrix is loaded, in one line. ``^`` and ``$`` match at each line, as before.
"""

from __future__ import annotations

import functools

import re2

MAX_MEMORY = 8 << 20  # RE2's own bound per compiled pattern (its default)
_UNSUPPORTED = (
    ("invalid escape sequence: \\1", "a backreference (\\1 ...) needs backtracking, which RE2 does not do"),
    ("invalid escape sequence: \\Z", "write \\z for the end of the text"),
    ("invalid perl operator: (?=", "look-ahead needs backtracking, which RE2 does not do"),
    ("invalid perl operator: (?!", "look-ahead needs backtracking, which RE2 does not do"),
    ("invalid perl operator: (?<", "look-behind needs backtracking, which RE2 does not do"),
)


class RegexError(ValueError):
    """Why a pattern cannot be matched (RE2's words, and what to write instead)."""


@functools.lru_cache(maxsize=256)
def compile_pattern(pattern: str):
    """The pattern, multi-line, compiled by RE2; RegexError says why not."""
    options = re2.Options()
    options.log_errors = False  # RE2 would print its own line on stderr
    options.max_mem = MAX_MEMORY
    try:
        return re2.compile(f"(?m){pattern}", options)
    except re2.error as err:
        text = str(err.args[0] if err.args else err)
        if text.startswith(("b'", 'b"')):
            text = text[2:-1].replace("\\\\", "\\")
        hint = next((why for prefix, why in _UNSUPPORTED if text.startswith(prefix)), "")
        raise RegexError(f"{text}{'; ' + hint if hint else ''} (RE2 syntax: "
                         "github.com/google/re2/wiki/Syntax)") from None


def search(pattern: str, text: str) -> tuple[int, int] | None:
    """Where ``pattern`` first matches in ``text`` (character offsets), or None."""
    match = compile_pattern(pattern).search(text)
    return (match.start(), match.end()) if match else None
