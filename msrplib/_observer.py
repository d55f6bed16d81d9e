"""Small waiting helpers: a one-shot result that any number of callers can wait for, each
with its own Deferred (so a failure nobody asked about is never reported as an "Unhandled
error in Deferred"), and Deferreds for responses by transaction id."""

from __future__ import annotations

from typing import Any, Dict, List, Optional

from twisted.internet.defer import Deferred, fail, succeed
from twisted.python.failure import Failure

__all__ = ["Observer", "ResponseWaiters"]


class Observer:
    """Remembers one outcome; :meth:`observe` returns a Deferred for it, before or after."""

    def __init__(self) -> None:
        self._waiters: List[Deferred[Any]] = []
        self._result: Any = None
        self.fired = False

    def observe(self) -> Deferred[Any]:
        """A new Deferred that fires with the outcome (at once if it is known)."""
        if not self.fired:
            waiter: Deferred[Any] = Deferred()
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


class ResponseWaiters:
    """Deferreds for responses, by transaction id, for requests sent outside a session."""

    def __init__(self) -> None:
        self._waiting: Dict[str, Deferred[Any]] = {}

    def expect(self, transaction_id: str) -> Deferred[Any]:
        """A Deferred for the response to ``transaction_id``; cancel it to stop waiting."""
        def cancel(_: Deferred[Any]) -> None:
            self._waiting.pop(transaction_id, None)

        waiter: Deferred[Any] = Deferred(cancel)
        self._waiting[transaction_id] = waiter
        return waiter

    def __bool__(self) -> bool:
        """True while some response is awaited."""
        return bool(self._waiting)

    def deliver(self, transaction_id: str, response: Any) -> bool:
        """Fire the waiter for ``transaction_id`` with ``response``; False if none waits."""
        waiter = self._waiting.pop(transaction_id, None)
        if waiter is None:
            return False
        waiter.callback(response)
        return True

    def fail_all(self, reason: Failure) -> None:
        """Fail every waiter (the connection closed)."""
        waiting, self._waiting = self._waiting, {}
        for waiter in waiting.values():
            waiter.errback(reason)
