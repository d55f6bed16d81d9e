"""MSRP over WebSocket (RFC 7977), on autobahn.

Browsers speak MSRP only over WebSocket, with the ``msrp`` subprotocol, to a relay that
carries their sessions on over TCP or TLS. Here the same :class:`~msrplib.transport.
MSRPProtocol` that runs on a socket runs on a WebSocket connection: :class:`WebSocketLink`
is the transport it writes to, which sends each chunk as one WebSocket message (a
streamed chunk's pieces as the frames of its one message) and hands each message
received to the protocol, which must find exactly whole chunks in it: a message that ends
inside a chunk closes the connection, as RFC 7977 allows nothing else. Reading and
writing keep the socket's backpressure.

:func:`connect_websocket` opens a client connection (``ws``, or ``wss`` with TLS checked
as for a relay); ``msrplib.connect`` uses it for a relay URI whose transport is ``ws`` or
``wss`` (``msrp://relay.example.com:443;ws``, ``msrps://relay.example.com;wss``).
:class:`MSRPWebSocketServerFactory` is the listening side, which the relay server uses.
"""

from __future__ import annotations

from typing import Any, Callable, List, Optional, Tuple

from autobahn.twisted.websocket import (WebSocketClientFactory, WebSocketClientProtocol,
                                        WebSocketServerFactory, WebSocketServerProtocol)
from autobahn.websocket.types import ConnectionDeny
from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.interfaces import IProtocolNegotiationFactory
from twisted.python.failure import Failure
from zope.interface import implementer

from msrplib._parser import ParserLimits
from msrplib._speedups import tls_factory
from msrplib._uri import URI
from msrplib.errors import MSRPConnectTimeout
from msrplib.transport import MSRPProtocol, TrafficLog

__all__ = ["MSRP_SUBPROTOCOL", "MAX_WEBSOCKET_CHUNK", "WebSocketLink", "connect_websocket",
           "MSRPWebSocketServerFactory", "is_websocket"]

#: The WebSocket subprotocol of MSRP (RFC 7977).
MSRP_SUBPROTOCOL = "msrp"
#: The largest chunk body sent over WebSocket: the peer gathers a whole message before it
#: reads any of it, so a chunk must stay what a parser takes whole (its buffered body).
MAX_WEBSOCKET_CHUNK = ParserLimits().max_buffered_body


def _message_limit(limits: ParserLimits) -> int:
    """The largest WebSocket message taken: one chunk, headers and body, as the parser
    takes it whole (a longer one fails the connection before it is all buffered)."""
    return limits.max_header_block + limits.max_buffered_body + 1024


def is_websocket(uri: URI) -> bool:
    """Whether ``uri`` names a WebSocket transport (``ws`` or ``wss``)."""
    return uri.transport.lower() in ("ws", "wss")


class WebSocketLink:
    """The transport an :class:`MSRPProtocol` writes to over a WebSocket connection
    (``socket`` is autobahn's protocol)."""

    #: Each write is a whole chunk (or part of a streamed one): see ``_speedups``.
    frames_writes = True

    def __init__(self, socket: Any) -> None:
        self.socket = socket
        self.msrp: Optional[MSRPProtocol] = None
        self.disconnecting = False
        # Whether a streamed chunk's message is being sent, frame by frame.
        self._in_message = False

    # What MSRPProtocol writes.

    def write(self, data: bytes) -> None:
        self.writeSequence((data,))

    def writeSequence(self, parts: Any) -> None:
        """Send ``parts``: a whole chunk as one WebSocket message; a streamed chunk's
        start, body pieces and end-line as the frames of one message, each sent as it
        comes, so that the socket's backpressure reaches the writer."""
        if self.disconnecting or self.socket.state != self.socket.STATE_OPEN:
            return  # closing (the peer's Close frame came): dropped, as a closed socket does
        msrp = self.msrp
        data = b"".join(parts)
        if msrp is not None and msrp.body_open:
            if not self._in_message:
                self._in_message = True
                self.socket.beginMessage(isBinary=True)
            if data:
                self.socket.sendMessageFrame(data)
        elif self._in_message:
            self._in_message = False
            self.socket.sendMessageFrame(data)  # the end-line
            self.socket.endMessage()
        elif data:
            self.socket.sendMessage(data, isBinary=True)

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        self.socket.transport.registerProducer(producer, streaming)

    def unregisterProducer(self) -> None:
        self.socket.transport.unregisterProducer()

    def pauseProducing(self) -> None:
        self.socket.transport.pauseProducing()

    def resumeProducing(self) -> None:
        self.socket.transport.resumeProducing()

    def loseConnection(self) -> None:
        if not self.disconnecting:
            self.disconnecting = True
            self.socket.sendClose(1000)

    def abortConnection(self) -> None:
        self.disconnecting = True
        self.socket.transport.abortConnection()

    def getPeer(self) -> Any:
        return self.socket.transport.getPeer()

    def getHost(self) -> Any:
        return self.socket.transport.getHost()

    # What the WebSocket connection tells.

    def message(self, payload: bytes) -> None:
        """A WebSocket message: whole chunks, or the connection is closed."""
        msrp = self.msrp
        if msrp is None:
            return
        msrp.dataReceived(payload)
        if msrp.parser.in_chunk and not self.disconnecting:
            msrp.log.warn("closing {peer}: a WebSocket message that ends inside a chunk",
                          peer=self.getPeer())
            self.abortConnection()

    def closed(self, clean: bool) -> None:
        was_closing, self.disconnecting = self.disconnecting, True
        if self.msrp is not None:
            self.msrp.connectionLost(Failure(ConnectionDone() if clean or was_closing
                                             else ConnectionLost()))
            self.msrp = None


