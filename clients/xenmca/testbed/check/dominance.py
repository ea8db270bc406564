"""Offline dominance counting in O((n + m) log n): for each query (a, b), how many points
(x, y) have x > a and y < b. A Fenwick tree over the ys, points fed in by falling x."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence


class Fenwick:
    """Counts over positions 0..size-1: add one at a position, sum a prefix."""

    def __init__(self, size: int) -> None:
        self._tree = [0] * (size + 1)

    def add(self, position: int) -> None:
        i = position + 1
        while i < len(self._tree):
            self._tree[i] += 1
            i += i & -i

    def prefix(self, length: int) -> int:
        """How many were added at positions below `length`."""
        total, i = 0, length
        while i > 0:
            total += self._tree[i]
            i -= i & -i
        return total


def count_dominated(
    points: Sequence[tuple[int, int]], queries: Sequence[tuple[int, int]]
) -> list[int]:
    """For each query (a, b): the number of points (x, y) with x > a and y < b."""
    ys = sorted({y for _, y in points})
    tree = Fenwick(len(ys))
    by_x = sorted(points, key=lambda p: p[0], reverse=True)
    counts = [0] * len(queries)
    fed = 0
    for i in sorted(range(len(queries)), key=lambda i: queries[i][0], reverse=True):
        a, b = queries[i]
        while fed < len(by_x) and by_x[fed][0] > a:
            tree.add(bisect_left(ys, by_x[fed][1]))
            fed += 1
        counts[i] = tree.prefix(bisect_left(ys, b))
    return counts
