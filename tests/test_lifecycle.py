"""How a session ends (issue 24's lifecycle): ``closed`` says why, ``abort()`` ends it at
once and fails what was under way, ``shutdown()`` never waits long for a silent peer, and a
message can be aborted by its Message-ID (known from the start) or by cancelling its
Deferred, whatever state it is in."""

import os
import time

from twisted.internet import reactor, task
from twisted.internet.defer import inlineCallbacks
from twisted.internet.error import ConnectionLost
from twisted.python.failure import Failure
from twisted.trial import unittest

from msrplib.errors import ChunkParseError, MSRPSessionError, MSRPTransactionError
from msrplib.session import (STREAM_PIECE, EndReason, MSRPSession, MessageResult,
                             SessionEnded, SessionSettings)
from msrplib.protocol import URI, Headers, MSRPData, make_report
from msrplib.testing import ALICE_URI, BOB_URI, CollectingReceiver, SessionPair
from tests.helpers import bind_pair
from tests.test_session import Producer
from tests.test_session_loopback import HashingConsumer


def ended(session):
    """What ``closed`` fired with (it never fails)."""
    results = []
    session.closed.observe().addBoth(results.append)
    assert len(results) == 1, "the session has not ended"
    assert isinstance(results[0], SessionEnded), results[0]
    return results[0]


class PairTests(unittest.TestCase):
    def pair(self, **settings):
        settings.setdefault("keepalive_interval", 0)
        self.received = CollectingReceiver()
        return SessionPair(settings=SessionSettings(**settings),
                           bob_options={"receiver": self.received})


class ClosedTests(PairTests):
    """``closed`` fires with a ``SessionEnded`` naming who ended the session."""

    def test_our_shutdown(self):
        pair = self.pair()
        closed = pair.alice.shutdown()
        pair.flush()
        self.assertIsNone(self.successResultOf(closed))
        ending = ended(pair.alice)
        self.assertEqual((ending.why, ending.error), (EndReason.SHUTDOWN, None))
        self.assertEqual(str(ending), "shut down")
        self.assertEqual(ended(pair.bob).why, EndReason.PEER)

    def test_our_abort(self):
        pair = self.pair()
        pair.alice.abort()
        self.assertEqual(ended(pair.alice).why, EndReason.ABORTED)
        pair.flush()
        self.assertIn(ended(pair.bob).why, (EndReason.PEER, EndReason.ERROR))

    def test_a_broken_chunk_from_the_peer(self):
        pair = self.pair()
        pair.bob.transport.protocol.transport.write(b"MSRP nonsense\r\n\r\n")
        pair.flush()
        ending = ended(pair.alice)
        self.assertEqual(ending.why, EndReason.ERROR)
        self.assertIsInstance(ending.error, ChunkParseError)

    def test_a_connection_lost_is_an_error(self):
        pair = self.pair()
        pair.alice.transport.protocol.connectionLost(Failure(ConnectionLost("reset")))
        ending = ended(pair.alice)
        self.assertEqual(ending.why, EndReason.ERROR)
        self.assertIsInstance(ending.error, ConnectionLost)

    def test_an_unanswered_keepalive_is_an_error(self):
        pair = self.pair(keepalive_interval=10, response_timeout=5)
        sending = pair.alice.send_message(b"hello", "text/plain")
        pair.clock.advance(10)  # the keepalive goes out; nothing carries it to Bob
        pair.clock.advance(5)
        ending = ended(pair.alice)
        self.assertEqual(ending.why, EndReason.ERROR)
        self.failureResultOf(sending, MSRPTransactionError)

    def test_a_session_that_ended_refuses_to_send(self):
        pair = self.pair()
        pair.alice.abort()
        error = self.assertRaises(MSRPSessionError, pair.alice.send_message, b"x", "text/plain")
        self.assertIn("aborted", str(error))


