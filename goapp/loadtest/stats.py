"""Latency recording for the load generator: every sample kept, percentiles exact.

A run of five minutes at 1,000 moves/s with four receivers a move is about 1.2 million
samples: as C doubles in an :class:`array.array` that is 10 MB and no Python objects (a list
of floats would be 1.2 million objects for the generator's garbage collector to walk, and
its pauses would show up as latency). Sorting them once at the end is a fraction of a
second, and the percentiles are exact rather than bucketed.
"""

from __future__ import annotations

import math
from array import array
from typing import Any

__all__ = ["Samples"]


class Samples:
    """Latencies in seconds; :meth:`summary` reports milliseconds."""

    __slots__ = ("_data",)

    def __init__(self) -> None:
        self._data = array("d")

    def add(self, seconds: float) -> None:
        self._data.append(seconds)

    def __len__(self) -> int:
        return len(self._data)

    def extend(self, other: Samples) -> None:
        self._data.extend(other._data)

    def summary(self) -> dict[str, Any]:
        """``{count, p50, p90, p99, p999, max, mean}`` in milliseconds (None when empty)."""
        data = sorted(self._data)
        n = len(data)
        if n == 0:
            return {"count": 0, "p50": None, "p90": None, "p99": None, "p999": None,
                    "max": None, "mean": None}  # fmt: skip

        def pct(q: float) -> float:
            # nearest-rank: the smallest sample with at least q of the samples at or below it
            return round(data[max(0, math.ceil(q * n) - 1)] * 1000, 3)

        return {
            "count": n,
            "p50": pct(0.50),
            "p90": pct(0.90),
            "p99": pct(0.99),
            "p999": pct(0.999),
            "max": round(data[-1] * 1000, 3),
            "mean": round(sum(data) / n * 1000, 3),
        }
