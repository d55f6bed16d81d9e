"""RecordFillingTLS: full TLS records, nothing lost or reordered, nothing held past a turn
(or past the pause of a full socket), checked by reading the records it writes."""

import random
import struct

from twisted.internet.interfaces import IPushProducer
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.ssl import CertificateOptions
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.trial import unittest
from zope.interface import implementer

from msrplib._bind import ConnectionSettings
from msrplib._server import MSRPServer
from msrplib._speedups import RECORD_SIZE, TLSFactory
from msrplib.protocol import URI
from msrplib.tls import TLSIdentity
from msrplib.transport import MSRPProtocol, MSRPTransport

#: A TLS record's header: content type, version, length.
HEADER = struct.Struct("!BHH")
APPLICATION_DATA = 23
#: What a chunk of a file looks like on the wire: headers, a 64 KiB body, its end-line.
CHUNK = [b"h" * 260, bytes(range(256)) * 256, b"e" * 44]
IDENTITY = TLSIdentity.generate()


class Collect(Protocol):
    def connectionMade(self):
        self.received = []

    def dataReceived(self, data):
        self.received.append(data)


@implementer(IPushProducer)
class Writer:
    """A streaming producer that counts how often it was resumed."""

    resumed = 0

    def pauseProducing(self):
        pass

    def resumeProducing(self):
        self.resumed += 1

    def stopProducing(self):
        pass


def records(data):
    """The lengths of the application-data records in ``data`` (whole records only)."""
    lengths, position = [], 0
    while position + HEADER.size <= len(data):
        kind, _, length = HEADER.unpack_from(data, position)
        if kind == APPLICATION_DATA:
            lengths.append(length)
        position += HEADER.size + length
    return lengths


