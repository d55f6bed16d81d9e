"""In-memory MSRP for your own trial tests: two bound endpoints with no sockets.

Like ``treq.testing``: the pair talks through Twisted's ``iosim`` and every timer runs on a
``task.Clock``, so a SIP stack can test its MSRP handling deterministically::

    pair = SessionPair()
    pair.alice.send_message(b"hi", "text/plain")
    pair.flush()
    pair.clock.advance(30)      # let response timeouts fire
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

from twisted.internet.task import Clock
from twisted.test import iosim

from msrplib._uri import URI
from msrplib.session import MessageReceiver, MSRPSession, SessionSettings
from msrplib.transport import MSRPProtocol, MSRPTransport

__all__ = ["ALICE_URI", "BOB_URI", "connected_transports", "SessionPair", "CollectingReceiver"]

#: The local URIs of the two in-memory endpoints.
ALICE_URI = "msrp://alice.test:2855/alice-session;tcp"
BOB_URI = "msrp://bob.test:2855/bob-session;tcp"


def connected_transports(clock: Optional[Clock] = None
                         ) -> Tuple[MSRPTransport, MSRPTransport, iosim.IOPump]:
    """Alice's and Bob's bound transports, and the pump that moves bytes between them.

    Call ``pump.flush()`` to deliver everything written so far (and its answers).
    """
    alice_uri, bob_uri = URI.parse(ALICE_URI), URI.parse(BOB_URI)
    clock = clock or Clock()
    alice_protocol, bob_protocol = MSRPProtocol(clock=clock), MSRPProtocol(clock=clock)
    pump = iosim.connect(bob_protocol, iosim.makeFakeServer(bob_protocol),
                         alice_protocol, iosim.makeFakeClient(alice_protocol), clock=clock)
    alice = MSRPTransport(alice_protocol, [alice_uri], [bob_uri])
    bob = MSRPTransport(bob_protocol, [bob_uri], [alice_uri])
    return alice, bob, pump


class SessionPair:
    """Two ``MSRPSession`` objects connected in memory, sharing one ``Clock``.

    ``alice_options`` and ``bob_options`` are extra keyword arguments for each session
    (``receiver``, ``on_incoming_cb``, ``accept_types``...); ``settings`` applies to both.
    """

    def __init__(self, settings: Optional[SessionSettings] = None,
                 alice_options: Optional[Dict[str, Any]] = None,
                 bob_options: Optional[Dict[str, Any]] = None) -> None:
        self.clock = Clock()
        alice, bob, self.pump = connected_transports(self.clock)
        self.alice = MSRPSession(alice, settings=settings, reactor=self.clock,
                                 **(alice_options or {}))
        self.bob = MSRPSession(bob, settings=settings, reactor=self.clock,
                               **(bob_options or {}))

    def flush(self) -> None:
        """Move bytes both ways until neither side has anything more to say."""
        self.pump.flush()


class CollectingReceiver(MessageReceiver):
    """A ``MessageReceiver`` that keeps what it hears, for assertions."""

    def __init__(self, sink: Any = None) -> None:
        self.sink = sink
        self.started: List[Any] = []
        self.received: List[Any] = []
        self.failed: List[Any] = []
        self.refused: List[Any] = []

    def message_started(self, message: Any) -> Any:
        self.started.append(message)
        return self.sink

    def message_received(self, message: Any) -> None:
        self.received.append(message)

    def message_failed(self, message: Any, reason: Any) -> None:
        self.failed.append((message, reason))

    def message_refused(self, chunk: Any, error: Any) -> None:
        self.refused.append((chunk, error))