class AbortTests(PairTests):
    """``abort()`` ends the session now: nothing under way is left waiting."""

    def test_everything_under_way_fails_at_once(self):
        pair = self.pair(chunk_size=10, max_outstanding_chunks=1)
        written = pair.alice.send_message(b"w" * 5, "text/plain")  # all written at once
        queued = pair.alice.send_message(b"q" * 100, "text/plain")  # waits its turn
        reporting = pair.alice.send_message(b"r" * 5, "text/plain", success_report="yes")
        writer = pair.alice.open_message("text/plain")
        keepalive = pair.alice.deliver_chunk(pair.alice.transport.make_chunk())
        pair.alice.abort()
        for result in (written, queued, reporting, writer.result):
            error = self.failureResultOf(result, MSRPSessionError).value
            self.assertIn("aborted", str(error))
        self.failureResultOf(keepalive, MSRPTransactionError)
        self.assertEqual(pair.clock.getDelayedCalls(), [])

    def test_closed_fires_once_nothing_is_left_pending(self):
        alice_heard = CollectingReceiver()
        pair = SessionPair(settings=SessionSettings(keepalive_interval=0, chunk_size=10,
                                                    max_outstanding_chunks=1),
                           alice_options={"receiver": alice_heard})
        sending = pair.alice.send_message(b"s" * 100, "text/plain")
        pair.bob.send_message(b"i" * 100, "text/plain", message_id="incoming")
        pair.pump.pump()  # a chunk of each has arrived
        seen = []

        def when_closed(ending):
            seen.append((sending.called, [m.message_id for m, _ in alice_heard.failed]))
            self.assertRaises(MSRPSessionError, pair.alice.send_message, b"x", "text/plain")

        pair.alice.closed.observe().addCallback(when_closed)
        pair.alice.abort()
        self.assertEqual(seen, [(True, ["incoming"])])
        self.failureResultOf(sending, MSRPSessionError)

    def test_an_incoming_message_not_whole_fails_to_the_receiver(self):
        pair = self.pair(chunk_size=10, max_outstanding_chunks=1)
        pair.alice.send_message(b"i" * 100, "text/plain", message_id="incoming")
        pair.pump.pump()  # Bob has the first chunk of ten
        pair.bob.abort()
        [(message, reason)] = self.received.failed
        self.assertEqual(message.message_id, "incoming")
        self.assertIsInstance(reason.value, MSRPSessionError)

    def test_abort_after_the_end_does_nothing(self):
        pair = self.pair()
        closed = pair.alice.shutdown()
        pair.flush()
        self.successResultOf(closed)
        pair.alice.abort()
        self.assertEqual(ended(pair.alice).why, EndReason.SHUTDOWN)


class ShutdownTests(PairTests):
    """``shutdown()`` waits for what is due, but never long for a peer that is silent."""

    def test_a_silent_peer_ends_the_shutdown_after_the_bound(self):
        pair = self.pair(shutdown_timeout=2.0, response_timeout=30)
        sending = pair.alice.send_message(b"lost", "text/plain")
        closed = pair.alice.shutdown()
        # Nothing reaches Bob (the pump is never run): he is gone.
        pair.clock.advance(1.9)
        self.assertNoResult(closed)
        pair.clock.advance(0.1)
        self.successResultOf(closed)
        error = self.failureResultOf(sending, MSRPSessionError).value
        self.assertIn("nothing heard", str(error))
        ending = ended(pair.alice)
        self.assertEqual(ending.why, EndReason.SHUTDOWN)
        self.assertIs(ending.error, error)
        self.assertEqual(pair.clock.getDelayedCalls(), [])

    def test_a_peer_that_keeps_answering_is_waited_for(self):
        # Each answer comes 1.5 s after the last, within the 2 s bound: the shutdown
        # waits for all ten chunks, well past 2 s in all.
        pair = self.pair(shutdown_timeout=2.0, chunk_size=10, max_outstanding_chunks=1)
        sending = pair.alice.send_message(b"s" * 100, "text/plain")
        closed = pair.alice.shutdown()
        for _ in range(30):
            pair.clock.advance(1.5)
            pair.pump.pump()
            pair.pump.pump()
        self.assertTrue(pair.clock.seconds() > 10)
        self.assertEqual(len(self.successResultOf(sending)), 16)
        self.successResultOf(closed)
        self.assertEqual((ended(pair.alice).why, ended(pair.alice).error),
                         (EndReason.SHUTDOWN, None))
        self.assertEqual(self.received.received[0].data, b"s" * 100)

    def test_a_writer_left_open_is_not_the_peers_silence(self):
        pair = self.pair(shutdown_timeout=2.0)
        writer = pair.alice.open_message("text/plain")
        closed = pair.alice.shutdown()
        pair.clock.advance(10)
        self.assertNoResult(closed)
        writer.write(b"late but whole")
        result = writer.finish()
        pair.flush()
        self.successResultOf(result)
        self.successResultOf(closed)
        self.assertEqual(self.received.received[0].data, b"late but whole")

    def test_no_bound_when_the_setting_is_zero(self):
        pair = self.pair(shutdown_timeout=0, response_timeout=30)
        sending = pair.alice.send_message(b"lost", "text/plain")
        closed = pair.alice.shutdown()
        pair.clock.advance(29)
        self.assertNoResult(closed)
        pair.clock.advance(1)
        self.failureResultOf(sending, MSRPTransactionError)
        pair.flush()
        self.successResultOf(closed)

    def test_shutdown_twice_gives_the_same_end(self):
        pair = self.pair()
        first, second = pair.alice.shutdown(), pair.alice.shutdown()
        pair.flush()
        self.successResultOf(first)
        self.successResultOf(second)