class RecordTests(unittest.TestCase):
    def setUp(self):
        self.clock = Clock()
        self.client = TLSFactory(CertificateOptions(), True, Factory.forProtocol(Collect),
                                 self.clock).buildProtocol(None)
        self.server = TLSFactory(IDENTITY.options(), False, Factory.forProtocol(Collect),
                                 self.clock).buildProtocol(None)
        self.client.makeConnection(StringTransport())
        self.server.makeConnection(StringTransport())
        for _ in range(4):  # the handshake
            self.deliver(self.client, self.server)
            self.deliver(self.server, self.client)
        self.assertTrue(self.client._handshakeDone)

    def deliver(self, sender, receiver):
        """Hand what ``sender`` wrote to ``receiver``; return those bytes."""
        data = sender.transport.value()
        sender.transport.clear()
        if data:
            receiver.dataReceived(data)
        return data

    def sent(self):
        """The application-data records the client wrote since the last call."""
        return records(self.deliver(self.client, self.server))

    def received(self):
        return b"".join(self.server.wrappedProtocol.received)

    def test_a_chunk_goes_out_in_full_records_and_its_rest_at_the_next_turn(self):
        self.client.writeSequence(CHUNK)
        full = self.sent()
        self.assertEqual(len(full), 4)
        self.assertEqual(len(set(full)), 1)  # all the size of a full record
        self.clock.advance(0)
        self.assertEqual(len(self.sent()), 1)
        self.assertEqual(self.received(), b"".join(CHUNK))

    def test_the_rest_of_a_record_joins_the_next_write(self):
        self.client.writeSequence(CHUNK)
        self.client.writeSequence(CHUNK)
        self.assertEqual(len(self.sent()), (2 * len(b"".join(CHUNK))) // RECORD_SIZE)
        self.clock.advance(0)
        self.assertEqual(len(self.sent()), 1)
        self.assertEqual(self.received(), b"".join(CHUNK) * 2)

    def test_small_writes_of_a_turn_share_a_record(self):
        for _ in range(10):
            self.client.write(b"MSRP 1234 200 OK\r\n")
        self.assertEqual(self.sent(), [])
        self.clock.advance(0)
        self.assertEqual(len(self.sent()), 1)
        self.assertEqual(self.received(), b"MSRP 1234 200 OK\r\n" * 10)

    def test_the_rest_waits_while_a_full_socket_pauses_the_writer(self):
        writer = Writer()
        self.client.registerProducer(writer, True)
        self.client.writeSequence(CHUNK)
        socket = self.client.transport
        socket.producer.pauseProducing()  # the socket's buffer is full
        self.clock.advance(0)
        self.assertEqual(len(self.sent()), 4)
        socket.producer.resumeProducing()  # drained; the writer writes nothing more
        self.assertEqual(writer.resumed, 1)
        self.assertEqual(self.sent(), [])
        self.clock.advance(0)
        self.assertEqual(len(self.sent()), 1)
        self.assertEqual(self.received(), b"".join(CHUNK))

    def test_a_paused_writers_next_write_takes_the_rest_along(self):
        writer = Writer()
        self.client.registerProducer(writer, True)
        self.client.writeSequence(CHUNK)
        self.client.transport.producer.pauseProducing()
        self.clock.advance(0)
        self.client.transport.producer.resumeProducing()
        self.client.writeSequence(CHUNK)
        self.clock.advance(0)
        total = 2 * len(b"".join(CHUNK))
        self.assertEqual(len(self.sent()), total // RECORD_SIZE + 1)
        self.assertEqual(self.received(), b"".join(CHUNK) * 2)

    def test_unregistering_the_writer_sends_the_rest(self):
        self.client.registerProducer(Writer(), True)
        self.client.writeSequence(CHUNK)
        self.client.transport.producer.pauseProducing()
        self.clock.advance(0)
        self.client.unregisterProducer()
        self.clock.advance(0)
        self.sent()
        self.assertEqual(self.received(), b"".join(CHUNK))

    def test_closing_sends_the_rest_first(self):
        self.client.write(b"last words")
        self.client.loseConnection()
        self.sent()
        self.assertEqual(self.received(), b"last words")
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_aborting_drops_the_rest_and_its_turn(self):
        self.client.write(b"never sent")
        self.client.abortConnection()
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.sent()
        self.assertEqual(self.received(), b"")

    def test_a_reused_buffer_does_not_change_what_was_written(self):
        buffer = bytearray(b"a" * 100)
        self.client.write(buffer)  # kept: less than a record
        buffer[:] = b"b" * 100
        self.clock.advance(0)
        self.sent()
        self.assertEqual(self.received(), b"a" * 100)

    def test_bytes_arrive_whole_and_in_order_whatever_the_writes(self):
        generator = random.Random(4975)
        expected = []
        for _ in range(300):
            size = generator.choice([0, 1, 17, 300, RECORD_SIZE - 1, RECORD_SIZE,
                                     RECORD_SIZE + 1, 3 * RECORD_SIZE + 5, 70000])
            part = bytes(generator.getrandbits(8) for _ in range(min(size, 64))) * (
                size // 64 + 1)
            part = part[:size]
            expected.append(part)
            if generator.random() < 0.5:
                self.client.write(part)
            else:
                self.client.writeSequence([part[:size // 3], memoryview(part)[size // 3:]])
            if generator.random() < 0.2:
                self.clock.advance(0)
            self.sent()
        self.clock.advance(0)
        self.sent()
        self.assertEqual(self.received(), b"".join(expected))


class RefusalTests(unittest.TestCase):
    def test_a_refused_connection_gets_no_tls_layer(self):
        refusing = Factory()
        refusing.buildProtocol = lambda addr: None
        factory = TLSFactory(IDENTITY.options(), False, refusing, Clock())
        self.assertIsNone(factory.buildProtocol(None))

    def test_tls_connections_past_the_unbound_limit_are_refused(self):
        reactor = MemoryReactorClock()
        server = MSRPServer(reactor=reactor,
                            settings=ConnectionSettings(max_unbound_connections=1))
        [uri] = self.successResultOf(server.prepare(URI(host="127.0.0.1", use_tls=True)))
        factory = reactor.tcpServers[0][1]
        self.assertIsInstance(factory, TLSFactory)
        first = factory.buildProtocol(None)
        self.assertIsNotNone(first)
        # It has spoken (its binding SEND is parked): the next one is refused, not it.
        first.wrappedProtocol.makeConnection(StringTransport())
        peer = URI(host="127.0.0.1", session_id="peer")
        first.wrappedProtocol.dataReceived(
            MSRPTransport(MSRPProtocol(), [peer], [uri]).make_chunk().encode())
        self.assertIsNone(factory.buildProtocol(None))
