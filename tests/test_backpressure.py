"""A peer that floods us and never reads, over real loopback TCP and TLS sockets: we stop
reading it while our answers pile up, and read again once it reads them. Two peers that
send each other files at once both finish."""

import socket

from twisted.internet import reactor, task
from twisted.internet.defer import gatherResults, inlineCallbacks
from twisted.internet.testing import StringTransport
from twisted.trial import unittest

from msrplib.session import MSRPSession, SessionSettings
from msrplib.testing import CollectingReceiver
from msrplib.protocol import URI
from msrplib.transport import LARGE_READ, MAX_WRITTEN_WHILE_FULL, MSRPProtocol, MSRPTransport
from tests.helpers import bind_pair

SETTINGS = SessionSettings(keepalive_interval=0)
#: Small kernel buffers, so that our answers back up in our own process quickly (not
#: smaller than a few TLS records: TCP would then wait for delayed acknowledgements).
KERNEL_BUFFER = 64 * 1024
#: What our process may hold unsent: the socket's high-water mark (its read size, up to
#: LARGE_READ), what may be written past it before reading stops, and the answers to the
#: read being handled when it stops (smaller than that read).
BOUND = LARGE_READ + MAX_WRITTEN_WHILE_FULL + LARGE_READ


def sleep(seconds):
    return task.deferLater(reactor, seconds, lambda: None)


def tcp_transport(msrp):
    """The socket's Twisted transport under an MSRPTransport, TCP or TLS."""
    layer = msrp.protocol.transport
    return getattr(layer, "transport", layer)


def unsent(msrp):
    """The bytes our process holds to send on ``msrp``'s connection."""
    layer = msrp.protocol.transport
    socket_transport = tcp_transport(msrp)
    held = len(socket_transport.dataBuffer) - socket_transport.offset + \
        socket_transport._tempDataLen
    if layer is not socket_transport:  # TLS: what its layer keeps back too
        held += getattr(layer, "_partial_size", 0) + sum(map(len, layer._appSendBuffer))
    return held


def shrink_buffers(sender, receiver):
    tcp_transport(sender).getHandle().setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF,
                                                 KERNEL_BUFFER)
    tcp_transport(receiver).getHandle().setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF,
                                                   KERNEL_BUFFER)


class FloodTests(unittest.TestCase):
    tls = False
    timeout = 60
    COUNT = 20000

    @inlineCallbacks
    def test_a_peer_that_never_reads_stops_being_read(self):
        flooder, ours = yield bind_pair(self, tls=self.tls)
        MSRPSession(ours, settings=SETTINGS)
        shrink_buffers(ours, flooder)
        answers = []
        flooder.deliver_events_to(answers.append)
        flooder_socket = tcp_transport(flooder)
        flooder_socket.stopReading()  # the flooder never reads
        requests = b"".join(flooder.make_chunk().encode() for _ in range(self.COUNT))
        flooder.write(requests, sync=False)
        most, still, last = 0, 0, None
        while still < 10:  # until nothing moves for 10 looks in a row
            yield sleep(0.02)
            most = max(most, unsent(ours))
            now = (unsent(flooder), unsent(ours))
            still = still + 1 if now == last else 0
            last = now
        self.assertLessEqual(most, BOUND)
        self.assertGreater(unsent(flooder), 0)  # its requests wait: we stopped reading
        self.assertTrue(ours.protocol.reading_paused)
        self.assertLess(len(answers), self.COUNT)
        flooder_socket.startReading()
        while len(answers) < self.COUNT:
            yield sleep(0.02)
            most = max(most, unsent(ours))
        self.assertEqual({answer.code for answer in answers}, {200})
        self.assertLessEqual(most, BOUND)
        self.assertFalse(ours.protocol.reading_paused)


class TLSFloodTests(FloodTests):
    tls = True


