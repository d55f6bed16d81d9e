"""Timeouts and flow control of connections, tested deterministically with a fake clock."""

from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure
from twisted.trial import unittest

from msrplib._bind import bind_active
from msrplib.connect import (ConnectionSettings, ConnectorDirect, MSRPBindError,
                             MSRPBindSessionTimeout, MSRPServer)
from msrplib.errors import MSRPConnectTimeout
from msrplib.protocol import URI, ChunkParser, Headers, MSRPData, ParserLimits, make_response
from msrplib.transport import MSRPProtocol, MSRPTransport

PEER = IPv4Address("TCP", "127.0.0.1", 40000)


def connected_protocol(limits=ParserLimits()):
    protocol = MSRPProtocol(limits)
    transport = StringTransport(peerAddress=PEER)
    protocol.makeConnection(transport)
    return protocol, transport


def sent_chunks(transport):
    return list(ChunkParser().feed(transport.value()))


class ConnectTimeoutTests(unittest.TestCase):
    def test_connect_timeout(self):
        reactor = MemoryReactorClock()
        connector = ConnectorDirect(reactor=reactor,
                                    settings=ConnectionSettings(connect_timeout=5))
        connector.prepare(URI(host="127.0.0.1"))
        result = connector.complete([URI(host="127.0.0.1", port=2855, session_id="s")])
        host, port, _, _, _ = reactor.tcpClients[0]
        self.assertEqual((host, port), ("127.0.0.1", 2855))
        reactor.advance(4.9)
        self.assertNoResult(result)
        reactor.advance(0.1)
        error = self.failureResultOf(result, MSRPConnectTimeout)
        self.assertIn("within 5 seconds", str(error.value))
        self.assertFalse(reactor.getDelayedCalls())


class ServerTimeoutTests(unittest.TestCase):
    def setUp(self):
        self.reactor = MemoryReactorClock()
        self.server = MSRPServer(reactor=self.reactor,
                                 settings=ConnectionSettings(bind_timeout=7))
        self.uri = self.successResultOf(self.server.prepare(URI(host="127.0.0.1")))[0]
        self.factory = self.reactor.tcpServers[0][1]

    def accept(self):
        """A connection as the server's port would accept it, over a StringTransport."""
        protocol = self.factory.buildProtocol(PEER)
        transport = StringTransport(peerAddress=PEER)
        protocol.makeConnection(transport)
        return protocol, transport

    def test_bind_timeout(self):
        result = self.server.complete([URI(host="127.0.0.1", session_id="peer")])
        self.reactor.advance(6.9)
        self.assertNoResult(result)
        self.reactor.advance(0.1)
        self.failureResultOf(result, MSRPBindSessionTimeout)

    def test_default_bind_timeout_is_the_class_setting(self):
        self.patch(MSRPBindSessionTimeout, "seconds", 3)
        server = MSRPServer(reactor=self.reactor)
        server.prepare(URI(host="127.0.0.1"))
        result = server.complete([URI(host="127.0.0.1", session_id="peer")])
        self.reactor.advance(3)
        self.failureResultOf(result, MSRPBindSessionTimeout)

    def test_silent_connection_is_closed(self):
        protocol, transport = self.accept()
        self.reactor.advance(7)
        self.assertTrue(transport.disconnecting)

    def test_binding_fed_one_byte_at_a_time(self):
        peer = URI(host="127.0.0.1", port=5555, session_id="peer")
        result = self.server.complete([peer])
        protocol, transport = self.accept()
        binding = (b"MSRP bind1234 SEND\r\nTo-Path: %s\r\nFrom-Path: %s\r\n"
                   b"Message-ID: msg1\r\nByte-Range: 1-0/0\r\n-------bind1234$\r\n"
                   % (str(self.uri).encode(), str(peer).encode()))
        for index in range(len(binding)):
            self.assertNoResult(result)
            protocol.dataReceived(binding[index:index + 1])
        bound = self.successResultOf(result)
        self.assertEqual(bound.full_remote_path, [peer])
        [response] = sent_chunks(transport)
        self.assertEqual((response.code, response.transaction_id), (200, "bind1234"))
        self.assertEqual(response.to_path, [peer])
        self.assertFalse(self.reactor.getDelayedCalls())

    def test_binding_that_came_before_complete(self):
        peer = URI(host="127.0.0.1", port=5555, session_id="early")
        protocol, transport = self.accept()
        sender = MSRPTransport(MSRPProtocol(), [peer], [self.uri])
        protocol.dataReceived(sender.make_chunk().encode())
        self.assertEqual(transport.value(), b"")  # parked: nobody expects Alice yet
        self.assertEqual(transport.producerState, "paused")  # and not read meanwhile
        bound = self.successResultOf(self.server.complete([peer]))
        self.assertEqual(transport.producerState, "producing")
        self.assertEqual(bound.full_remote_path, [peer])
        [response] = sent_chunks(transport)
        self.assertEqual(response.code, 200)

    def test_first_chunk_with_content_is_left_for_the_reader(self):
        peer = URI(host="127.0.0.1", port=5555, session_id="peer")
        result = self.server.complete([peer])
        protocol, transport = self.accept()
        sender = MSRPTransport(MSRPProtocol(), [peer], [self.uri])
        protocol.dataReceived(sender.make_chunk(data=b"first message").encode())
        bound = self.successResultOf(result)
        self.assertEqual(transport.value(), b"")
        self.assertEqual(self.successResultOf(bound.read_chunk()).data, b"first message")

    def test_response_as_first_chunk_closes(self):
        protocol, transport = self.accept()
        protocol.dataReceived(b"MSRP abcd 200 OK\r\n-------abcd$\r\n")
        self.assertTrue(transport.disconnecting)

    def test_bad_to_path_gets_400(self):
        protocol, transport = self.accept()
        protocol.dataReceived(b"MSRP abcd SEND\r\nTo-Path: nonsense\r\n"
                              b"From-Path: msrp://a/b;tcp\r\n-------abcd$\r\n")
        [response] = sent_chunks(transport)
        self.assertEqual(response.code, 400)
        self.assertTrue(transport.disconnecting)

    def test_cleanup_cancels_complete(self):
        result = self.server.complete([URI(host="h", session_id="p")], local_uri=self.uri)
        self.server.cleanup(self.uri)
        self.failureResultOf(result)
        self.assertFalse(self.reactor.getDelayedCalls())