def _start(socket: Any, make: Callable[[], MSRPProtocol]) -> WebSocketLink:
    link = WebSocketLink(socket)
    msrp = make()
    link.msrp = msrp
    msrp.makeConnection(link)
    return link


class _Linked:
    """What both ends do with their :class:`WebSocketLink`: hand it each message, and
    tell it of the close (or, before there is one, :meth:`closed_early`)."""

    link: Optional[WebSocketLink] = None

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        if self.link is not None:
            self.link.message(payload)

    def onClose(self, wasClean: bool, code: Any, reason: Any) -> None:
        if self.link is not None:
            self.link.closed(wasClean)
        else:
            self.closed_early(reason)

    def closed_early(self, reason: Any) -> None:
        """The connection closed before a link was made for it."""


# (The ignores: mypy finds two of autobahn's own base classes at odds with each other.)
class _ClientSocket(_Linked, WebSocketClientProtocol):  # type: ignore[misc]
    transport: Any
    factory: Any

    def onOpen(self) -> None:
        factory = self.factory
        if self.websocket_protocol_in_use != MSRP_SUBPROTOCOL:
            factory.result.errback(ConnectionLost("the server took no 'msrp' subprotocol"))
            self.transport.abortConnection()
            return
        self.link = _start(self, factory.make_protocol)
        assert self.link.msrp is not None
        factory.result.callback(self.link.msrp)

    def closed_early(self, reason: Any) -> None:
        if not self.factory.result.called:
            self.factory.result.errback(ConnectionLost(
                "the WebSocket connection closed before it opened: %s" % (reason,)))


class _ClientFactory(WebSocketClientFactory):
    protocol = _ClientSocket
    result: Deferred[MSRPProtocol]
    make_protocol: Callable[[], MSRPProtocol]

    def clientConnectionFailed(self, connector: Any, reason: Failure) -> None:
        if not self.result.called:
            self.result.errback(reason)


def connect_websocket(uri: URI, tls_options: Any, reactor: Any, limits: ParserLimits,
                      timeout: float, traffic_log: Optional[TrafficLog] = None
                      ) -> Tuple[Deferred[MSRPProtocol], Any]:
    """Open a WebSocket connection with the ``msrp`` subprotocol to ``uri`` (``ws``, or
    ``wss`` with ``tls_options``). Returns ``(deferred, connector)``: the Deferred fires
    with the ``MSRPProtocol`` on it (logging its chunks to ``traffic_log``), or fails with
    ``MSRPConnectTimeout`` after ``timeout`` seconds or the connection's error."""
    secure = uri.transport.lower() == "wss" or uri.use_tls
    host, port = uri.host or "", uri.effective_port
    url = "%s://%s:%d/" % ("wss" if secure else "ws", "[%s]" % host if ":" in host else host,
                            port)
    factory = _ClientFactory(url, protocols=[MSRP_SUBPROTOCOL])
    factory.setProtocolOptions(autoFragmentSize=0, maxMessagePayloadSize=_message_limit(limits),
                               maxFramePayloadSize=_message_limit(limits))
    factory.result = Deferred()
    factory.make_protocol = lambda: MSRPProtocol(limits, traffic_log, reactor)
    wrapped = tls_factory(tls_options, True, factory, reactor) if secure else factory
    connector = reactor.connectTCP(host, port, wrapped)

    def timed_out() -> None:
        if not factory.result.called:
            factory.result.errback(MSRPConnectTimeout(
                "no WebSocket connection to %s within %s seconds" % (url, timeout)))
            connector.disconnect()

    timer = reactor.callLater(timeout, timed_out)

    def stop(outcome: Any) -> Any:
        if timer.active():
            timer.cancel()
        return outcome

    result: Deferred[MSRPProtocol] = factory.result
    return result.addBoth(stop), connector


class _ServerSocket(_Linked, WebSocketServerProtocol):  # type: ignore[misc]
    transport: Any
    factory: Any

    def onConnect(self, request: Any) -> str:
        if MSRP_SUBPROTOCOL not in request.protocols:
            raise ConnectionDeny(ConnectionDeny.NOT_ACCEPTABLE,
                                 "only the msrp subprotocol is spoken here")
        return MSRP_SUBPROTOCOL

    def onOpen(self) -> None:
        factory = self.factory
        link = _start(self, factory.make_protocol)
        assert link.msrp is not None
        if factory.on_connection(link.msrp):
            self.link = link
        else:
            link.msrp = None
            self.transport.abortConnection()


@implementer(IProtocolNegotiationFactory)
class MSRPWebSocketServerFactory(WebSocketServerFactory):
    """Accepts WebSocket connections with the ``msrp`` subprotocol (others are refused
    at the handshake) and hands each one's :class:`MSRPProtocol` to ``on_connection``,
    which may refuse it by answering False.

    Over TLS it takes ``http/1.1`` by ALPN: a browser always offers ALPN, and without a
    protocol to choose, the TLS handshake fails with an internal error alert (seen with
    chromium)."""

    protocol = _ServerSocket

    def acceptableProtocols(self) -> List[bytes]:
        """The ALPN protocols spoken here: HTTP/1.1, for the WebSocket handshake."""
        return [b"http/1.1"]

    def __init__(self, on_connection: Callable[[MSRPProtocol], bool],
                 limits: ParserLimits, reactor: Any,
                 traffic_log: Optional[TrafficLog] = None) -> None:
        super().__init__(None, protocols=[MSRP_SUBPROTOCOL])
        self.setProtocolOptions(autoFragmentSize=0, maxMessagePayloadSize=_message_limit(limits),
                                maxFramePayloadSize=_message_limit(limits))
        self.on_connection = on_connection
        self.make_protocol = lambda: MSRPProtocol(limits, traffic_log, reactor)
