"""The requests a session wrote and waits for the answers of, with their deadlines.

Sans-IO, like the parser: no reactor. The session hands in the time; the table says when
its next deadline is, and which transactions have run out by a given time, each with the
answer that stands in for the one that did not come (RFC 4975 section 7.1.1: 408 for a
request whose Failure-Report asks for an answer, 200 for one that asked for none).
"""

from __future__ import annotations

from collections import deque
from typing import Any, Callable, Deque, Dict, Iterator, List, Optional, Tuple

from msrplib._chunk import MSRPData

__all__ = ["Transaction", "TransactionTable", "ResponseCallback", "stand_in_response"]

ResponseCallback = Callable[[MSRPData], None]


class Transaction:
    """A request written and waiting for its answer. ``counted``: its Failure-Report asks
    for a 200 (a missing one is a 408), and it counts among the outstanding requests."""

    __slots__ = ("transaction_id", "response_cb", "counted", "message", "size")

    def __init__(self, transaction_id: str, response_cb: Optional[ResponseCallback],
                 counted: bool, message: Any, size: int) -> None:
        self.transaction_id = transaction_id
        self.response_cb = response_cb
        self.counted = counted
        #: The outgoing message the request is a chunk of (or None), and its body size.
        self.message = message
        self.size = size


def stand_in_response(transaction: Transaction) -> MSRPData:
    """The answer that stands in for one that did not come in time: 408 for a counted
    transaction, 200 for one whose Failure-Report asked for no answer."""
    if transaction.counted:
        return MSRPData(transaction.transaction_id, code=408, comment="Request Timeout")
    return MSRPData(transaction.transaction_id, code=200, comment="OK")


class TransactionTable:
    """Transactions by id, their deadlines in the order they were opened (every one has
    the same timeout, so that is their order of expiry), and how many are counted."""

    __slots__ = ("_open", "_deadlines", "outstanding")

    def __init__(self) -> None:
        self._open: Dict[str, Transaction] = {}
        self._deadlines: Deque[Tuple[float, str]] = deque()
        #: Counted transactions open now (``max_outstanding_chunks`` bounds them).
        self.outstanding = 0

    def __len__(self) -> int:
        return len(self._open)

    def __iter__(self) -> Iterator[Transaction]:
        return iter(list(self._open.values()))

    def open(self, transaction: Transaction, deadline: Optional[float]) -> None:
        """Wait for ``transaction``'s answer until ``deadline``; ``None``: its clock starts
        later (:meth:`start_clock`), once its request is all written."""
        self._open[transaction.transaction_id] = transaction
        if deadline is not None:
            self._deadlines.append((deadline, transaction.transaction_id))
        if transaction.counted:
            self.outstanding += 1

    def start_clock(self, transaction_id: str, deadline: float) -> None:
        """Wait for the answer to ``transaction_id``, opened without a deadline, until
        ``deadline`` (later than every deadline set so far: every one has the same
        timeout), unless it was answered already."""
        if transaction_id in self._open:
            self._deadlines.append((deadline, transaction_id))

    def close(self, transaction_id: str) -> Optional[Transaction]:
        """The answer to ``transaction_id`` came: the transaction, or ``None`` when none
        is open by that id (a late or stray answer)."""
        transaction = self._open.pop(transaction_id, None)
        if transaction is None:
            return None
        if transaction.counted:
            self.outstanding -= 1
        deadlines = self._deadlines
        while deadlines and deadlines[0][1] not in self._open:
            deadlines.popleft()
        return transaction

    def next_deadline(self) -> Optional[float]:
        """When the oldest open transaction runs out, or ``None`` when none is open."""
        return self._deadlines[0][0] if self._deadlines else None

    def expired(self, now: float) -> List[Transaction]:
        """The transactions whose deadline passed by ``now``, oldest first; they stay open
        until their stand-in answers close them."""
        expired = []
        for deadline, transaction_id in self._deadlines:
            if deadline > now:
                break
            transaction = self._open.get(transaction_id)
            if transaction is not None:
                expired.append(transaction)
        return expired
