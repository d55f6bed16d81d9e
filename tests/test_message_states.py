"""Outgoing and incoming messages move through named states (``Sending``, ``Arrival``)
along the moves their tables allow: a move off the table is a bug of the session's and
raises, the final states have no way out, and real session traffic takes each message
along the path the design describes, reaching every state."""

from twisted.internet.defer import Deferred
from twisted.trial import unittest

from msrplib._incomingmessage import ARRIVAL_TRANSITIONS, Arrival, IncomingMessage
from msrplib._outgoingmessage import TRANSITIONS, OutgoingMessage, Sending
from msrplib.errors import MSRPTransactionError
from msrplib.protocol import MSRPData
from msrplib.session import STREAM_PIECE, SessionSettings
from msrplib.testing import ALICE_URI, BOB_URI, CollectingReceiver, SessionPair

S, A = Sending, Arrival


def reachable(transitions, start):
    seen, todo = {start}, [start]
    while todo:
        for state in transitions[todo.pop()]:
            if state not in seen:
                seen.add(state)
                todo.append(state)
    return seen


class TableTests(unittest.TestCase):
    """The tables themselves, and ``move`` keeping to them."""

    def outgoing(self):
        return OutgoingMessage(b"body", "text/plain", "m1", "no", "yes", 10)

    def incoming(self):
        return IncomingMessage(MSRPData("t1", method="SEND"), size=4)

    def test_every_state_has_an_entry(self):
        self.assertEqual(set(TRANSITIONS), set(Sending))
        self.assertEqual(set(ARRIVAL_TRANSITIONS), set(Arrival))

    def test_every_state_is_reachable_from_the_first(self):
        self.assertEqual(reachable(TRANSITIONS, S.QUEUED), set(Sending))
        self.assertEqual(reachable(ARRIVAL_TRANSITIONS, A.ARRIVING), set(Arrival))

    def test_only_the_final_states_have_no_way_out(self):
        self.assertEqual({state for state, moves in TRANSITIONS.items() if not moves},
                         {S.DONE, S.FAILED})
        self.assertEqual({state for state, moves in ARRIVAL_TRANSITIONS.items() if not moves},
                         {A.RECEIVED, A.NOT_KEPT, A.DROPPED})

    def test_every_state_can_still_end(self):
        for state in Sending:
            self.assertTrue(reachable(TRANSITIONS, state) & {S.DONE, S.FAILED}, state)

    def test_a_new_message_starts_in_the_first_state(self):
        self.assertIs(self.outgoing().state, S.QUEUED)
        self.assertIs(self.incoming().state, A.ARRIVING)

    def test_every_allowed_move_is_made(self):
        for table, make in ((TRANSITIONS, self.outgoing), (ARRIVAL_TRANSITIONS, self.incoming)):
            for before, afters in table.items():
                for after in afters:
                    message = make()
                    message.state = before
                    message.move(after)
                    self.assertIs(message.state, after)

    def test_a_move_off_the_table_raises_and_changes_nothing(self):
        for table, make, states in ((TRANSITIONS, self.outgoing, Sending),
                                    (ARRIVAL_TRANSITIONS, self.incoming, Arrival)):
            for before, afters in table.items():
                for after in set(states) - afters:
                    message = make()
                    message.state = before
                    error = self.assertRaises(RuntimeError, message.move, after)
                    self.assertIn("cannot go from %s to %s" % (before.name, after.name),
                                  str(error))
                    self.assertIs(message.state, before)