class MessageIdTests(PairTests):
    """A message's Message-ID is known when it starts, and it can be aborted by it (or by
    cancelling its Deferred) in any state before it is done."""

    def test_the_message_id_is_known_at_once(self):
        pair = self.pair()
        result = pair.alice.send_message(b"hi", "text/plain")
        self.assertIsInstance(result, MessageResult)
        message_id = result.message_id
        pair.flush()
        self.assertEqual(self.successResultOf(result), message_id)
        self.assertEqual(self.received.received[0].message_id, message_id)

    def test_cancel_aborts_a_message_under_way(self):
        pair = self.pair(chunk_size=10, max_outstanding_chunks=1)
        result = pair.alice.send_message(b"c" * 100, "text/plain")
        pair.pump.pump()
        result.cancel()
        self.assertEqual(self.failureResultOf(result, MSRPTransactionError).value.code, 499)
        pair.flush()
        [(message, reason)] = self.received.failed
        self.assertEqual((message.message_id, reason.value.code), (result.message_id, 499))
        self.assertEqual(self.received.received, [])

    def test_abort_a_message_waiting_for_its_answers(self):
        pair = self.pair()
        result = pair.alice.send_message(b"all written", "text/plain")  # SENT, unanswered
        pair.alice.abort_message(result.message_id)
        self.assertEqual(self.failureResultOf(result, MSRPTransactionError).value.code, 499)
        pair.flush()  # its 200 comes, and is no news
        self.assertEqual(self.received.received[0].data, b"all written")

    def test_abort_a_message_waiting_for_its_report(self):
        pair = self.pair()
        self.patch(pair.bob, "write_report", lambda report: None)  # Bob never reports
        result = pair.alice.send_message(b"report me", "text/plain", success_report="yes")
        pair.flush()
        self.assertNoResult(result)
        pair.alice.abort_message(result.message_id)
        self.assertEqual(self.failureResultOf(result, MSRPTransactionError).value.code, 499)

    def test_cancel_after_the_end_changes_nothing(self):
        pair = self.pair()
        result = pair.alice.send_message(b"done", "text/plain")
        pair.flush()
        result.cancel()
        message_id = self.successResultOf(result)
        self.assertEqual(self.received.received[0].message_id, message_id)
        self.assertRaises(KeyError, pair.alice.abort_message, message_id)

    def test_an_unknown_message_id(self):
        self.assertRaises(KeyError, self.pair().alice.abort_message, "nobody")


def sleep(seconds):
    return task.deferLater(reactor, seconds, lambda: None)


