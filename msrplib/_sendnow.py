"""Sending on a TCP socket at once, instead of at the reactor's next turn.

Twisted's TCP transport keeps every write until its reactor next finds the socket writable:
one more turn of the reactor, and two ``epoll_ctl`` calls, before an answer leaves. In a
request/response exchange on loopback that turn is about a quarter of the round trip.
:func:`send_now` hands the bytes to the socket itself when the transport holds nothing
unsent (so they cannot overtake earlier bytes), and gives the transport whatever the socket
did not take, or everything when the socket reports an error, which the transport then
meets and reports the usual way.

It reads what Twisted's ``FileDescriptor`` keeps unsent (``dataBuffer`` from ``offset`` on,
and ``_tempDataLen`` more): :func:`can_send_now` checks that a transport is a socket's
``FileDescriptor`` with those (not a wrapper such as TLS, which forwards unknown attributes
to the socket beneath it), and a connection whose transport is not writes the usual way.
"""

from __future__ import annotations

from typing import Any, Sequence

from twisted.internet.abstract import FileDescriptor

__all__ = ["can_send_now", "send_now"]


def can_send_now(transport: Any) -> bool:
    """True when ``transport`` is a Twisted socket transport :func:`send_now` can use."""
    return (isinstance(transport, FileDescriptor)
            and isinstance(getattr(transport, "_tempDataLen", None), int)
            and isinstance(getattr(transport, "dataBuffer", None), bytes)
            and isinstance(getattr(transport, "offset", None), int)
            and callable(getattr(getattr(transport, "socket", None), "sendmsg", None)))


def send_now(transport: Any, parts: Sequence[bytes]) -> None:
    """Send ``parts`` on ``transport``'s socket now when nothing waits before them; what is
    left (all of it, when something waits or the socket fails) goes to ``writeSequence``."""
    if (transport._tempDataLen or transport.offset != len(transport.dataBuffer)
            or not transport.connected or transport.disconnecting):
        transport.writeSequence(parts)
        return
    try:
        sent = transport.socket.sendmsg(parts)
    except OSError:  # full (EAGAIN), or failed: the transport's own write finds out which
        sent = 0
    if sent == sum(map(len, parts)):
        return  # the usual case: the socket took it all
    for index, part in enumerate(parts):
        if sent < len(part):
            transport.writeSequence([part[sent:], *parts[index + 1:]])
            return
        sent -= len(part)
