"""Binding a new connection to a session (RFC 4975 section 5.4), both sides of it.

The active side sends an empty SEND and waits for its 200; the passive side checks the
first chunk's paths, answers, and hands the connection over as an ``MSRPTransport``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, List, Optional

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from msrplib._headers import Headers, format_path
from msrplib._parser import ParserEvent, ParserLimits
from msrplib._paths import request_to_path
from msrplib._rules import is_empty_send, should_respond
from msrplib._uri import URI
from msrplib._chunk import MSRPData, make_response, new_message_id, new_transaction_id
from msrplib.errors import MSRPBindError, MSRPBindSessionTimeout, MSRPError
from msrplib.tls import Fingerprint, check_peer_fingerprint
from msrplib.transport import (DEFAULT_MAX_QUEUED_BYTES, Connection, MSRPProtocol, MSRPTransport,
                               TrafficLog)

__all__ = ["ConnectionSettings", "bind_active", "accept_binding", "check_fingerprint",
           "adopt_logger"]


@dataclass
class ConnectionSettings:
    """The limits of connecting and binding, shared by connectors, acceptors and servers.

    ``connect_timeout``: seconds to open the TCP connection and finish the TLS handshake.
    ``bind_timeout``: seconds ``complete()`` waits for the binding; ``None`` means
    ``MSRPBindSessionTimeout.seconds`` (30) at the time of the call.
    ``parser_limits``: the chunk parser's bounds. ``max_queued_bytes``: inbound bytes a
    transport holds for its reader before it stops reading the socket.
    ``traffic_log``: called as ``traffic_log(direction, chunk)`` (``"in"`` or ``"out"``) for
    every chunk's start line and headers, for a traffic trace; ``None`` for none.
    ``listen_backlog``: connections the kernel queues for a listening port before accepting.
    ``max_unbound_connections``: accepted connections that may wait to bind at once, and
    ``max_unbound_per_source``: of those, from one peer address. Past either, the oldest
    connection that is still silent (it has not delivered its first request) is closed to
    make room; when none is, the new connection is closed.
    ``first_request_timeout``: seconds an accepted connection has to deliver the start line
    and headers of its first request; it is closed past them (a silent connection, or one
    sending what is not MSRP). The bind timeout still bounds the whole wait.
    """

    connect_timeout: float = 10.0
    bind_timeout: Optional[float] = None
    parser_limits: ParserLimits = field(default_factory=ParserLimits)
    max_queued_bytes: int = DEFAULT_MAX_QUEUED_BYTES
    traffic_log: Optional[TrafficLog] = None
    listen_backlog: int = 511
    max_unbound_connections: int = 1024
    max_unbound_per_source: int = 256
    first_request_timeout: float = 10.0

    def bind_seconds(self) -> float:
        """The bind timeout in force now."""
        if self.bind_timeout is None:
            return MSRPBindSessionTimeout.seconds
        return self.bind_timeout


def check_fingerprint(protocol: MSRPProtocol, expected: Optional[Fingerprint]) -> None:
    """Raise ``FingerprintMismatch`` (after closing) if a TLS peer's certificate is not
    the ``expected`` one; nothing to check without TLS or without a fingerprint."""
    if expected is None or not hasattr(protocol.transport, "getPeerCertificate"):
        return
    try:
        check_peer_fingerprint(protocol.transport, expected)
    except MSRPError:
        protocol.transport.abortConnection()
        raise


def bind_active(protocol: Connection, local_path: List[URI], full_remote_path: List[URI],
                reactor: Any, settings: ConnectionSettings) -> Deferred[MSRPTransport]:
    """Send the binding SEND on a ready connection (its TLS peer checked already: see
    :func:`check_fingerprint`); fire with the bound ``MSRPTransport``.

    Fails with ``MSRPBindError`` carrying the peer's code when it refuses,
    ``MSRPBindSessionTimeout`` when it does not answer, or the reason the connection closed.
    """
    tid = new_transaction_id()
    headers = Headers([("To-Path", format_path(request_to_path(local_path, full_remote_path))),
                       ("From-Path", str(local_path[-1])),
                       ("Message-ID", new_message_id()), ("Byte-Range", "1-0/0")])
    result: Deferred[MSRPTransport] = Deferred()
    held: List[ParserEvent] = []

    def receive(event: ParserEvent) -> None:
        if isinstance(event, MSRPData) and event.code is not None and \
                event.transaction_id == tid:
            finish(event)
        else:
            held.append(event)

    def finish(response: MSRPData) -> None:
        timer.cancel()
        if response.code == 200:
            result.callback(MSRPTransport(protocol, local_path, full_remote_path,
                                          settings.max_queued_bytes, held))
        else:
            result.errback(MSRPBindError(
                "the peer refused the binding: %s %s" % (response.code, response.comment or ""),
                code=response.code, comment=response.comment))
            protocol.close()

    def timed_out() -> None:
        result.errback(MSRPBindSessionTimeout(
            "no response to the binding SEND in %s seconds" % settings.bind_seconds()))
        protocol.abort()

    def lost(reason: Failure) -> None:
        if not result.called:
            timer.cancel()
            result.errback(reason)

    timer = reactor.callLater(settings.bind_seconds(), timed_out)
    protocol.set_receiver(receive)
    protocol.lost.observe().addErrback(lost)
    protocol.write_chunk(MSRPData(tid, method="SEND", headers=headers))
    return result


def accept_binding(protocol: Connection, first: ParserEvent, local_path: List[URI],
                   full_remote_path: List[URI], settings: ConnectionSettings,
                   held: List[ParserEvent]) -> MSRPTransport:
    """Bind a connection whose first chunk (``first``) passed the path checks.
    ``local_path`` is our relays' path (if any) and our URI.

    An empty binding SEND is answered 200 here (as its Failure-Report allows); a first
    SEND that carries content is left, unanswered, as the transport's first chunk, so that
    whoever reads it answers it like any other. ``held`` are events that came after it.
    """
    if not isinstance(first, MSRPData) or first.contflag != "$" or not is_empty_send(first):
        held = [first] + held  # its reader answers it, as any other chunk
    elif should_respond(first, 200):
        protocol.write_chunk(make_response(first, 200))
    return MSRPTransport(protocol, local_path, full_remote_path, settings.max_queued_bytes,
                         held)


def adopt_logger(transport: MSRPTransport, logger: Optional[Logger]) -> MSRPTransport:
    """Have ``transport``, its protocol and the session over it log through ``logger``
    (the seed API's ``logger`` argument of connectors, acceptors and ``MSRPServer``), when
    one was given; without one each logs through its own ``twisted.logger.Logger``."""
    if logger is not None:
        transport.logger = transport.log = transport.protocol.log = logger
    return transport