class BothWaysTests(unittest.TestCase):
    """Each side's socket is full of its own file while the other's file arrives: both
    must go on reading, or each would wait for the other for ever."""

    tls = False
    timeout = 60
    SIZE = 8 * 1024 * 1024

    @inlineCallbacks
    def test_files_both_ways_at_once(self):
        alice_link, bob_link = yield bind_pair(self, tls=self.tls)
        shrink_buffers(alice_link, bob_link)
        shrink_buffers(bob_link, alice_link)
        received = CollectingReceiver(), CollectingReceiver()
        alice = MSRPSession(alice_link, settings=SETTINGS, receiver=received[0])
        bob = MSRPSession(bob_link, settings=SETTINGS, receiver=received[1])
        files = bytes(range(256)) * (self.SIZE // 256), b"b" * self.SIZE
        yield gatherResults([alice.send_message(files[0], "application/octet-stream"),
                             bob.send_message(files[1], "application/octet-stream")])
        self.assertEqual(received[1].received[0].data, files[0])
        self.assertEqual(received[0].received[0].data, files[1])


class TLSBothWaysTests(BothWaysTests):
    tls = True


class ReadingPauseTests(unittest.TestCase):
    """The one place that decides whether the socket is read: a set of reasons."""

    def setUp(self):
        self.protocol = MSRPProtocol()
        self.socket = StringTransport()
        self.protocol.makeConnection(self.socket)

    def test_read_again_once_every_reason_is_gone(self):
        self.protocol.pause_reading("reader")
        self.protocol.pause_reading("reader")  # the same reason again: still one
        self.protocol.pause_reading("consumer")
        self.assertEqual(self.socket.producerState, "paused")
        self.protocol.resume_reading("reader")
        self.assertEqual(self.socket.producerState, "paused")
        self.assertTrue(self.protocol.reading_paused)
        self.protocol.resume_reading("nobody paused for this")
        self.protocol.resume_reading("consumer")
        self.assertEqual(self.socket.producerState, "producing")
        self.assertFalse(self.protocol.reading_paused)

    def test_a_pause_before_the_connection_applies_at_connect(self):
        protocol = MSRPProtocol()
        protocol.pause_reading("parked")
        socket = StringTransport()
        protocol.makeConnection(socket)
        self.assertEqual(socket.producerState, "paused")
        protocol.resume_reading("parked")
        self.assertEqual(socket.producerState, "producing")

    def test_nothing_is_asked_of_a_closed_connection(self):
        self.protocol.close()
        self.protocol.pause_reading("late")  # StringTransport raises when asked now
        self.protocol.resume_reading("late")
        self.assertEqual(self.socket.producerState, "producing")

    def test_writes_past_the_limit_while_full_stop_reading_until_drained(self):
        self.protocol.write_raw(b"w" * (2 * MAX_WRITTEN_WHILE_FULL))  # before: not counted
        self.protocol.pauseProducing()  # the socket's buffer is over its mark
        self.protocol.write_raw(b"a" * MAX_WRITTEN_WHILE_FULL)
        self.assertEqual(self.socket.producerState, "producing")
        self.protocol.write_raw(b"a")
        self.assertEqual(self.socket.producerState, "paused")
        self.protocol.resumeProducing()  # drained
        self.assertEqual(self.socket.producerState, "producing")
        self.protocol.pauseProducing()  # counted afresh
        self.protocol.write_raw(b"a" * MAX_WRITTEN_WHILE_FULL)
        self.assertEqual(self.socket.producerState, "producing")

    def test_answers_of_a_read_count(self):
        local, remote = URI("a", session_id="x"), URI("b", session_id="y")
        MSRPSession(MSRPTransport(self.protocol, [local], [remote]), settings=SETTINGS,
                    reactor=task.Clock())
        peer = MSRPTransport(MSRPProtocol(), [remote], [local])
        self.protocol.pauseProducing()
        requests = [peer.make_chunk().encode() for _ in range(2000)]
        self.protocol.dataReceived(b"".join(requests))
        self.assertEqual(self.socket.producerState, "paused")
        self.assertEqual(self.socket.value().count(b" 200 OK\r\n"), 2000)

    def test_what_the_reader_has_not_taken_counts_its_headers(self):
        """Empty chunks with large header blocks are not free: 8 of them, 2 KB of headers
        each and no body, pass a 10,000-byte queue (counting bodies alone, they were 0)."""
        local, remote = URI("a", session_id="x"), URI("b", session_id="y")
        msrp = MSRPTransport(self.protocol, [local], [remote], max_queued_bytes=10000)
        sender = MSRPTransport(MSRPProtocol(), [remote], [local])
        for _ in range(8):
            chunk = sender.make_chunk()
            chunk.headers.add("X-Pad", "p" * 2000)
            self.protocol.dataReceived(chunk.encode())
        self.assertEqual(self.socket.producerState, "paused")
        for _ in range(8):
            self.successResultOf(msrp.read_chunk())
        self.assertEqual(self.socket.producerState, "producing")

    def test_a_reader_behind_and_full_writes_both_hold_reading(self):
        local, remote = URI("a", session_id="x"), URI("b", session_id="y")
        msrp = MSRPTransport(self.protocol, [local], [remote], max_queued_bytes=100)
        sender = MSRPTransport(MSRPProtocol(), [remote], [local])
        self.protocol.dataReceived(sender.make_chunk(data=b"z" * 200).encode())
        self.assertEqual(self.socket.producerState, "paused")  # the reader is behind
        self.protocol.pauseProducing()
        self.protocol.write_raw(b"a" * (MAX_WRITTEN_WHILE_FULL + 1))
        self.successResultOf(msrp.read_chunk())  # the reader caught up
        self.assertEqual(self.socket.producerState, "paused")  # writes still backed up
        self.protocol.resumeProducing()
        self.assertEqual(self.socket.producerState, "producing")
