"""Edges of MSRP over WebSocket found by review (each test failed on 139806d)."""

from autobahn.twisted.websocket import WebSocketClientFactory
from twisted.internet import reactor, task
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.trial import unittest

from msrplib._parser import ParserLimits
from msrplib.websocket import MSRPWebSocketServerFactory, _ServerSocket
from tests.test_websocket import WebSocketRelayHarness, _Probe


class ReviewProbe(WebSocketRelayHarness, unittest.TestCase):
    def probe(self, port):
        factory = WebSocketClientFactory("ws://127.0.0.1:%d/" % port, protocols=["msrp"])
        factory.protocol = _Probe
        factory.opened, factory.closed = Deferred(), Deferred()
        connector = reactor.connectTCP("127.0.0.1", port, factory)
        self.addCleanup(connector.disconnect)
        return factory

    @inlineCallbacks
    def test_an_endless_message_is_not_buffered_without_bound(self):
        """One WebSocket message that never ends: autobahn's maxMessagePayloadSize and
        maxFramePayloadSize are 0 (no limit), and the MSRP parser sees nothing until the
        message is whole, so the relay buffers all of it, before any AUTH. Here even its
        first line is not MSRP: over TCP the parser closes at once. 32 MiB in, the
        connection must have been closed."""
        relay, tcp, ws = self.start_ws_relay()
        factory = self.probe(ws.port)
        socket = yield factory.opened
        socket.beginMessage(isBinary=True)
        socket.beginMessageFrame(1 << 30)  # announces 1 GiB
        socket.sendMessageFrameData(b"NOT MSRP AT ALL\r\n")
        piece = b"x" * (256 * 1024)
        for _ in range(128):  # 32 MiB
            if factory.closed.called or socket.state != socket.STATE_OPEN:
                break
            socket.sendMessageFrameData(piece)
            yield task.deferLater(reactor, 0.005, lambda: None)
        yield factory.closed.addTimeout(5, reactor)


class WritesAfterCloseTests(unittest.TestCase):
    @inlineCallbacks
    def test_a_write_after_the_peer_sent_close_is_dropped(self):
        """The peer's Close frame arrives: autobahn leaves STATE_OPEN at once but tells
        onClose only when TCP is gone (a reactor turn later at least; up to
        closeHandshakeTimeout/serverConnectionDropTimeout for a client). A chunk written
        then (say the relay forwarding to this client from another connection) goes to
        sendMessage, which raises autobahn's Disconnected into the writer."""
        self.addCleanup(task.deferLater, reactor, 1.1, lambda: None)  # autobahn's timers
        errors = []

        class Socket(_ServerSocket):
            def onCloseFrame(self, code, reason):
                result = super().onCloseFrame(code, reason)
                if self.link is not None and self.link.msrp is not None:
                    try:
                        self.link.msrp.write_raw(b"MSRP x 200 OK\r\n-------x$\r\n")
                    except Exception as error:
                        errors.append(error)
                return result

        accepted = []
        factory = MSRPWebSocketServerFactory(lambda p: accepted.append(p) or True,
                                             ParserLimits(), reactor)
        factory.protocol = Socket
        port = reactor.listenTCP(0, factory, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        client = WebSocketClientFactory("ws://127.0.0.1:%d/" % port.getHost().port,
                                        protocols=["msrp"])
        client.protocol = _Probe
        client.opened, client.closed = Deferred(), Deferred()
        connector = reactor.connectTCP("127.0.0.1", port.getHost().port, client)
        self.addCleanup(connector.disconnect)
        socket = yield client.opened
        socket.sendClose(1000)
        yield client.closed.addTimeout(5, reactor)
        self.assertEqual(errors, [])


class _FakeTransport:
    def __init__(self):
        self.producer = None

    def registerProducer(self, producer, streaming):
        self.producer = producer

    def unregisterProducer(self):
        self.producer = None

    def pauseProducing(self):
        pass

    def resumeProducing(self):
        pass

    def getPeer(self):
        return None

    getHost = getPeer


class _FakeSocket:
    """autobahn's side, writing to a TCP transport that pauses its producer past 64 KiB
    buffered (as Twisted's does) and never drains."""

    STATE_OPEN = 3

    def __init__(self):
        self.transport = _FakeTransport()
        self.buffered = 0
        self.state = self.STATE_OPEN

    def sendMessage(self, payload, isBinary=False):
        self.buffered += len(payload)
        if self.buffered > 64 * 1024 and self.transport.producer is not None:
            self.transport.producer.pauseProducing()

    def beginMessage(self, isBinary=False):
        pass

    def sendMessageFrame(self, payload, sync=False):
        self.sendMessage(payload)

    def endMessage(self):
        pass


class StreamedBodyTests(unittest.TestCase):
    def test_a_streamed_body_meets_the_sockets_backpressure(self):
        """A chunk over STREAM_PIECE (64 KiB) is streamed with begin_body/write_body; on a
        WebSocketLink every piece was held until end_body, so nothing reached the socket,
        writing_paused never rose and the sender read the whole chunk into memory. Its
        pieces now go as the frames of one message as they come."""
        from msrplib._chunk import MSRPData
        from msrplib.transport import MSRPProtocol
        from msrplib.websocket import WebSocketLink
        socket = _FakeSocket()
        link = WebSocketLink(socket)
        msrp = MSRPProtocol(ParserLimits(), None, reactor)
        link.msrp = msrp
        msrp.makeConnection(link)
        self.addCleanup(msrp.connectionLost)
        chunk = MSRPData("abcdefgh12345678", method="SEND")
        msrp.begin_body(chunk)
        written = 0
        while not msrp.writing_paused and written < 64 * 1024 * 1024:
            msrp.write_body(b"x" * 65536)
            written += 65536
        self.assertTrue(msrp.writing_paused,
                        "64 MiB of one streamed body held with no backpressure")


class TrafficLogTests(unittest.TestCase):
    @inlineCallbacks
    def test_a_websocket_connection_keeps_the_settings_traffic_log(self):
        """connect_to hands connect_websocket only the parser limits: a ws/wss
        connection's MSRPProtocol is made with traffic_log=None, so
        ConnectionSettings.traffic_log silently logs nothing over WebSocket."""
        from msrplib._direct import connect_to
        from msrplib._uri import URI
        from msrplib.connect import ConnectionSettings
        self.addCleanup(task.deferLater, reactor, 1.1, lambda: None)  # autobahn's timers
        accepted = []
        factory = MSRPWebSocketServerFactory(lambda p: accepted.append(p) or True,
                                             ParserLimits(), reactor)
        port = reactor.listenTCP(0, factory, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        logged = []
        settings = ConnectionSettings(traffic_log=lambda *a: logged.append(a))
        uri = URI(host="127.0.0.1", port=port.getHost().port, transport="ws")
        protocol, connector = connect_to(uri, None, reactor, settings)
        protocol = yield protocol
        self.addCleanup(protocol.close)
        self.assertIs(protocol.traffic_log, settings.traffic_log)
