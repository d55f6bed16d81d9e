"""The speed-ups of msrplib._speedups change how bytes are grouped into socket writes,
reads and TLS records, never which bytes cross a connection or their order: the same
session traffic, run over real loopback TCP and TLS once with the speed-ups and once on
the plain Twisted path, puts the same bytes on the connection both ways.

The traffic is sent from a reactor turn of its own, outside any read: a send loop
interleaves the chunks of the messages it has queued by then, and a message queued while
another is on its way joins behind what was written, however much that was: the socket
taking more at once is what the speed-ups are for. Sent from a turn of its own, every
message is queued before the loop first waits for the socket, both ways."""

import io
import re

from twisted.internet import reactor
from twisted.internet.defer import gatherResults, inlineCallbacks
from twisted.internet.task import deferLater
from twisted.trial import unittest

from msrplib import _speedups
from msrplib._speedups import PlainIO, PlainTLSFactory, TLSFactory, TunedIO
from msrplib.session import STREAM_PIECE, MSRPSession, SessionSettings
from msrplib.testing import CollectingReceiver
from tests.helpers import bind_pair

#: What differs between two runs of the same traffic: random transaction ids (start lines
#: and end-lines) and the session ids and ports of the URIs.
_RANDOM = re.compile(rb"^MSRP (\S+) |^-------(\S+)[$#+]\r$|://([^/]+/[^;]+);",
                     re.MULTILINE)


def normalised(streams):
    """``streams`` with every random token replaced by the order it first appeared in."""
    names = {}

    def name(match):
        whole = match.group(0)
        for group in (1, 2, 3):
            token = match.group(group)
            if token is not None:
                number = names.setdefault(token, b"<%d>" % len(names))
                start, end = match.start(group) - match.start(0), match.end(group) - match.start(0)
                return whole[:start] + number + whole[end:]
        return whole

    return [_RANDOM.sub(name, stream) for stream in streams]


class Capture:
    """What each end's protocol is handed to parse, from the time the test starts."""

    def __init__(self, *transports):
        self.streams = [bytearray() for _ in transports]
        for stream, transport in zip(self.streams, transports):
            self._watch(transport.protocol, stream)

    @staticmethod
    def _watch(protocol, stream):
        parse = protocol.dataReceived

        def received(data):
            stream.extend(data)
            parse(data)

        protocol.dataReceived = received


class SameBytesTests(unittest.TestCase):
    """Alice sends, Bob answers and reports; what each received is compared."""

    tls = False

    @inlineCallbacks
    def run_traffic(self, speedups, send, alice_settings, bob_settings):
        self.patch(_speedups, "ENABLED", speedups)
        alice_link, bob_link = yield bind_pair(self, tls=self.tls)
        expected_io = TunedIO if speedups else PlainIO
        self.assertIsInstance(alice_link.protocol._io, expected_io)
        if self.tls:
            factory = alice_link.protocol.transport.factory
            self.assertIs(type(factory), TLSFactory if speedups else PlainTLSFactory)
        capture = Capture(alice_link, bob_link)
        received = CollectingReceiver()
        alice = MSRPSession(alice_link, settings=alice_settings)
        bob = MSRPSession(bob_link, settings=bob_settings, receiver=received)
        results = yield deferLater(reactor, 0, send, alice)  # outside a read: see above
        yield gatherResults(results, consumeErrors=True)
        yield gatherResults([alice.shutdown(), bob.shutdown()], consumeErrors=True)
        return normalised([bytes(stream) for stream in capture.streams]), received

    @inlineCallbacks
    def assert_same_bytes(self, send, alice_settings=None, bob_settings=None):
        runs = []
        for speedups in (False, True):
            streams, received = yield self.run_traffic(
                speedups, send, alice_settings or SessionSettings(keepalive_interval=0),
                bob_settings or SessionSettings(keepalive_interval=0))
            runs.append(streams)
            self.assertEqual(received.failed, [])
        (plain_to_alice, plain_to_bob), (tuned_to_alice, tuned_to_bob) = runs
        self.assertGreater(len(plain_to_bob), 0)
        self.assertEqual(tuned_to_bob, plain_to_bob)  # Alice's chunks, as Bob read them
        self.assertEqual(tuned_to_alice, plain_to_alice)  # Bob's answers and REPORTs
        return received

    @inlineCallbacks
    def test_many_short_messages(self):
        def send(alice):
            return [alice.send_message(b"message %d" % number, "text/plain",
                                       message_id="short-%d" % number)
                    for number in range(200)]

        received = yield self.assert_same_bytes(send)
        self.assertEqual(len(received.received), 200)

    @inlineCallbacks
    def test_a_file_interleaved_with_short_messages(self):
        body = bytes(range(256)) * 4096  # 1 MiB

        def send(alice):
            results = [alice.send_message(io.BytesIO(body), "application/octet-stream",
                                          message_id="file")]
            results += [alice.send_message(b"chat %d" % number, "text/plain",
                                           message_id="chat-%d" % number)
                        for number in range(20)]
            return results

        received = yield self.assert_same_bytes(send)
        [file] = [message for message in received.received if message.message_id == "file"]
        self.assertEqual(file.data, body)

    @inlineCallbacks
    def test_streamed_chunks_with_success_and_progress_reports(self):
        body = b"s" * (3 * STREAM_PIECE + 17)

        def send(alice):
            return [alice.send_message(body, "text/plain", success_report="yes",
                                       message_id="streamed-%d" % number)
                    for number in range(3)]

        yield self.assert_same_bytes(
            send, SessionSettings(keepalive_interval=0, chunk_size=1 << 30),
            SessionSettings(keepalive_interval=0, progress_report_bytes=STREAM_PIECE))

    @inlineCallbacks
    def test_every_failure_report(self):
        def send(alice):
            return [alice.send_message(b"x" * 5000, "text/plain", failure_report=value,
                                       success_report=report, message_id=value + report)
                    for value in ("yes", "partial", "no") for report in ("yes", "no")]

        yield self.assert_same_bytes(send, SessionSettings(keepalive_interval=0,
                                                           chunk_size=1000))


class SameBytesOverTLSTests(SameBytesTests):
    tls = True


class NormalisedTests(unittest.TestCase):
    """The comparison itself: only random tokens are renamed, consistently."""

    def test_random_tokens_are_named_by_first_appearance(self):
        first = (b"MSRP a1b2 SEND\r\nTo-Path: msrp://127.0.0.1:4000/s1;tcp\r\n"
                 b"-------a1b2$\r\nMSRP a1b2 200 OK\r\n-------a1b2$\r\n")
        second = first.replace(b"a1b2", b"ffff").replace(b"4000/s1", b"5000/s9")
        self.assertEqual(normalised([first]), normalised([second]))
        self.assertIn(b"MSRP <0> SEND", normalised([first])[0])

    def test_a_difference_elsewhere_is_kept(self):
        first = b"MSRP a1b2 SEND\r\nByte-Range: 1-5/5\r\n"
        second = b"MSRP a1b2 SEND\r\nByte-Range: 1-5/6\r\n"
        self.assertNotEqual(normalised([first]), normalised([second]))
