"""What an outgoing and an incoming message share: one state, moved only along a table."""

from __future__ import annotations

import enum
from typing import AbstractSet, Any, Callable, Mapping, TypeVar

__all__ = ["state_mover"]

S = TypeVar("S", bound=enum.Enum)


def state_mover(transitions: Mapping[S, AbstractSet[S]]) -> Callable[[Any, S], None]:
    """A ``move(state)`` method for a class whose instances have a ``state`` of an enum
    that moves only as ``transitions`` (each state's allowed next states) allows. A move
    off the table is a bug of the code that moves it: it raises ``RuntimeError`` and
    leaves the state alone. (The table is the method's own: a move runs for every
    message, and a class attribute would be looked up each time.)"""

    def move(self: Any, state: S) -> None:
        if state not in transitions[self.state]:
            raise RuntimeError("%r cannot go from %s to %s"
                               % (self, self.state.name, state.name))
        self.state = state

    move.__doc__ = "Go to ``state``, if the table of moves allows it (else RuntimeError)."
    return move