class ActiveBindTests(unittest.TestCase):
    def setUp(self):
        self.reactor = MemoryReactorClock()
        self.protocol, self.transport = connected_protocol()
        self.local = [URI(host="127.0.0.1", session_id="me")]
        self.remote = [URI(host="127.0.0.1", port=2855, session_id="you")]

    def bind(self):
        return bind_active(self.protocol, self.local, self.remote, self.reactor,
                           ConnectionSettings(bind_timeout=4))

    def test_binding_send_and_200(self):
        result = self.bind()
        [binding] = sent_chunks(self.transport)
        self.assertEqual((binding.method, binding.data, binding.contflag), ("SEND", b"", "$"))
        self.assertEqual(binding.to_path, self.remote)
        self.assertEqual(binding.from_path, self.local)
        self.assertEqual(str(binding.byte_range), "1-0/0")
        self.protocol.dataReceived(make_response(binding, 200).encode())
        self.assertIsInstance(self.successResultOf(result), MSRPTransport)
        self.assertFalse(self.reactor.getDelayedCalls())

    def test_refusal_carries_the_code(self):
        result = self.bind()
        [binding] = sent_chunks(self.transport)
        self.protocol.dataReceived(make_response(binding, 481).encode())
        error = self.failureResultOf(result, MSRPBindError).value
        self.assertEqual((error.code, error.comment), (481, "No Such Session"))
        self.assertTrue(self.transport.disconnecting)

    def test_no_response(self):
        result = self.bind()
        self.reactor.advance(4)
        self.failureResultOf(result, MSRPBindSessionTimeout)
        self.assertTrue(self.transport.disconnecting)


class FlowControlTests(unittest.TestCase):
    def test_slow_reader_pauses_the_socket(self):
        protocol, transport = connected_protocol(ParserLimits(max_buffered_body=1000))
        local, remote = URI("a", session_id="x"), URI("b", session_id="y")
        msrp = MSRPTransport(protocol, [local], [remote], max_queued_bytes=10000)
        sender = MSRPTransport(MSRPProtocol(), [remote], [local])
        wire = b"".join(sender.make_chunk(data=b"z" * 3000).encode() for _ in range(5))
        protocol.dataReceived(wire)
        self.assertEqual(transport.producerState, "paused")
        for _ in range(3):
            self.assertEqual(len(self.successResultOf(msrp.read_chunk()).data), 3000)
        self.assertEqual(transport.producerState, "paused")
        self.successResultOf(msrp.read_chunk())
        self.assertEqual(transport.producerState, "producing")

    def test_write_sync_waits_for_the_buffer(self):
        protocol, transport = connected_protocol()
        msrp = MSRPTransport(protocol, [URI("a", session_id="x")], [URI("b", session_id="y")])
        protocol.pauseProducing()
        written = msrp.write(b"bytes")
        self.assertNoResult(written)
        protocol.resumeProducing()
        self.successResultOf(written)
        self.assertEqual(transport.value(), b"bytes")
        self.assertIsNone(msrp.write(b"more", sync=False))

    def test_call_when_drained(self):
        protocol, transport = connected_protocol()
        calls = []
        protocol.call_when_drained(lambda: calls.append("now"))
        self.assertEqual(calls, ["now"])
        protocol.pauseProducing()
        protocol.call_when_drained(lambda: calls.append("later"))
        self.assertEqual(calls, ["now"])
        protocol.resumeProducing()
        protocol.resumeProducing()  # each callback runs once
        self.assertEqual(calls, ["now", "later"])
        protocol.pauseProducing()
        protocol.call_when_drained(lambda: calls.append("never"))
        protocol.connectionLost(Failure(ConnectionDone()))
        protocol.resumeProducing()
        protocol.call_when_drained(lambda: calls.append("never"))
        self.assertEqual(calls, ["now", "later"])


