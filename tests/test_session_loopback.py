"""Sessions over real loopback TCP: big files, interleaving, abort, disconnects, memory."""

import hashlib
import os
import tempfile
import tracemalloc

from twisted.internet import reactor, task
from twisted.internet.defer import gatherResults, inlineCallbacks
from twisted.internet.interfaces import IConsumer
from twisted.trial import unittest
from zope.interface import implementer

from msrplib.errors import MSRPSessionError, MSRPTransactionError
from msrplib.session import MSRPSession, SessionSettings
from msrplib.testing import CollectingReceiver
from tests.helpers import bind_pair

SETTINGS = SessionSettings(keepalive_interval=0)


def sleep(seconds):
    return task.deferLater(reactor, seconds, lambda: None)


@implementer(IConsumer)
class HashingConsumer:
    """An IConsumer that hashes what it gets and can hold its producer paused."""

    def __init__(self, hold=False):
        self.digest = hashlib.sha256()
        self.count = 0
        self.hold = hold
        self.producer = None

    def registerProducer(self, producer, streaming):
        self.producer = producer

    def unregisterProducer(self):
        self.producer = None

    def write(self, data):
        self.digest.update(data)
        self.count += len(data)
        if self.hold:
            self.producer.pauseProducing()

    def release(self):
        self.hold = False
        self.producer.resumeProducing()


class LoopbackSessionTests(unittest.TestCase):
    @inlineCallbacks
    def sessions(self, receiver=None, settings=SETTINGS):
        alice_link, bob_link = yield bind_pair(self)
        alice = MSRPSession(alice_link, settings=settings)
        bob = MSRPSession(bob_link, settings=settings, receiver=receiver)
        return alice, bob

    @inlineCallbacks
    def test_20_mib_file_with_chat_interleaved(self):
        received = CollectingReceiver()
        alice, bob = yield self.sessions(received)
        payload = os.urandom(20 * 1024 * 1024)
        with tempfile.TemporaryFile() as source:
            source.write(payload)
            source.seek(0)
            file_sent = alice.send_message(source, "application/octet-stream",
                                           success_report="yes")
            chats = [alice.send_message(b"chat %d" % n, "text/plain") for n in range(5)]
            yield sleep(0)
            chats.append(bob.send_message(b"reply from bob", "text/plain"))
            yield gatherResults(chats)
            self.assertFalse(file_sent.called, "the chat waited for the whole file")
            yield file_sent
        by_type = {}
        for message in received.received:
            by_type.setdefault(message.content_type, []).append(message)
        [file_message] = by_type["application/octet-stream"]
        self.assertEqual(hashlib.sha256(file_message.data).hexdigest(),
                         hashlib.sha256(payload).hexdigest())
        self.assertEqual([m.data for m in by_type["text/plain"]],
                         [b"chat %d" % n for n in range(5)])
        self.assertLess(received.received.index(by_type["text/plain"][-1]),
                        received.received.index(file_message))
        yield alice.shutdown()

    @inlineCallbacks
    def test_abort_mid_file(self):
        consumer = HashingConsumer(hold=True)  # Bob stalls after the first piece...
        received = CollectingReceiver(sink=consumer)
        alice, bob = yield self.sessions(received)
        sending = alice.send_message(b"A" * (8 * 1024 * 1024), "application/octet-stream",
                                     message_id="to-abort")
        while consumer.count == 0:
            yield sleep(0.001)
        alice.abort_message("to-abort")
        received.sink = None  # ...and reads on, the next message into memory
        consumer.release()
        error = yield self.assertFailure(sending, MSRPTransactionError)
        self.assertEqual(error.code, 499)
        while not received.failed:
            yield sleep(0.001)
        [(message, reason)] = received.failed
        self.assertLess(message.received, 8 * 1024 * 1024)
        self.assertEqual(received.received, [])
        message_id = yield alice.send_message(b"still works", "text/plain")
        self.assertEqual([m.message_id for m in received.received], [message_id])

    @inlineCallbacks
    def test_peer_disconnect_mid_message_both_sides_learn(self):
        consumer = HashingConsumer(hold=True)  # Bob takes the first piece, then stalls
        received = CollectingReceiver(sink=consumer)
        alice, bob = yield self.sessions(received)
        sending = alice.send_message(b"B" * (16 * 1024 * 1024), "application/octet-stream")
        while consumer.count == 0:
            yield sleep(0.001)
        bob.transport.protocol.transport.abortConnection()
        yield self.assertFailure(sending, MSRPSessionError)
        while not received.failed:
            yield sleep(0.001)
        self.assertEqual(received.received, [])
        self.assertLess(received.failed[0][0].received, 16 * 1024 * 1024)
        self.assertTrue(alice.ended and bob.ended)
        yield gatherResults([alice.closed.observe(), bob.closed.observe()])

    @inlineCallbacks
    def test_slow_receiver_pauses_the_sender(self):
        consumer = HashingConsumer(hold=True)
        received = CollectingReceiver(sink=consumer)
        alice, bob = yield self.sessions(received)
        payload = os.urandom(32 * 1024 * 1024)
        sending = alice.send_message(payload, "application/octet-stream")
        while consumer.count == 0:
            yield sleep(0.005)
        [outgoing] = alice._sender._queue
        yield sleep(0.3)
        stalled_at = outgoing.offset
        yield sleep(0.3)
        # The sender stopped: Bob stopped reading, so his answers stopped (the window of
        # unanswered chunks is full) and the sockets' buffers filled up.
        self.assertEqual(outgoing.offset, stalled_at)
        self.assertLess(stalled_at, len(payload) // 2)
        self.assertFalse(sending.called)
        consumer.release()
        yield sending
        while not received.received:
            yield sleep(0.001)
        self.assertEqual(consumer.digest.hexdigest(), hashlib.sha256(payload).hexdigest())

    @inlineCallbacks
    def test_memory_stays_bounded_sending_a_large_file(self):
        size = 96 * 1024 * 1024
        with tempfile.TemporaryFile() as source, tempfile.TemporaryFile() as target:
            block = os.urandom(1024 * 1024)
            for _ in range(size // len(block)):
                source.write(block)
            source.seek(0)
            received = CollectingReceiver(sink=target)
            alice, bob = yield self.sessions(received, SessionSettings(
                keepalive_interval=0, max_message_size=None))
            tracemalloc.start()
            self.addCleanup(tracemalloc.stop)
            yield alice.send_message(source, "application/octet-stream")
            while not received.received:
                yield sleep(0.001)
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            self.assertEqual(target.seek(0, os.SEEK_END), size)
        # Both ends live in this process; the file is 96 MiB, the peak was about 1.4 MiB.
        self.assertLess(peak, 8 * 1024 * 1024)


class ProducerLoopbackTests(unittest.TestCase):
    @inlineCallbacks
    def test_file_body_producer_into_a_message_writer(self):
        from io import BytesIO

        from twisted.web.client import FileBodyProducer
        received = CollectingReceiver()
        alice_link, bob_link = yield bind_pair(self)
        alice = MSRPSession(alice_link, settings=SETTINGS)
        MSRPSession(bob_link, settings=SETTINGS, receiver=received)
        payload = os.urandom(8 * 1024 * 1024)
        writer = alice.open_message("application/octet-stream", size=len(payload),
                                    success_report="yes")
        producer = FileBodyProducer(BytesIO(payload), readSize=256 * 1024)
        writer.registerProducer(producer, True)
        yield producer.startProducing(writer)
        writer.unregisterProducer()
        yield writer.finish()
        [message] = received.received
        self.assertEqual(hashlib.sha256(message.data).digest(), hashlib.sha256(payload).digest())