class PathTests(unittest.TestCase):
    """The states session traffic takes each message through (``move`` is watched)."""

    def setUp(self):
        self.outgoing, self.incoming = [], []
        for cls, moves in ((OutgoingMessage, self.outgoing), (IncomingMessage, self.incoming)):
            self.watch(cls, moves)

    def watch(self, cls, moves):
        move = cls.move

        def watched(message, state):
            move(message, state)
            moves.append((message.message_id, state))

        self.patch(cls, "move", watched)

    def pair(self, receiver=None, **settings):
        settings.setdefault("keepalive_interval", 0)
        settings.setdefault("chunk_size", 10)
        self.received = receiver or CollectingReceiver()
        return SessionPair(settings=SessionSettings(**settings),
                           bob_options={"receiver": self.received})

    def path(self, moves, message_id):
        return [state for moved, state in moves if moved == message_id]

    def test_a_message_answered_chunk_by_chunk(self):
        sessions = self.pair()
        self.successResultOf(self.send(sessions, b"x" * 25))
        self.assertEqual(self.path(self.outgoing, "m"), [S.SENT, S.DONE])
        self.assertEqual(self.path(self.incoming, "m"), [A.RECEIVED])

    def send(self, sessions, body, **options):
        result = sessions.alice.send_message(body, "text/plain", message_id="m", **options)
        sessions.flush()
        return result

    def test_a_message_that_asked_for_a_success_report(self):
        self.successResultOf(self.send(self.pair(), b"x" * 25, success_report="yes"))
        self.assertEqual(self.path(self.outgoing, "m"), [S.SENT, S.REPORTING, S.DONE])

    def test_a_message_through_a_relay_waits_for_a_refusal(self):
        sessions = self.pair(relayed_failure_wait=2.0)
        sessions.alice.transport.relayed = True
        result = self.send(sessions, b"hi", success_report="no")
        self.assertEqual(self.path(self.outgoing, "m"), [S.SENT, S.CONFIRMING])
        sessions.clock.advance(2.0)
        self.successResultOf(result)
        self.assertEqual(self.path(self.outgoing, "m"), [S.SENT, S.CONFIRMING, S.DONE])

    def test_a_message_held_by_the_peer_reports(self):
        sessions = self.pair(max_unreported_bytes=20)
        sessions.bob.settings = SessionSettings(keepalive_interval=0, progress_report_bytes=10)
        self.successResultOf(self.send(sessions, b"x" * 45, success_report="yes"))
        path = self.path(self.outgoing, "m")
        self.assertIn(S.HELD, path)
        self.assertEqual(path[path.index(S.HELD) + 1], S.QUEUED)
        self.assertEqual(path[-3:], [S.SENT, S.REPORTING, S.DONE])

    def test_a_written_message_waits_for_its_bytes(self):
        sessions = self.pair()
        writer = sessions.alice.open_message("text/plain", message_id="m")
        sessions.flush()
        writer.write(b"some bytes")
        sessions.flush()
        result = writer.finish()
        sessions.flush()
        self.successResultOf(result)
        path = self.path(self.outgoing, "m")
        self.assertEqual(path[:2], [S.WAITING, S.QUEUED])
        self.assertEqual(path[-2:], [S.SENT, S.DONE])

    def test_a_big_chunk_is_streamed(self):
        sessions = self.pair(chunk_size=1 << 30)
        self.successResultOf(self.send(sessions, b"s" * (STREAM_PIECE + 1)))
        self.assertEqual(self.path(self.outgoing, "m"), [S.STREAMING, S.SENT, S.DONE])

    def test_a_streamed_chunk_answered_before_its_end(self):
        # A peer may answer a chunk as soon as it has its headers. When that answer is
        # the message's last, the message must still finish when its body is written.
        for success_report, path in (("no", [S.STREAMING, S.SENT, S.DONE]),
                                     ("yes", [S.STREAMING, S.SENT, S.REPORTING, S.DONE])):
            del self.outgoing[:]
            sessions = self.pair(chunk_size=1 << 30)
            protocol = sessions.alice.transport.protocol
            write_body = protocol.write_body

            def write_then_fill_up(data, protocol=protocol, write_body=write_body):
                write_body(data)
                protocol.pauseProducing()  # the rest of the body waits for the socket

            self.patch(protocol, "write_body", write_then_fill_up)
            result = sessions.alice.send_message(b"s" * (3 * STREAM_PIECE), "text/plain",
                                                 message_id="m",
                                                 success_report=success_report)
            written = b"".join(sessions.pump.clientIO.stream)
            transaction_id = written.split(b" ", 2)[1]
            protocol.dataReceived(
                b"MSRP %s 200 OK\r\nTo-Path: %s\r\nFrom-Path: %s\r\n-------%s$\r\n" % (
                    transaction_id, ALICE_URI.encode(), BOB_URI.encode(), transaction_id))
            self.assertEqual(self.path(self.outgoing, "m"), [S.STREAMING])
            protocol.write_body = write_body
            protocol.resumeProducing()
            sessions.flush()
            self.assertEqual(self.successResultOf(result), "m")
            self.assertEqual(self.path(self.outgoing, "m"), path)
            self.assertEqual(len(self.received.received[0].data), 3 * STREAM_PIECE)

    def test_an_aborted_message_sends_its_end_then_fails(self):
        sessions = self.pair(max_outstanding_chunks=1)
        result = sessions.alice.send_message(b"a" * 100, "text/plain", message_id="m")
        sessions.alice.abort_message("m")
        sessions.flush()
        self.assertEqual(self.failureResultOf(result, MSRPTransactionError).value.code, 499)
        self.assertEqual(self.path(self.outgoing, "m"), [S.ABORTING, S.FAILED])
        self.assertEqual(self.path(self.incoming, "m"), [A.DROPPED])

    def test_a_message_the_receiver_keeps_later(self):
        stored = Deferred()

        class Storing(CollectingReceiver):
            def message_received(self, message):
                super().message_received(message)
                return stored

        sessions = self.pair(Storing())
        result = self.send(sessions, b"kept", success_report="yes")
        self.assertEqual(self.path(self.incoming, "m"), [A.COMPLETE])
        stored.callback(None)
        sessions.flush()
        self.successResultOf(result)
        self.assertEqual(self.path(self.incoming, "m"), [A.COMPLETE, A.RECEIVED])

    def test_a_message_the_receiver_cannot_keep(self):
        class Failing(CollectingReceiver):
            def message_received(self, message):
                raise OSError("disk full")

        sessions = self.pair(Failing())
        result = self.send(sessions, b"lost", success_report="yes")
        self.failureResultOf(result, MSRPTransactionError)
        self.assertEqual(len(self.flushLoggedErrors(OSError)), 1)
        self.assertEqual(self.path(self.incoming, "m"), [A.COMPLETE, A.NOT_KEPT])
        self.assertEqual(self.path(self.outgoing, "m")[-1], S.FAILED)

    def test_every_state_is_reached(self):
        outgoing, incoming = {S.QUEUED}, {A.ARRIVING}
        for name in dir(self):
            if name.startswith("test_a"):
                getattr(self, name)()
                outgoing.update(state for _, state in self.outgoing)
                incoming.update(state for _, state in self.incoming)
                del self.outgoing[:], self.incoming[:]
        self.assertEqual((outgoing, incoming), (set(Sending), set(Arrival)))