class LoopbackTests(unittest.TestCase):
    """Over real loopback TCP: a hang-up mid-file ends both sides within 2 s."""

    @inlineCallbacks
    def sessions(self, receiver, settings):
        alice_link, bob_link = yield bind_pair(self)
        return (MSRPSession(alice_link, settings=settings),
                MSRPSession(bob_link, settings=settings, receiver=receiver))

    @inlineCallbacks
    def test_abort_mid_file_ends_both_sides_at_once(self):
        consumer = HashingConsumer()
        received = CollectingReceiver(sink=consumer)
        alice, bob = yield self.sessions(received, SessionSettings(keepalive_interval=0))
        sending = alice.send_message(os.urandom(64 * 1024 * 1024), "application/octet-stream")
        while consumer.count == 0:
            yield sleep(0.001)
        started = time.monotonic()
        bob.abort()  # a BYE arrived at Bob's side
        yield self.assertFailure(sending, MSRPSessionError)
        while not alice.closed.fired:
            yield sleep(0.01)
        self.assertLess(time.monotonic() - started, 2.0)
        self.assertEqual(ended(bob).why, EndReason.ABORTED)
        self.assertIn(ended(alice).why, (EndReason.PEER, EndReason.ERROR))
        self.assertLess(consumer.count, 64 * 1024 * 1024)
        self.assertEqual(len(received.failed), 1)

    @inlineCallbacks
    def test_shutdown_mid_file_with_a_peer_gone_silent(self):
        # Bob stops reading (his process hangs): Alice's shutdown still ends in its bound.
        consumer = HashingConsumer(hold=True)
        received = CollectingReceiver(sink=consumer)
        settings = SessionSettings(keepalive_interval=0, shutdown_timeout=0.5)
        alice, bob = yield self.sessions(received, settings)
        bob.transport.protocol.transport.stopReading()
        sending = alice.send_message(os.urandom(64 * 1024 * 1024), "application/octet-stream")
        started = time.monotonic()
        yield alice.shutdown()
        self.assertLess(time.monotonic() - started, 2.0)
        yield self.assertFailure(sending, MSRPSessionError)
        ending = ended(alice)
        self.assertEqual(ending.why, EndReason.SHUTDOWN)
        self.assertIn("nothing heard", str(ending.error))
        bob.transport.protocol.transport.startReading()  # Bob wakes up to a closed link
        while not bob.closed.fired:
            yield sleep(0.01)


class StalledPeerTests(PairTests):
    """A peer that stops reading never holds a session, its messages or its shutdown."""

    def test_a_stalled_socket_ends_the_session(self):
        pair = self.pair(write_stall_timeout=60, chunk_size=1000)
        written = pair.alice.send_message(b"w" * 3000, "text/plain")
        pair.alice.transport.protocol.pauseProducing()  # Bob reads nothing more
        queued = pair.alice.send_message(b"q" * 5000, "text/plain")
        keepalive = pair.alice.deliver_chunk(pair.alice.transport.make_chunk())
        pair.clock.advance(59)
        self.assertNoResult(queued)
        pair.clock.advance(1)
        self.failureResultOf(written, MSRPTransactionError)  # its answer never came (408)
        self.assertIn("read nothing for 60", str(self.failureResultOf(queued).value))
        self.failureResultOf(keepalive, MSRPTransactionError)
        ending = ended(pair.alice)
        self.assertEqual(ending.why, EndReason.ERROR)
        self.assertIn("read nothing", str(ending.error))

    def test_a_slow_socket_is_not_a_stalled_one(self):
        pair = self.pair(write_stall_timeout=60)
        protocol = pair.alice.transport.protocol
        for number in range(3):  # the socket is full for 50 s at a time
            protocol.pauseProducing()
            sending = pair.alice.send_message(b"message %d" % number, "text/plain")
            pair.clock.advance(50)
            protocol.resumeProducing()
            pair.flush()
            self.successResultOf(sending)
        self.assertEqual(len(self.received.received), 3)
        self.assertFalse(pair.alice.closed.fired)

    def test_shutdown_with_a_stalled_socket_ends_in_its_bound(self):
        pair = self.pair(shutdown_timeout=2.0, write_stall_timeout=0)
        pair.alice.transport.protocol.pauseProducing()
        sending = pair.alice.send_message(b"never written", "text/plain")
        closed = pair.alice.shutdown()
        pair.clock.advance(2)
        self.successResultOf(closed)
        self.failureResultOf(sending, MSRPSessionError)

    def test_a_close_the_peer_never_takes_ends_in_the_bound(self):
        pair = self.pair(shutdown_timeout=2.0)
        closed = pair.alice.shutdown()  # nothing due: Alice closes at once...
        self.assertFalse(pair.alice.closed.fired)  # ...and the close waits for Bob
        pair.clock.advance(2)
        self.successResultOf(closed)
        self.assertIn("nothing heard", str(ended(pair.alice).error))


