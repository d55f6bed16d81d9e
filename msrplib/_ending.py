"""Why a session ended: what :attr:`MSRPSession.closed <msrplib.session.MSRPSession.closed>`
fires with, so that a SIP stack can tell a BYE it sent from a peer that vanished."""

from __future__ import annotations

import enum
from typing import Optional

from twisted.internet.error import ConnectionDone
from twisted.python.failure import Failure

__all__ = ["EndReason", "SessionEnded"]


class EndReason(str, enum.Enum):
    """Who or what ended a session."""

    #: Our ``shutdown()``: everything due was sent and answered, or the peer went silent
    #: for ``shutdown_timeout`` seconds (then ``error`` says so).
    SHUTDOWN = "shutdown"
    #: Our ``abort()``: ended at once, with what was under way failed.
    ABORTED = "aborted"
    #: The peer closed the connection cleanly.
    PEER = "peer"
    #: The connection failed: reset, a broken chunk from the peer, a keepalive unanswered.
    ERROR = "error"


class SessionEnded:
    """How a session ended: ``why`` (an :class:`EndReason`) and ``error``, the exception
    behind it (``None`` for an ending that went as planned)."""

    __slots__ = ("why", "error")

    def __init__(self, why: EndReason, error: Optional[BaseException] = None) -> None:
        self.why = why
        self.error = error

    @classmethod
    def from_connection(cls, reason: Failure) -> SessionEnded:
        """The ending of a connection that closed without our asking: a clean close is
        the peer's; anything else is an error."""
        if reason.check(ConnectionDone):
            return cls(EndReason.PEER)
        return cls(EndReason.ERROR, reason.value)

    def __repr__(self) -> str:
        return "<SessionEnded %s%s>" % (self.why.value,
                                        "" if self.error is None else ": %s" % self.error)

    def __str__(self) -> str:
        text = {EndReason.SHUTDOWN: "shut down", EndReason.ABORTED: "aborted",
                EndReason.PEER: "closed by the peer",
                EndReason.ERROR: "the connection failed"}[self.why]
        return text if self.error is None else "%s: %s" % (text, self.error)