class AnyPeerTests(unittest.TestCase):
    def test_complete_without_remote_path_takes_the_first_binding(self):
        reactor = MemoryReactorClock()
        server = MSRPServer(reactor=reactor)
        [uri] = self.successResultOf(server.prepare(URI(host="127.0.0.1")))
        self.assertRaises(ValueError, server.complete, None)
        result = server.complete(None, local_uri=uri)
        protocol = reactor.tcpServers[0][1].buildProtocol(PEER)
        protocol.makeConnection(StringTransport(peerAddress=PEER))
        peer = URI(host="127.0.0.1", port=7000, session_id="whoever")
        sender = MSRPTransport(MSRPProtocol(), [peer], [uri])
        protocol.dataReceived(sender.make_chunk().encode())
        self.assertEqual(self.successResultOf(result).full_remote_path, [peer])


class HandOverTests(unittest.TestCase):
    def test_read_chunk_refused_once_a_session_reads(self):
        from msrplib.errors import MSRPSessionError
        protocol, _ = connected_protocol()
        msrp = MSRPTransport(protocol, [URI("a", session_id="x")], [URI("b", session_id="y")])
        msrp.deliver_events_to(lambda event: None)
        self.assertRaises(MSRPSessionError, msrp.read_chunk)


class CheckIncomingTests(unittest.TestCase):
    def test_codes(self):
        local = URI("127.0.0.1", port=1000, session_id="me")
        remote = [URI("relay.test", port=2855, session_id="r"),
                  URI("127.0.0.1", port=2000, session_id="you")]
        msrp = MSRPTransport(MSRPProtocol(), [local], remote)

        def chunk(to_path, from_path):
            return MSRPData("abcd", method="SEND", headers=Headers([
                ("To-Path", to_path), ("From-Path", from_path)]))

        relayed = "msrp://my-relay.test/x;tcp " + " ".join(map(str, remote))
        self.assertIsNone(msrp.check_incoming_SEND_chunk(chunk(str(local), relayed)))
        self.assertIsNone(msrp.check_incoming_SEND_chunk(chunk(
            "MSRP://127.0.0.1:1000/me;TCP", " ".join(map(str, remote)))))
        cases = [(chunk("msrp://127.0.0.1:1000/other;tcp", relayed), 481),
                 (chunk(str(local), str(remote[-1])), 403),
                 (chunk(str(local), "msrp://127.0.0.1:2000/other;tcp"), 403),
                 (chunk("nonsense", relayed), 400)]
        for bad, code in cases:
            error = msrp.check_incoming_SEND_chunk(bad)
            self.assertEqual(error.code, code, bad.headers)


class UnboundLimitTests(unittest.TestCase):
    def test_connections_past_the_limit_are_refused_when_none_is_silent(self):
        reactor = MemoryReactorClock()
        server = MSRPServer(reactor=reactor,
                            settings=ConnectionSettings(max_unbound_connections=2))
        [uri] = self.successResultOf(server.prepare(URI(host="127.0.0.1")))
        factory = reactor.tcpServers[0][1]
        accepted = [factory.buildProtocol(PEER) for _ in range(2)]
        for protocol in accepted:  # each sends a binding SEND nobody expects yet
            protocol.makeConnection(StringTransport(peerAddress=PEER))
            peer = URI(host="127.0.0.1", session_id="early")
            protocol.dataReceived(MSRPTransport(MSRPProtocol(), [peer], [uri])
                                  .make_chunk().encode())
        self.assertIsNone(factory.buildProtocol(PEER))
        accepted[0].connectionLost()
        self.assertIsNotNone(factory.buildProtocol(PEER))
