"""Contenders timed in alternating rounds, compared round by round.

On a shared machine load comes and goes in bursts longer than one call: timing each
contender's samples in a row lets one burst land on one side only. Here every round runs
each contender once (the order reversed every other round, so neither always goes first),
and each comparison is the ratio within one round; a run reports the median of those
ratios and their range, which shows how much the machine moved underneath.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Rounds:
    """Seconds per call, one entry per completed round for every contender."""

    times: dict[str, list[float]] = field(default_factory=dict)

    @property
    def count(self) -> int:
        return min((len(values) for values in self.times.values()), default=0)

    def ratios(self, numerator: str, denominator: str) -> list[float]:
        """times[numerator] / times[denominator], round by round."""
        return [n / d for n, d in zip(self.times[numerator], self.times[denominator],
                                      strict=True)]

    def median(self, name: str) -> float:
        return statistics.median(self.times[name])


def alternate(contenders: dict[str, Callable[[], Any]], rounds: int,
              budget_s: float | None = None) -> Rounds:
    """Run `rounds` rounds (fewer once `budget_s` is spent, but at least one); no warm-up
    here: warm each contender before."""
    result = Rounds({name: [] for name in contenders})
    names = list(contenders)
    start = time.perf_counter()
    for index in range(rounds):
        for name in names if index % 2 == 0 else names[::-1]:
            began = time.perf_counter()
            contenders[name]()
            result.times[name].append(time.perf_counter() - began)
        if budget_s is not None and time.perf_counter() - start > budget_s:
            break
    return result


def spread(values: list[float], unit: str = "x") -> str:
    """'1.23x (1.10-1.31, 5 rounds)': the median and the range of per-round values."""
    if not values:
        return "n/a"
    low, high = min(values), max(values)
    rounds = f"{len(values)} round{'s' if len(values) != 1 else ''}"
    return f"{statistics.median(values):.2f}{unit} ({low:.2f}-{high:.2f}, {rounds})"


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"
