"""Direct connections over real loopback TCP and TLS sockets."""

import hashlib

from twisted.internet import reactor
from twisted.internet.defer import CancelledError, Deferred, gatherResults, inlineCallbacks
from twisted.internet.error import (ConnectionAborted, ConnectionDone, ConnectionLost,
                                    ConnectionRefusedError)
from twisted.internet.protocol import ClientFactory, Protocol
from twisted.trial import unittest

from msrplib.connect import (AcceptorDirect, ConnectionSettings, ConnectorDirect,
                             FingerprintMismatch, MSRPBindError, MSRPServer, get_acceptor,
                             get_connector)
from msrplib.protocol import ByteRange, ChunkParseError, URI, make_response
from msrplib.tls import TLSIdentity
from msrplib.transport import LARGE_READ, SMALL_READ
from tests.helpers import bind_pair, close, local_uri


class ExchangeMixin:
    tls = False

    @inlineCallbacks
    def still_binds(self, connector, acceptor_path, accepting):
        """After what went wrong, the acceptor's ``complete()`` (``accepting``) is still
        waiting, binds with the genuine ``connector``, and the two exchange a chunk."""
        self.assertNoResult(accepting)
        transports = yield gatherResults([connector.complete(acceptor_path), accepting])
        for transport in transports:
            self.addCleanup(close, transport)
        yield self.exchange(*transports)

    @inlineCallbacks
    def exchange(self, sender, receiver, body=b"Hey Bob, are you there?"):
        chunk = sender.make_chunk(data=body)
        sender.write_chunk(chunk)
        received = yield receiver.read_chunk()
        self.assertIsNone(receiver.check_incoming_SEND_chunk(received))
        self.assertEqual((received.method, received.data, received.message_id),
                         ("SEND", body, chunk.message_id))
        receiver.write_chunk(make_response(received, 200))
        response = yield sender.read_chunk()
        self.assertEqual((response.code, response.transaction_id),
                         (200, chunk.transaction_id))

    @inlineCallbacks
    def test_connector_connects(self):
        connector, acceptor = yield bind_pair(self, tls=self.tls)
        yield self.exchange(connector, acceptor)
        yield self.exchange(acceptor, connector, b"Yes, I'm here!")
        self.assertEqual(connector.full_remote_path, [acceptor.local_uri])
        self.assertEqual(acceptor.full_remote_path, [connector.local_uri])
        self.assertEqual(connector.remote_uri, acceptor.local_uri)

    @inlineCallbacks
    def test_acceptor_connects(self):
        connector, acceptor = yield bind_pair(self, tls=self.tls, connector_setup="passive")
        yield self.exchange(connector, acceptor)
        yield self.exchange(acceptor, connector)

    @inlineCallbacks
    def test_large_chunk_segments(self):
        connector, acceptor = yield bind_pair(self, tls=self.tls)
        body = bytes(range(256)) * 8192  # 2 MiB, streamed by the parser
        connector.write_chunk(connector.make_chunk(data=body, content_type="x/y"))
        pieces, segment = [], None
        while segment is None or segment.contflag == "+":
            segment = yield acceptor.read_chunk(size=100000)
            self.assertEqual(segment.byte_range.start, 1 + sum(len(p) for p in pieces))
            self.assertEqual(segment.byte_range.end - segment.byte_range.start + 1,
                             len(segment.data))
            self.assertEqual(segment.byte_range.total, len(body))
            pieces.append(segment.data)
        self.assertGreater(len(pieces), 2)
        self.assertEqual(segment.contflag, "$")
        self.assertEqual(segment.segment, len(pieces))
        self.assertEqual(hashlib.sha256(b"".join(pieces)).digest(),
                         hashlib.sha256(body).digest())

    @inlineCallbacks
    def test_whole_large_chunk_without_size(self):
        connector, acceptor = yield bind_pair(self, tls=self.tls)
        body = b"q" * (1024 * 1024)
        connector.write_chunk(connector.make_chunk(data=body))
        chunk = yield acceptor.read_chunk()
        self.assertEqual((chunk.data, chunk.segment, chunk.contflag), (body, None, "$"))

    @inlineCallbacks
    def test_peer_closes_mid_chunk(self):
        connector, acceptor = yield bind_pair(self, tls=self.tls)
        raw = connector.make_chunk(data=b"x" * 1000).encode()
        connector.write(raw[:500], sync=False)
        yield close(connector)
        yield self.assertFailure(acceptor.read_chunk(), ConnectionLost)
        yield self.assertFailure(acceptor.read_chunk(), ConnectionLost)
        self.assertFalse(acceptor.is_connected())

    @inlineCallbacks
    def test_our_close_in_a_peers_chunk_is_our_close(self):
        """We close while the peer is in the middle of a chunk: that is our close
        (``ConnectionDone``), not the peer's (``ConnectionLost``)."""
        connector, acceptor = yield bind_pair(self, tls=self.tls)
        raw = connector.make_chunk(data=b"x" * 1000).encode()
        connector.write(raw[:500], sync=False)
        while not acceptor.protocol.parser.in_chunk:
            yield deferLater(0.01)
        lost = acceptor.protocol.lost.observe()
        acceptor.loseConnection()
        yield self.assertFailure(lost, ConnectionDone)
        error = yield self.assertFailure(acceptor.read_chunk(), ConnectionDone)
        self.assertNotIn("the peer closed", str(error))

    @inlineCallbacks
    def test_garbage_after_a_good_chunk(self):
        connector, acceptor = yield bind_pair(self, tls=self.tls)
        good = connector.make_chunk(data=b"fine")
        connector.write(good.encode() + b"NOT MSRP AT ALL\r\n", sync=False)
        first = yield acceptor.read_chunk()
        self.assertEqual(first.data, b"fine")
        error = yield self.assertFailure(acceptor.read_chunk(), ChunkParseError)
        self.assertIn("malformed start line", str(error))

    @inlineCallbacks
    def test_write_sync_fires(self):
        connector, acceptor = yield bind_pair(self, tls=self.tls)
        result = yield connector.write(connector.make_chunk(data=b"x").encode())
        self.assertIsNone(result)
        chunk = yield acceptor.read_chunk()
        self.assertEqual(chunk.data, b"x")

    @inlineCallbacks
    def test_server_ready_for_fifty_sessions(self):
        server = MSRPServer()
        self.addCleanup(server.stop)
        connectors, server_paths, client_paths = [], [], []
        for _ in range(50):
            path = yield server.prepare(local_uri(self.tls))
            server_paths.append(path)
            connector = ConnectorDirect()
            self.addCleanup(connector.cleanup)
            client_paths.append((yield connector.prepare(local_uri(self.tls))))
            connectors.append(connector)
        self.assertEqual(len(server.listening_ports), 1)
        self.assertEqual(len({p[0].port for p in server_paths}), 1)
        results = yield gatherResults(
            [c.complete(p) for c, p in zip(connectors, server_paths)]
            + [server.complete(p) for p in client_paths])
        for transport in results:
            self.addCleanup(close, transport)
        clients, served = results[:50], results[50:]
        for index, (client, accepted) in enumerate(zip(clients, served)):
            self.assertEqual(client.remote_uri, accepted.local_uri)
            self.assertEqual(accepted.local_uri, server_paths[index][0])
            self.assertEqual(accepted.full_remote_path, client_paths[index])
        yield gatherResults([self.exchange(c, s, b"message %d" % i)
                             for i, (c, s) in enumerate(zip(clients, served))])

    @inlineCallbacks
    def test_a_full_read_makes_the_next_one_larger(self):
        sender, receiver = yield bind_pair(self, self.tls)
        # Under TLS the socket is beneath Twisted's TLS layer: its reads are sized, not
        # the records TLS makes of them.
        layer = receiver.protocol.transport
        socket = layer.transport if self.tls else layer
        socket.stopReading()
        big = sender.make_chunk(data=b"x" * (2 * LARGE_READ // 3))
        sender.write_chunk(big, sync=False)
        yield deferLater(0.2)  # in the receiver's socket by now
        socket.bufferSize = 16 * 1024
        socket.doRead()  # fills its 16 KiB
        self.assertEqual(socket.bufferSize, LARGE_READ)
        socket.startReading()
        first = yield receiver.read_chunk()
        self.assertEqual(first.data, big.data)
        sender.write_chunk(sender.make_chunk(data=b"small"), sync=False)
        second = yield receiver.read_chunk()
        self.assertEqual(second.data, b"small")
        self.assertEqual(socket.bufferSize, SMALL_READ)


class TCPTests(ExchangeMixin, unittest.TestCase):
    tls = False

    @inlineCallbacks
    def test_prepare_fills_the_uri_in_place(self):
        acceptor = AcceptorDirect()
        self.addCleanup(acceptor.cleanup)
        uri = URI(host="127.0.0.1", port=0)
        [prepared] = yield acceptor.prepare(uri)
        self.assertIs(prepared, uri)
        self.assertNotEqual(uri.port, 0)
        self.assertEqual(len(uri.session_id), 20)
        self.assertIsInstance(get_acceptor(None, use_acm=True), AcceptorDirect)

    @inlineCallbacks
    def test_unknown_session_gets_481(self):
        server = MSRPServer()
        self.addCleanup(server.stop)
        [known] = yield server.prepare(local_uri())
        wrong = known.copy()
        wrong.session_id = "nosuchsession"
        connector = ConnectorDirect()
        yield connector.prepare(local_uri())
        error = yield self.assertFailure(connector.complete([wrong]), MSRPBindError)
        self.assertEqual(error.code, 481)

    @inlineCallbacks
    def test_wrong_from_path_is_refused(self):
        acceptor = AcceptorDirect()
        self.addCleanup(acceptor.cleanup)
        acceptor_path = yield acceptor.prepare(local_uri())
        expected = URI(host="127.0.0.1", session_id="someoneelse")
        waiting = acceptor.complete([expected])
        connector = ConnectorDirect()
        yield connector.prepare(local_uri())
        error = yield self.assertFailure(connector.complete(acceptor_path), MSRPBindError)
        self.assertEqual(error.code, 403)
        self.assertFalse(waiting.called)
        acceptor.cleanup()
        yield self.assertFailure(waiting, CancelledError)

    @inlineCallbacks
    def test_garbage_on_the_port_closes_that_connection_only(self):
        acceptor = AcceptorDirect()
        self.addCleanup(acceptor.cleanup)
        acceptor_path = yield acceptor.prepare(local_uri())
        connector = ConnectorDirect()
        connector_path = yield connector.prepare(local_uri())
        accepting = acceptor.complete(connector_path)
        yield garbage_to(acceptor_path[0].port, b"GET / HTTP/1.1\r\n\r\n")
        yield self.still_binds(connector, acceptor_path, accepting)

    @inlineCallbacks
    def test_wrong_from_path_before_complete_gets_403_at_complete(self):
        """The binding SEND comes first and waits, parked; the complete() that expects
        another peer refuses it at once, not at the bind timeout."""
        settings = ConnectionSettings(bind_timeout=5)
        acceptor = AcceptorDirect(settings=settings)
        self.addCleanup(acceptor.cleanup)
        acceptor_path = yield acceptor.prepare(local_uri())
        connector = ConnectorDirect(settings=settings)
        yield connector.prepare(local_uri())
        connecting = connector.complete(acceptor_path)
        server = acceptor._server
        while not server._parked_at:
            yield deferLater(0.01)
        waiting = acceptor.complete([URI(host="127.0.0.1", session_id="someoneelse")])
        error = yield self.assertFailure(connecting, MSRPBindError)
        self.assertEqual(error.code, 403)
        self.assertNoResult(waiting)
        acceptor.cleanup()
        yield self.assertFailure(waiting, CancelledError)

    @inlineCallbacks
    def test_two_thousand_idle_connections_do_not_keep_a_peer_out(self):
        """2,000 connections from our own address that never speak: the oldest of them
        make room for the peer that binds, which comes from the same address."""
        server = MSRPServer()
        self.addCleanup(server.stop)
        [uri] = yield server.prepare(local_uri())
        idle = []
        for _ in range(2000):
            factory = ClientFactory.forProtocol(Protocol)
            idle.append(reactor.connectTCP("127.0.0.1", uri.port, factory))
        self.addCleanup(lambda: [connector.disconnect() for connector in idle])
        while len(server._unbound) < server.settings.max_unbound_per_source:
            yield deferLater(0.01)
        yield deferLater(0.2)
        connector = ConnectorDirect()
        client_path = yield connector.prepare(local_uri())
        transports = yield gatherResults([connector.complete([uri]), server.complete(client_path)])
        for transport in transports:
            self.addCleanup(close, transport)
        yield self.exchange(*transports)
        self.assertLessEqual(len(server._unbound), server.settings.max_unbound_per_source)

    @inlineCallbacks
    def test_connection_refused(self):
        server = MSRPServer()
        [uri] = yield server.prepare(local_uri())
        yield server.stop()
        connector = ConnectorDirect()
        yield connector.prepare(local_uri())
        yield self.assertFailure(connector.complete([uri]), ConnectionRefusedError)

    @inlineCallbacks
    def test_connect_address_overrides_uri(self):
        acceptor = AcceptorDirect()
        self.addCleanup(acceptor.cleanup)
        [uri] = yield acceptor.prepare(local_uri())
        advertised = uri.copy()
        connector = ConnectorDirect()
        client_path = yield connector.prepare(local_uri())
        # The path names a host that does not exist; CEMA gives the real address.
        advertised.host = "msrp.invalid"
        acceptor.local_uri.host = "msrp.invalid"
        transports = yield gatherResults([
            connector.complete([advertised], connect_address=("127.0.0.1", uri.port)),
            acceptor.complete(client_path)])
        for transport in transports:
            self.addCleanup(close, transport)
        self.assertEqual(transports[0].remote_uri.host, "msrp.invalid")

    @inlineCallbacks
    def test_binding_sent_one_byte_at_a_time(self):
        server = MSRPServer()
        self.addCleanup(server.stop)
        [uri] = yield server.prepare(local_uri())
        client_uri = URI(host="127.0.0.1", port=9, session_id="bytewise")
        waiting = server.complete([client_uri])
        binding = (b"MSRP bytewise1 SEND\r\nTo-Path: %s\r\nFrom-Path: %s\r\n"
                   b"Message-ID: msg1\r\nByte-Range: 1-0/0\r\n-------bytewise1$\r\n"
                   % (str(uri).encode(), str(client_uri).encode()))
        received = []

        class Trickle(Protocol):
            def connectionMade(self):
                self.send(0)

            def send(self, index):
                if index < len(binding):
                    self.transport.write(binding[index:index + 1])
                    reactor.callLater(0.001, self.send, index + 1)

            def dataReceived(self, data):
                received.append(data)

        factory = ClientFactory.forProtocol(Trickle)
        client = reactor.connectTCP("127.0.0.1", uri.port, factory)
        self.addCleanup(client.disconnect)
        transport = yield waiting
        self.addCleanup(close, transport)
        self.assertEqual(transport.full_remote_path, [client_uri])
        while not received:
            yield transport.protocol.drained()
            yield deferLater(0.01)
        self.assertTrue(b"".join(received).startswith(b"MSRP bytewise1 200 OK\r\n"))


class _Garbage(Protocol):
    def connectionMade(self):
        self.transport.write(self.factory.garbage)

    def connectionLost(self, reason):
        self.factory.closed.callback(None)


def garbage_to(port, garbage):
    """Connect to ``port`` on 127.0.0.1, send ``garbage``, and fire once the other side
    has closed the connection."""
    factory = ClientFactory.forProtocol(_Garbage)
    factory.garbage = garbage
    factory.closed = Deferred()
    reactor.connectTCP("127.0.0.1", port, factory)
    return factory.closed


def deferLater(seconds):
    from twisted.internet import task
    return task.deferLater(reactor, seconds, lambda: None)


class TLSTests(ExchangeMixin, unittest.TestCase):
    tls = True

    @inlineCallbacks
    def prepared(self):
        connector, acceptor = ConnectorDirect(), AcceptorDirect()
        self.addCleanup(connector.cleanup)
        self.addCleanup(acceptor.cleanup)
        connector_path = yield connector.prepare(local_uri(True))
        acceptor_path = yield acceptor.prepare(local_uri(True))
        return connector, acceptor, connector_path, acceptor_path

    @inlineCallbacks
    def test_fingerprint_mismatch(self):
        connector, acceptor, connector_path, acceptor_path = yield self.prepared()
        impostor = TLSIdentity.generate().fingerprint()
        connecting = connector.complete(acceptor_path, remote_fingerprint=impostor)
        accepting = acceptor.complete(connector_path,
                                      remote_fingerprint=connector_path[0].credentials.fingerprint())
        error = yield self.assertFailure(connecting, FingerprintMismatch)
        self.assertIn("expected %s" % impostor, str(error))
        self.assertEqual(error.code, 403)
        acceptor.cleanup()
        yield self.assertFailure(accepting, CancelledError)

    @inlineCallbacks
    def test_acceptor_closes_a_wrong_certificate_and_waits_for_the_right_one(self):
        connector, acceptor, connector_path, acceptor_path = yield self.prepared()
        accepting = acceptor.complete(
            connector_path, remote_fingerprint=connector_path[0].credentials.fingerprint())
        # An impostor binds from the expected path with a certificate of its own.
        impostor_uri = connector_path[0].copy()
        impostor_uri.credentials = TLSIdentity.generate()
        impostor = ConnectorDirect()
        self.addCleanup(impostor.cleanup)
        yield impostor.prepare(impostor_uri)
        # The acceptor aborts that connection: the impostor hears it lost.
        yield self.assertFailure(impostor.complete(acceptor_path), ConnectionLost,
                                 ConnectionAborted)
        yield self.still_binds(connector, acceptor_path, accepting)

    @inlineCallbacks
    def test_garbage_on_the_port_closes_that_connection_only(self):
        connector, acceptor, connector_path, acceptor_path = yield self.prepared()
        accepting = acceptor.complete(connector_path)
        yield garbage_to(acceptor_path[0].port, b"NOT TLS AT ALL\r\n" * 64)
        yield self.still_binds(connector, acceptor_path, accepting)

    def test_generated_credentials_are_kept(self):
        connector = ConnectorDirect()
        uri = local_uri(True)
        connector.prepare(uri)
        self.assertIsInstance(uri.credentials, TLSIdentity)
        self.assertTrue(str(uri.credentials.fingerprint()).startswith("sha-256 "))


class FactoryFunctionTests(unittest.TestCase):
    def test_direct_classes(self):
        self.assertIsInstance(get_connector(None), ConnectorDirect)
        self.assertIsInstance(get_acceptor(None), AcceptorDirect)
        self.assertEqual(get_connector(None, setup="passive").setup, "passive")
        self.assertEqual(get_connector(None, setup="actpass").setup, "actpass")
        self.assertRaises(ValueError, ConnectorDirect, setup="holdconn")

    def test_complete_needs_prepare(self):
        self.assertRaises(RuntimeError, ConnectorDirect().complete, [URI("h", session_id="s")])


class ByteRangeSanity(unittest.TestCase):
    def test_make_chunk(self):
        from msrplib.transport import MSRPProtocol, MSRPTransport
        transport = MSRPTransport(MSRPProtocol(), [URI("a", session_id="x")],
                                  [URI("b", session_id="y")])
        chunk = transport.make_chunk(data=b"hello", start=11, length=100)
        self.assertEqual(chunk.byte_range, ByteRange(11, 15, 100))
        self.assertEqual((chunk.contflag, chunk.content_type), ("+", "text/plain"))
        self.assertEqual(chunk.headers["To-Path"], "msrp://b/y;tcp")
        self.assertEqual(chunk.headers["From-Path"], "msrp://a/x;tcp")
        last = transport.make_chunk(data=b"bye", start=98, length=100, message_id="m")
        self.assertEqual((last.contflag, last.message_id), ("$", "m"))
        response = transport.make_chunk(transaction_id="abcd", code=200, comment="OK")
        self.assertEqual((response.code, response.transaction_id), (200, "abcd"))
        report = transport.make_chunk(method="REPORT", message_id="m")
        self.assertNotIn("Byte-Range", report.headers)
