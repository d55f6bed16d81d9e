"""A one-shot result that any number of callers can wait for, each with its own Deferred.

Handing out fresh Deferreds means a failure nobody asked about is never reported as an
"Unhandled error in Deferred".
"""

from __future__ import annotations

from typing import Any, List, Optional

from twisted.internet.defer import Deferred, fail, succeed
from twisted.python.failure import Failure

__all__ = ["Observer"]


class Observer:
    """Remembers one outcome; :meth:`observe` returns a Deferred for it, before or after."""

    def __init__(self) -> None:
        self._waiters: List[Deferred] = []
        self._result: Any = None
        self.fired = False

    def observe(self) -> Deferred:
        """A new Deferred that fires with the outcome (at once if it is known)."""
        if not self.fired:
            waiter: Deferred = Deferred()
            self._waiters.append(waiter)
            return waiter
        if isinstance(self._result, Failure):
            return fail(self._result)
        return succeed(self._result)

    def fire(self, result: Any) -> None:
        """Set the outcome (a value or a ``Failure``); later calls are ignored."""
        if self.fired:
            return
        self.fired = True
        self._result = result
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if isinstance(result, Failure):
                waiter.errback(result)
            else:
                waiter.callback(result)

    @property
    def result(self) -> Optional[Any]:
        """The outcome, or ``None`` while there is none."""
        return self._result
