"""The Twisted factories that make :class:`~msrplib.transport.MSRPProtocol` connections."""

from __future__ import annotations

from typing import Any, Callable, Optional

from twisted.internet.protocol import ClientFactory, ServerFactory
from twisted.python.failure import Failure

from msrplib._observer import Observer
from msrplib._parser import ParserLimits
from msrplib.transport import MSRPProtocol, TrafficLog

__all__ = ["MSRPClientFactory", "MSRPServerFactory"]


class MSRPClientFactory(ClientFactory):
    """Makes the one protocol of an outgoing connection.

    ``result`` fires with the protocol once it is ready to carry chunks (after the TLS
    handshake for ``msrps``), or with the reason the connection failed.
    """

    def __init__(self, limits: ParserLimits = ParserLimits(),
                 traffic_log: Optional[TrafficLog] = None, clock: Any = None) -> None:
        self.limits = limits
        self.traffic_log = traffic_log
        self.clock = clock
        self.result = Observer()

    def buildProtocol(self, addr: Any) -> MSRPProtocol:
        protocol = MSRPProtocol(self.limits, self.traffic_log, self.clock)
        protocol.factory = self
        protocol.ready.observe().addBoth(self.result.fire)
        return protocol

    def clientConnectionFailed(self, connector: Any, reason: Failure) -> None:
        self.result.fire(reason)


class MSRPServerFactory(ServerFactory):
    """Makes a protocol for every incoming connection and hands each, with the peer's
    address, to ``on_connection``, which may refuse it by answering False (the connection
    is then closed at once)."""

    def __init__(self, on_connection: Callable[[MSRPProtocol, Any], bool],
                 limits: ParserLimits = ParserLimits(),
                 traffic_log: Optional[TrafficLog] = None, clock: Any = None) -> None:
        self.on_connection = on_connection
        self.limits = limits
        self.traffic_log = traffic_log
        self.clock = clock

    def buildProtocol(self, addr: Any) -> Optional[MSRPProtocol]:
        protocol = MSRPProtocol(self.limits, self.traffic_log, self.clock)
        protocol.factory = self
        return protocol if self.on_connection(protocol, addr) else None
