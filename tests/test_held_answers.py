"""Answers held back while the next chunk is arriving: a few at a time, in order, never
late by more than HOLD_SECONDS, and never behind a close or a later write."""

import re

from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial import unittest

from msrplib.protocol import URI
from msrplib.session import MSRPSession, SessionSettings
from msrplib.testing import ALICE_URI, BOB_URI
from msrplib.transport import HELD_ANSWERS, HOLD_SECONDS, MSRPProtocol, MSRPTransport

BODY = 1000
ANSWER = re.compile(rb"MSRP (\S+) 200 OK\r\n")


class HeldAnswerTests(unittest.TestCase):
    def setUp(self):
        self.clock = Clock()
        alice_uri, bob_uri = URI.parse(ALICE_URI), URI.parse(BOB_URI)
        self.protocol = MSRPProtocol(clock=self.clock)
        self.socket = StringTransport()
        self.protocol.makeConnection(self.socket)
        self.bob = MSRPTransport(self.protocol, [bob_uri], [alice_uri])
        MSRPSession(self.bob, reactor=self.clock,  # no timers but the hold's
                    settings=SessionSettings(keepalive_interval=0,
                                             incomplete_message_timeout=None))
        # Alice's transport only makes her chunks; they are fed to Bob by hand.
        self.alice = MSRPTransport(MSRPProtocol(clock=self.clock), [alice_uri], [bob_uri])
        self.chunks = []
        for number in range(3 * HELD_ANSWERS):
            chunk = self.alice.make_chunk(
                data=b"f" * BODY, start=1 + number * BODY, end=(number + 1) * BODY,
                length=100 * BODY, message_id="file", content_type="text/plain")
            self.chunks.append((chunk.transaction_id, chunk.encode()))

    def answered(self):
        """The transaction ids Bob answered since the last call, in order."""
        written = self.socket.value()
        self.socket.clear()
        return [tid.decode() for tid in ANSWER.findall(written)]

    def tids(self, first, last):
        return [tid for tid, _ in self.chunks[first:last]]

    def feed_through(self, number):
        """Feed chunk ``number`` to its end and the first half of the next one."""
        _, wire = self.chunks[number]
        start = len(wire) // 2 if number else 0
        _, following = self.chunks[number + 1]
        self.protocol.dataReceived(wire[start:] + following[:len(following) // 2])

    def test_a_whole_chunk_is_answered_at_once(self):
        self.protocol.dataReceived(self.chunks[0][1])
        self.assertEqual(self.answered(), self.tids(0, 1))

    def test_answers_wait_for_the_next_chunk_up_to_the_limit(self):
        for number in range(HELD_ANSWERS):
            self.feed_through(number)
            self.assertEqual(self.answered(), [])
        self.feed_through(HELD_ANSWERS)
        self.assertEqual(self.answered(), self.tids(0, HELD_ANSWERS + 1))

    def test_a_read_that_ends_between_chunks_sends_what_was_held(self):
        self.feed_through(0)
        self.feed_through(1)
        _, wire = self.chunks[2]
        self.protocol.dataReceived(wire[len(wire) // 2:])
        self.assertEqual(self.answered(), self.tids(0, 3))

    def test_held_answers_leave_after_hold_seconds(self):
        self.feed_through(0)
        self.clock.advance(HOLD_SECONDS * 0.9)
        self.assertEqual(self.answered(), [])
        self.clock.advance(HOLD_SECONDS * 0.1)
        self.assertEqual(self.answered(), self.tids(0, 1))
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_a_later_write_goes_after_them(self):
        self.feed_through(0)
        chunk = self.bob.make_chunk(data=b"reply")
        self.bob.write_chunk(chunk, sync=False)
        written = self.socket.value()
        self.assertEqual(self.answered(), self.tids(0, 1))
        self.assertLess(written.index(b"200 OK"), written.index(b" SEND\r\n"))
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_raw_bytes_go_after_them(self):
        self.feed_through(0)
        self.bob.write(b"raw bytes", sync=False)
        self.assertTrue(self.socket.value().endswith(b"raw bytes"))
        self.assertEqual(self.answered(), self.tids(0, 1))

    def test_closing_sends_them_first(self):
        self.feed_through(0)
        self.bob.loseConnection()
        self.assertTrue(self.socket.disconnecting)
        self.assertEqual(self.answered(), self.tids(0, 1))

    def test_a_lost_connection_drops_them_and_their_timer(self):
        self.feed_through(0)
        self.protocol.connectionLost()
        self.clock.advance(HOLD_SECONDS)
        self.assertEqual(self.answered(), [])
        self.assertEqual(self.clock.getDelayedCalls(), [])


class ClosingSocket(StringTransport):
    """Keeps what was written before ``loseConnection``: a TLS layer drops the rest."""

    def loseConnection(self):
        self.before_close = self.value()
        super().loseConnection()


class CloseInsideAReadTests(unittest.TestCase):
    def test_what_a_read_wrote_goes_before_a_close_in_that_read(self):
        clock = Clock()
        protocol = MSRPProtocol(clock=clock)
        socket = ClosingSocket()
        protocol.makeConnection(socket)
        bob = MSRPTransport(protocol, [URI.parse(BOB_URI)], [URI.parse(ALICE_URI)])
        alice = MSRPTransport(MSRPProtocol(clock=clock), [URI.parse(ALICE_URI)],
                              [URI.parse(BOB_URI)])

        def reply_and_close(event):
            bob.write_chunk(bob.make_chunk(data=b"goodbye"), sync=False)
            bob.loseConnection()

        bob.deliver_events_to(reply_and_close)
        protocol.dataReceived(alice.make_chunk(data=b"hello").encode())
        self.assertIn(b"goodbye", socket.before_close)
