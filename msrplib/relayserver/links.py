"""The relay's connections and what it awaits on them: :class:`Link` and
:class:`Forwarded`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Set, Tuple

from msrplib._chunk import MSRPData
from msrplib._uri import URI
from msrplib.transport import MSRPProtocol

__all__ = ["Link", "Forwarded", "add_count"]


def add_count(counts: Dict[str, int], key: str, change: int) -> None:
    """Add ``change`` to ``counts[key]``, a table of what is under way by key (a user,
    an address) that keeps no key whose count is down to nothing."""
    count = counts.get(key, 0) + change
    if count > 0:
        counts[key] = count
    else:
        counts.pop(key, None)


class Link:
    """One connection of the relay's, accepted or opened to a next hop: the bindings it
    holds, the answers it owes, the connections held back for it, and its times."""

    def __init__(self, protocol: MSRPProtocol, listener: Optional[URI],
                 max_chunk_size: int) -> None:
        self.protocol = protocol
        #: The largest chunk body written to it.
        self.max_chunk_size = max_chunk_size
        #: The URI of the listening port it came to (None for one we opened).
        self.listener = listener
        self.bindings: Set[str] = set()
        #: Our requests on it awaiting an answer, oldest first: transaction id -> what to
        #: do then; ``timer`` wakes up for the oldest; ``awaited_bytes``: what they hold.
        self.pending: Dict[str, Forwarded] = {}
        self.awaited_bytes = 0
        self.timer: Any = None
        #: The links whose reading is held until this one can take more, and whether a
        #: call is waiting for its socket to drain to let them go.
        self.feeds: Set[Link] = set()
        self.drain_watched = False
        #: The links it is held back for (it is one of their feeds), and whether it was
        #: read again for the answers it owed while held.
        self.held_by: Set[Link] = set()
        self.read_for_answers_until = 0.0
        #: Its chunks parsed before it was held back, to forward in order when it is let
        #: go (origin, request, paths, our URI, next hop, user), their body bytes, and
        #: whether their forwarding is due.
        self.parked: List[Tuple[Any, ...]] = []
        self.parked_bytes = 0
        self.replay_due = False
        #: Since when others wait for its socket to drain, and whether that has lasted
        #: so long that they are no longer held for it; whether it is closing.
        self.stalled_since: Optional[float] = None
        self.overwhelmed = False
        self.closing = False
        #: When it was made, when it last carried a request or an awaited answer, and
        #: whether it ever sent a request.
        self.made_at = 0.0
        self.last_traffic = 0.0
        self.spoke = False
        #: The address an accepted connection came from; the user a connection to a next
        #: hop was opened for.
        self.source: Optional[str] = None
        self.opened_for: Optional[str] = None
        #: On a connection to a relay further on: our bindings whose clients that relay
        #: granted an AUTH of theirs over it. Their bindings there live as long as it
        #: does, so it is not closed for being idle while any of ours is. ``None`` (no
        #: set: an idle client's connection costs no more) when there are none.
        self.carries: Optional[Set[str]] = None


@dataclass
class Forwarded:
    """A SEND forwarded (each of its pieces, when it was cut, shares one): where it came
    from, what a failure REPORT on it needs (its headers, not its body), when its answer
    is due, and whether its sender was told of a failure already (once is enough). An
    AUTH forwarded (``answers_back``) is awaited the same way, but its answer, whatever
    it is, goes back to its sender as an answer, and a failure too."""

    origin: Link
    request: MSRPData
    our_uri: URI
    #: When the next hop's answer is due (the reactor's seconds).
    deadline: float
    #: What it counts for in its next hop's ``awaited_bytes``.
    size: int
    reported: bool = False
    #: Whose share of the relay's awaited answers it counts in.
    owner: str = ""
    #: How many times its deadline was put back (its next hop was held back).
    graces: int = 0
    answers_back: bool = False