class StreamedChunkClockTests(PairTests):
    """A chunk whose body is streamed gets its response clock at its end-line: a slow
    link that keeps taking its body does not make it time out."""

    def test_a_body_written_over_longer_than_the_response_timeout(self):
        pair = self.pair(chunk_size=1 << 30, response_timeout=30)
        protocol = pair.alice.transport.protocol
        write_body = protocol.write_body

        def one_piece_then_full(data):
            write_body(data)
            protocol.pauseProducing()

        self.patch(protocol, "write_body", one_piece_then_full)
        body = b"s" * (8 * STREAM_PIECE)
        sending = pair.alice.send_message(body, "application/octet-stream", message_id="m")
        for _ in range(8):  # a piece every 10 s: 80 s for the chunk
            pair.clock.advance(10)
            protocol.resumeProducing()
            pair.flush()
        self.assertEqual(self.successResultOf(sending), "m")
        self.assertEqual(self.received.received[0].data, body)

    def test_an_unanswered_streamed_chunk_still_times_out(self):
        pair = self.pair(chunk_size=1 << 30, response_timeout=30)
        sending = pair.alice.send_message(b"s" * (2 * STREAM_PIECE), "text/plain")
        pair.clock.advance(30)  # all written; no answer is carried back
        self.assertEqual(self.failureResultOf(sending, MSRPTransactionError).value.code, 408)


class FailedWriterTests(PairTests):
    """When a written message fails, its producer is stopped and its bytes dropped."""

    def test_a_refused_message_stops_its_producer(self):
        pair = self.pair(chunk_size=1000, max_message_size=1500)
        writer = pair.alice.open_message("text/plain", size=10000)
        producer = Producer()
        writer.registerProducer(producer, True)
        writer.write(b"p" * 5000)
        pair.flush()  # Bob refuses it with 413
        self.assertEqual(self.failureResultOf(writer.result, MSRPTransactionError).value.code,
                         413)
        self.assertEqual(producer.calls[-1], "stop")
        self.assertEqual(writer.buffered, 0)
        writer.write(b"more")  # a producer's last write after it was stopped: dropped
        self.assertEqual(writer.buffered, 0)

    def test_an_abort_stops_its_producer(self):
        pair = self.pair()
        writer = pair.alice.open_message("text/plain")
        producer = Producer()
        writer.registerProducer(producer, True)
        pair.alice.abort()
        self.assertEqual(producer.calls, ["stop"])
        self.failureResultOf(writer.result, MSRPSessionError)


class LateFailureTests(unittest.TestCase):
    """A failure REPORT about a message no longer under way is not dropped in silence."""

    def test_a_refusal_after_a_relayed_message_counted_as_sent(self):
        heard = []
        pair = SessionPair(settings=SessionSettings(keepalive_interval=0,
                                                    relayed_failure_wait=2.0),
                           alice_options={"on_late_failure":
                                          lambda *args: heard.append(args)})
        pair.alice.transport.relayed = True
        result = pair.alice.send_message(b"hi", "text/plain", message_id="m1",
                                         success_report="no")
        pair.flush()
        pair.clock.advance(2.0)
        self.assertEqual(self.successResultOf(result), "m1")  # no refusal came in time
        for message_id in ("m1", "never-sent"):
            report = make_report(MSRPData("x", method="SEND", headers=Headers([
                ("To-Path", BOB_URI), ("From-Path", ALICE_URI),
                ("Message-ID", message_id)])), 413)
            pair.bob.transport.write_chunk(report, sync=False)
        pair.flush()
        self.assertEqual([(message_id, error.code) for message_id, error in heard],
                         [("m1", 413), ("never-sent", 413)])


