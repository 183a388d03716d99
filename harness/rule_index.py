"""Which rules (``expect`` or ``exclude`` entries) can match a cell, found by the axis values they name.

A matrix with thousands of binaries has thousands of rules like ``when: {binary: b42}``: trying
every rule on every cell is quadratic (11k cells x 11k rules took 104 s). Each rule is filed
under one key it names with plain values (``binary: [a, b]``: under ``binary`` = a and = b);
a rule with no such key (only ``not``, comparisons, ``uses``, or no ``when``) is a candidate for
every cell. A cell's candidates are the rules filed under its own values plus those, in rule
order; each is still asked whether it matches, so the index only skips rules that cannot.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Protocol

# the keys a rule may be filed under, most selective first; a cell's fact for each is one string
INDEXED = ("binary", "strategy", "libs", "nix_ld", "glibc", "env", "launch", "reproducer", "built_in")


class _Matcher(Protocol):
    @property
    def key(self) -> str: ...
    @property
    def values(self) -> tuple[str, ...]: ...
    @property
    def negate(self) -> bool: ...
    @property
    def comparisons(self) -> tuple[tuple[str, tuple[int, ...]], ...]: ...

    def matches(self, value: str | None, facts: Mapping[str, Any]) -> bool: ...


def _filed_under(matchers: Sequence[_Matcher]) -> _Matcher | None:
    plain = {m.key: m for m in matchers if m.values and not m.negate and not m.comparisons and m.key in INDEXED}
    return next((plain[key] for key in INDEXED if key in plain), None)


def matches_all(matchers: Sequence[_Matcher], facts: Mapping[str, Any]) -> bool:
    return all(m.matches(facts.get(m.key), facts) for m in matchers)


class RuleIndex:
    """``candidates(facts)``: the positions of the rules that may match, ascending, each once."""

    def __init__(self, rules: Sequence[Sequence[_Matcher]]):
        self.rules = rules
        self.anywhere: list[int] = []
        self.by: dict[str, dict[str, list[int]]] = {}
        for position, matchers in enumerate(rules):
            matcher = _filed_under(matchers)
            if matcher is None:
                self.anywhere.append(position)
                continue
            table = self.by.setdefault(matcher.key, {})
            for value in dict.fromkeys(matcher.values):
                table.setdefault(value, []).append(position)

    def candidates(self, facts: Mapping[str, Any]) -> Iterator[int]:
        lists = [self.anywhere]
        for key, table in self.by.items():
            value = facts.get(key)
            if value is not None and str(value) in table:
                lists.append(table[str(value)])
        return heapq.merge(*lists) if len(lists) > 1 else iter(lists[0])

    def matching(self, facts: Mapping[str, Any]) -> Iterator[int]:
        """The positions of the rules that match, in order."""
        return (i for i in self.candidates(facts) if matches_all(self.rules[i], facts))

    def first(self, facts: Mapping[str, Any]) -> int | None:
        return next(self.matching(facts), None)
