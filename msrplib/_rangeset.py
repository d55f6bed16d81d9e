"""Sets of byte ranges: what of a message arrived, or what the peer reported it received."""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from typing import List, Tuple

__all__ = ["RangeSet"]


class RangeSet:
    """Disjoint, sorted half-open byte intervals ``[start, end)``, merged when they touch.

    Adding a range costs a binary search and one merge, so pieces that arrive in any order
    are put together in time that grows with the log of how many gaps there are, not with
    the number of pieces so far.
    """

    __slots__ = ("_starts", "_ends", "count")

    def __init__(self) -> None:
        self._starts: List[int] = []
        self._ends: List[int] = []
        #: How many bytes the set holds.
        self.count = 0

    def __len__(self) -> int:
        """How many intervals, apart from each other, the set holds."""
        return len(self._starts)

    @property
    def ranges(self) -> List[Tuple[int, int]]:
        """The intervals, in order."""
        return list(zip(self._starts, self._ends))

    def add(self, start: int, end: int) -> List[Tuple[int, int]]:
        """Add ``[start, end)``; return the parts of it that were not in the set yet."""
        if end <= start:
            return []
        starts, ends = self._starts, self._ends
        if not ends or ends[-1] <= start:
            # At or past the end: in-order arrival, the usual case, needs no search.
            if ends and ends[-1] == start:
                ends[-1] = end
            else:
                starts.append(start)
                ends.append(end)
            self.count += end - start
            return [(start, end)]
        first = bisect_left(ends, start)  # the first interval that reaches ``start``
        past = bisect_right(starts, end)  # the first that starts after ``end``
        new = []
        cursor = start
        for index in range(first, past):
            if starts[index] > cursor:
                new.append((cursor, starts[index]))
            cursor = max(cursor, ends[index])
        if cursor < end:
            new.append((cursor, end))
        if first < past:
            start = min(start, starts[first])
            end = max(end, ends[past - 1])
        starts[first:past] = [start]
        ends[first:past] = [end]
        self.count += sum(high - low for low, high in new)
        return new

    def covers(self, total: int) -> bool:
        """True when the set is exactly ``[0, total)`` (or empty for ``total`` 0)."""
        if total == 0:
            return not self._starts
        return len(self._starts) == 1 and self._starts[0] == 0 and self._ends[0] == total

    @property
    def end(self) -> int:
        """The end of the last interval: 0 when the set is empty."""
        return self._ends[-1] if self._ends else 0

    @property
    def prefix(self) -> int:
        """How many bytes from the start the set holds without a gap."""
        return self._ends[0] if self._starts and self._starts[0] == 0 else 0