class NewPathTests(unittest.TestCase):
    """A session's paths may change (a relay's new Use-Path, a re-INVITE), its ends not."""

    def test_update_paths(self):
        pair = SessionPair(settings=SessionSettings(keepalive_interval=0))
        transport = pair.alice.transport
        relay = URI.parse("msrp://relay.test:2855/r2;tcp")
        transport.update_paths(local_path=[relay, transport.local_uri])
        self.assertEqual(transport.path_lines,
                         "To-Path: %s %s\r\nFrom-Path: %s\r\n"
                         % (relay, BOB_URI, ALICE_URI))
        other = URI.parse("msrp://mallory.test:2855/m;tcp")
        for bad in ({"local_path": [relay, other]}, {"full_remote_path": [relay, other]},
                    {"local_path": []}):
            self.assertRaises(ValueError, transport.update_paths, **bad)
        self.assertIn(BOB_URI, transport.path_lines)

    def test_the_peer_may_switch_a_moment_later(self):
        heard = CollectingReceiver()
        pair = SessionPair(settings=SessionSettings(keepalive_interval=0),
                           alice_options={"receiver": heard})
        relay = URI.parse("msrp://relay.test:2855/r2;tcp")
        pair.alice.transport.update_paths(
            full_remote_path=[relay, pair.alice.transport.full_remote_path[-1]])
        result = pair.bob.send_message(b"by the path before", "text/plain")
        pair.flush()
        self.successResultOf(result)
        self.assertEqual([m.data for m in heard.received], [b"by the path before"])
        mallory = URI.parse("msrp://mallory.test:2855/m;tcp")
        chunk = MSRPData("t1", method="SEND", headers=Headers([
            ("To-Path", ALICE_URI), ("From-Path", "%s %s" % (relay, mallory))]))
        self.assertIsNotNone(pair.alice.transport.check_incoming_SEND_chunk(chunk))

    def test_a_change_of_our_own_path_keeps_the_peers_old_one(self):
        # take_new_path on the 200 moves both paths; the peer's requests by its path
        # before must still be taken until it has switched too.
        heard = CollectingReceiver()
        pair = SessionPair(settings=SessionSettings(keepalive_interval=0),
                           alice_options={"receiver": heard})
        transport = pair.alice.transport
        relay = URI.parse("msrp://relay.test:2855/r2;tcp")
        transport.update_paths(full_remote_path=[relay, transport.full_remote_path[-1]])
        transport.update_paths(local_path=[relay, transport.local_uri])
        result = pair.bob.send_message(b"by the path before", "text/plain")
        pair.flush()
        self.successResultOf(result)
        self.assertEqual(len(heard.received), 1)

    def test_reports_go_by_the_paths_of_now(self):
        from tests.test_reports import reports_from
        pair = SessionPair(settings=SessionSettings(keepalive_interval=0, chunk_size=10,
                                                    max_outstanding_chunks=1))
        reports = reports_from(pair.bob)
        pair.alice.send_message(b"r" * 30, "text/plain", success_report="yes")
        pair.pump.pump()  # Bob has its first chunk...
        relay = URI.parse("msrp://relay.test:2855/r2;tcp")
        bob = pair.bob.transport
        bob.update_paths(local_path=[relay, bob.local_uri])  # ...then his path moves
        pair.flush()
        [report] = reports
        self.assertEqual(report.headers["To-Path"], "%s %s" % (relay, ALICE_URI))
        self.assertEqual(report.headers["From-Path"], BOB_URI)
