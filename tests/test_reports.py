"""REPORTs that tell the truth: what a receiver confirms or refuses, and what the sender
learns from it (RFC 4975 sections 5.3 and 7.1.2), on an in-memory pair and a Clock."""

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IConsumer
from twisted.trial import unittest
from zope.interface import implementer

from msrplib.errors import MSRPError, MSRPSessionError, MSRPTransactionError
from msrplib.protocol import URI, Headers, MSRPData, make_report
from msrplib.session import SessionSettings
from msrplib.testing import ALICE_URI, BOB_URI, CollectingReceiver, SessionPair


def pair(bob_receiver=None, **settings):
    settings.setdefault("keepalive_interval", 0)
    return SessionPair(settings=SessionSettings(**settings),
                       bob_options={"receiver": bob_receiver or CollectingReceiver()})


def reports_from(session):
    """The REPORTs ``session`` writes, as they are written."""
    reports = []
    write = session.write_report

    def spy(chunk, *args, **kwargs):
        if chunk.method == "REPORT":
            reports.append(chunk)
        return write(chunk, *args, **kwargs)

    session.write_report = spy
    return reports


class StoringReceiver(CollectingReceiver):
    """``message_received`` answers with what the test sets: a Deferred, or an error."""

    def __init__(self, outcome):
        super().__init__()
        self.outcome = outcome

    def message_received(self, message):
        super().message_received(message)
        if isinstance(self.outcome, Exception):
            raise self.outcome
        return self.outcome


class StoredBeforeReportedTests(unittest.TestCase):
    """The success REPORT goes out only once the receiver has kept the message."""

    def test_the_success_report_waits_for_the_receiver(self):
        stored = Deferred()
        sessions = pair(StoringReceiver(stored))
        reports = reports_from(sessions.bob)
        result = sessions.alice.send_message(b"kept", "text/plain", success_report="yes")
        sessions.flush()
        self.assertEqual(reports, [])
        self.assertNoResult(result)
        stored.callback(None)
        sessions.flush()
        self.assertEqual([r.status.code for r in reports], [200])
        self.assertTrue(self.successResultOf(result))

    def test_a_failed_store_sends_a_failure_report_with_its_code(self):
        stored = Deferred()
        sessions = pair(StoringReceiver(stored))
        reports = reports_from(sessions.bob)
        result = sessions.alice.send_message(b"lost", "text/plain", success_report="yes")
        sessions.flush()
        stored.errback(MSRPError("disk full", 413, "No room"))
        sessions.flush()
        self.assertEqual([(r.status.code, r.status.comment) for r in reports],
                         [(413, "No room")])
        self.assertEqual(self.failureResultOf(result, MSRPTransactionError).value.code, 413)
        self.flushLoggedErrors(MSRPError)

    def test_an_exception_from_the_receiver_is_a_failure_report(self):
        sessions = pair(StoringReceiver(OSError("permission denied")))
        reports = reports_from(sessions.bob)
        result = sessions.alice.send_message(b"lost", "text/plain", success_report="yes")
        sessions.flush()
        self.assertEqual([r.status.code for r in reports], [413])
        self.assertEqual(self.failureResultOf(result, MSRPTransactionError).value.code, 413)
        self.assertEqual(len(self.flushLoggedErrors(OSError)), 1)

    def test_a_failure_report_stays_silent_when_failure_report_is_no(self):
        sessions = pair(StoringReceiver(OSError("permission denied")))
        reports = reports_from(sessions.bob)
        sessions.alice.send_message(b"lost", "text/plain", success_report="yes",
                                    failure_report="no")
        sessions.flush()
        self.assertEqual(reports, [])
        self.flushLoggedErrors(OSError)


class Answers:
    """What ``session`` answers (the codes, in order) and the REPORTs it writes."""

    def __init__(self, session):
        self.codes = []
        self.reports = reports_from(session)
        protocol = session.transport.protocol
        write_response = protocol.write_response

        def spy(request, code, comment=None):
            self.codes.append(code)
            return write_response(request, code, comment)

        protocol.write_response = spy


class RefusalTests(unittest.TestCase):
    """A message refused at its first chunk: the sender hears of it in a failure REPORT
    (what reaches it through relays) when it asked for them, the receiver's application
    in ``message_refused``."""

    def setUp(self):
        self.received = CollectingReceiver()
        self.sessions = pair(self.received, max_message_size=50)
        self.sessions.bob.accept_types = ["text/*"]
        self.answers = Answers(self.sessions.bob)

    def send(self, body, content_type="text/plain", **options):
        result = self.sessions.alice.send_message(body, content_type, **options)
        self.sessions.flush()
        return result

    def test_each_refusal_of_a_message_is_reported(self):
        for body, content_type, code in ((b"x" * 60, "text/plain", 413),
                                         (b"picture", "image/png", 415)):
            result = self.send(body, content_type)
            self.assertEqual(self.failureResultOf(result, MSRPTransactionError).value.code,
                             code)
            self.assertEqual(self.answers.reports[-1].status.code, code)
            chunk, error = self.received.refused[-1]
            self.assertEqual((chunk.content_type, error.code), (content_type, code))
        self.assertEqual(self.answers.codes, [413, 415])
        self.assertEqual(self.received.started, [])

    def test_a_bad_byte_range_is_reported(self):
        chunk = self.sessions.alice.transport.make_chunk(data=b"abc")
        chunk.byte_range = "1-3/2"
        self.sessions.alice.send_chunk(chunk)
        self.sessions.flush()
        self.assertEqual(self.answers.codes, [400])
        [report] = self.answers.reports
        self.assertEqual((report.status.code, report.message_id), (400, chunk.message_id))

    def test_partial_asks_for_the_report_and_no_does_not(self):
        self.send(b"x" * 60, failure_report="partial")
        self.send(b"y" * 60, failure_report="no")
        self.assertEqual([r.status.code for r in self.answers.reports], [413])
        self.assertEqual(len(self.received.refused), 2)

    def test_a_refusal_of_the_session_is_not_reported(self):
        # A request for another session (481) is no message of ours: nothing goes back to
        # a From-Path that nobody checked.
        chunk = self.sessions.alice.transport.make_chunk(data=b"abc")
        chunk.to_path = [URI.parse("msrp://bob.test:2855/other;tcp")]
        self.sessions.alice.send_chunk(chunk)
        self.sessions.flush()
        self.assertEqual((self.answers.codes, self.answers.reports), ([481], []))

    def test_a_last_chunk_short_of_the_total_is_refused_not_confirmed(self):
        # A success REPORT never claims bytes that did not arrive.
        chunk = self.sessions.alice.transport.make_chunk(data=b"half", length=8,
                                                         contflag="$")
        chunk.success_report = "yes"
        self.sessions.alice.send_chunk(chunk)
        self.sessions.flush()
        self.assertEqual(self.answers.codes, [400])
        self.assertEqual([r.status.code for r in self.answers.reports], [400])
        self.assertEqual(self.received.received, [])
        self.assertEqual([reason.value.code for _, reason in self.received.failed], [400])


class FailureReportStopsTheMessageTests(unittest.TestCase):
    """A failure REPORT stops the message it is about, whatever reports it asked for."""

    def report_failure(self, sessions, message_id, code=413):
        report = make_report(MSRPData("x", method="SEND", headers=Headers([
            ("To-Path", BOB_URI), ("From-Path", ALICE_URI), ("Message-ID", message_id)])),
            code)
        sessions.bob.transport.write_chunk(report, sync=False)
        sessions.flush()

    def test_a_message_without_success_reports_under_way(self):
        sessions = pair()
        writer = sessions.alice.open_message("text/plain", size=100, message_id="under-way")
        writer.write(b"a" * 10)
        sessions.flush()
        self.assertNoResult(writer.result)
        self.report_failure(sessions, "under-way")
        self.assertEqual(self.failureResultOf(writer.result, MSRPTransactionError).value.code,
                         413)
        writer.write(b"b" * 10)  # stopped: nothing more of it goes out
        sessions.flush()
        self.assertEqual(sessions.bob._receiver.incoming, {})

    def test_a_failure_report_for_something_else_changes_nothing(self):
        sessions = pair()
        writer = sessions.alice.open_message("text/plain", size=100, message_id="mine")
        writer.write(b"a" * 10)
        sessions.flush()
        self.report_failure(sessions, "not-mine")
        self.assertNoResult(writer.result)

    def test_through_a_relay_a_refusal_after_the_200_still_fails_it(self):
        # A relay answers 200 itself: the peer's refusal comes later, as a failure
        # REPORT, within relayed_failure_wait.
        sessions = pair(relayed_failure_wait=2.0)
        sessions.alice.transport.relayed = True
        refused = sessions.alice.send_message(b"hi", "text/plain", message_id="refused",
                                              success_report="no")
        sent = sessions.alice.send_message(b"hi", "text/plain", message_id="sent",
                                           success_report="no")
        direct = sessions.bob.send_message(b"back", "text/plain", message_id="direct")
        sessions.flush()
        self.successResultOf(direct)  # bob's transport is direct: no wait
        self.assertNoResult(refused)
        self.report_failure(sessions, "refused", 415)
        self.assertEqual(self.failureResultOf(refused, MSRPTransactionError).value.code, 415)
        sessions.clock.advance(2.0)
        self.assertEqual(self.successResultOf(sent), "sent")
        self.assertEqual([call for call in sessions.clock.getDelayedCalls()
                          if call.func.__name__ == "_not_refused"], [])

    def test_through_a_relay_the_wait_ends_with_the_connection(self):
        sessions = pair(relayed_failure_wait=2.0)
        sessions.alice.transport.relayed = True
        sent = sessions.alice.send_message(b"hi", "text/plain", success_report="no")
        sessions.flush()
        sessions.alice.transport.loseConnection()
        sessions.flush()
        self.assertTrue(self.successResultOf(sent))


class SenderErrorTests(unittest.TestCase):
    def test_a_lost_connection_carries_no_status_code(self):
        sessions = pair()
        writer = sessions.alice.open_message("text/plain", size=100)
        writer.write(b"a" * 10)
        sessions.flush()
        sessions.bob.transport.loseConnection()
        sessions.flush()
        error = self.failureResultOf(writer.result, MSRPSessionError).value
        self.assertIsNone(error.code)

    def test_header_text_that_would_break_the_chunk_is_refused(self):
        sessions = pair()
        for content_type, headers in (("text/plain\r\nX-Evil: 1", None),
                                      ("text/plain\n", None),
                                      ("text/plain", {"X-Ok": "a\rb"}),
                                      ("text/plain", {"Bad Name": "v"})):
            self.assertRaises(ValueError, sessions.alice.send_message, b"x", content_type,
                              headers=headers)
            self.assertRaises(ValueError, sessions.alice.open_message, content_type,
                              headers=headers)


class IncompleteMessageTests(unittest.TestCase):
    """An incoming message that stops arriving does not hold its slot for ever."""

    def setUp(self):
        self.received = CollectingReceiver()
        self.sessions = pair(self.received, incomplete_message_timeout=60,
                             max_incoming_messages=2)
        self.answers = Answers(self.sessions.bob)
        self.writers = []

    def start_message(self, message_id):
        writer = self.sessions.alice.open_message("text/plain", size=100,
                                                  message_id=message_id)
        writer.write(b"a" * 10)
        self.sessions.flush()
        return writer

    def tearDown(self):
        for writer in self.writers:
            writer.result.addErrback(lambda failure: None)

    def test_it_expires_and_frees_its_slot(self):
        first = self.start_message("stalled1")
        self.sessions.clock.advance(30)
        self.start_message("stalled2")
        self.assertEqual(len(self.sessions.bob._receiver.incoming), 2)
        self.sessions.clock.advance(30)  # the first one's time is up, not the second's
        self.assertEqual(list(self.sessions.bob._receiver.incoming), ["stalled2"])
        [report] = self.answers.reports
        self.assertEqual((report.message_id, report.status.code), ("stalled1", 408))
        [(message, reason)] = self.received.failed
        self.assertEqual((message.message_id, reason.value.code), ("stalled1", 408))
        # The sender hears of it in that REPORT.
        self.sessions.flush()
        self.assertEqual(self.failureResultOf(first.result, MSRPTransactionError).value.code,
                         408)
        # Its slot is free for a new message, and the expired one is not taken up again.
        self.start_message("fresh")
        self.assertEqual(sorted(self.sessions.bob._receiver.incoming), ["fresh", "stalled2"])
        self.sessions.clock.advance(60)
        self.assertEqual(self.sessions.bob._receiver.incoming, {})

    def test_chunks_keep_it_alive(self):
        writer = self.start_message("slow")
        for _ in range(5):
            self.sessions.clock.advance(50)
            writer.write(b"b" * 10)
            self.sessions.flush()
        self.assertEqual(list(self.sessions.bob._receiver.incoming), ["slow"])
        self.assertEqual(self.received.failed, [])

    def test_a_message_its_consumer_holds_back_does_not_expire(self):
        self.received.sink = HoldingConsumer()
        self.start_message("held")
        self.received.sink.producer.pauseProducing()
        self.sessions.clock.advance(600)
        self.assertEqual(list(self.sessions.bob._receiver.incoming), ["held"])
        self.received.sink.producer.resumeProducing()
        self.sessions.clock.advance(60)
        self.assertEqual(self.sessions.bob._receiver.incoming, {})

    def test_none_turns_it_off(self):
        self.sessions.bob.settings.incomplete_message_timeout = None
        self.start_message("forever")
        self.sessions.clock.advance(10 ** 6)
        self.assertEqual(list(self.sessions.bob._receiver.incoming), ["forever"])


@implementer(IConsumer)
class HoldingConsumer:
    """An IConsumer that keeps its producer, for the test to pause and resume."""

    def __init__(self):
        self.producer = None
        self.data = []

    def registerProducer(self, producer, streaming):
        self.producer = producer

    def unregisterProducer(self):
        self.producer = None

    def write(self, data):
        self.data.append(data)


class SenderMessageIdTests(unittest.TestCase):
    def test_a_message_id_must_be_an_ident_and_not_under_way(self):
        sessions = pair()
        for bad in ("m1\r\nSuccess-Report: yes", "has space", "m" * 33, ""):
            self.assertRaises(ValueError, sessions.alice.send_message, b"x", "text/plain",
                              message_id=bad)
            self.assertRaises(ValueError, sessions.alice.open_message, "text/plain",
                              message_id=bad)
        first = sessions.alice.send_message(b"x", "text/plain", message_id="same",
                                            success_report="yes")
        self.assertRaises(ValueError, sessions.alice.send_message, b"y", "text/plain",
                          message_id="same")
        sessions.flush()
        self.successResultOf(first)
        again = sessions.alice.send_message(b"y", "text/plain", message_id="same")
        sessions.flush()
        self.successResultOf(again)  # once the first is done, the id is free again

    def test_a_report_that_names_no_bytes_is_ignored(self):
        sessions = pair()
        result = sessions.alice.send_message(b"hello", "text/plain", message_id="zero",
                                             success_report="yes")
        sessions.bob.write_report = lambda chunk: None  # bob reports nothing himself
        chunk = MSRPData("x", method="SEND", headers=Headers([
            ("To-Path", BOB_URI), ("From-Path", ALICE_URI), ("Message-ID", "zero")]))
        for byte_range in ("0-5/5", "1-5/5"):
            report = make_report(chunk, 200)
            report.headers["Byte-Range"] = byte_range
            sessions.bob.transport.write_chunk(report, sync=False)
        sessions.flush()
        self.assertEqual(self.successResultOf(result), "zero")


class ConsumerPauseTests(unittest.TestCase):
    def test_a_consumer_pauses_reading_as_one_reason_among_others(self):
        received = CollectingReceiver(HoldingConsumer())
        sessions = pair(received)
        protocol = sessions.bob.transport.protocol
        writer = sessions.alice.open_message("text/plain", size=100)
        writer.write(b"a" * 10)
        sessions.flush()
        received.sink.producer.pauseProducing()
        self.assertTrue(protocol.reading_paused)
        protocol.pause_reading("something else")
        received.sink.producer.resumeProducing()
        self.assertTrue(protocol.reading_paused)  # the other reason still holds
        protocol.resume_reading("something else")
        self.assertFalse(protocol.reading_paused)
        writer.result.addErrback(lambda failure: None)


class ConfirmThroughRelaysTests(unittest.TestCase):
    """Through a relay, a message asks for a success REPORT unless its sender says: the
    relay's 200s say nothing of the peer, and a relay may drop what it answered."""

    def asked(self, relayed, **settings):
        """Whether Bob sees a message Alice sends without saying ask for a report."""
        heard = CollectingReceiver()
        sessions = pair(heard, **settings)
        sessions.alice.transport.relayed = relayed
        sessions.alice.send_message(b"hi", "text/plain")
        sessions.flush()
        [message] = heard.received
        return message.headers.get("Success-Report") == "yes"

    def test_through_a_relay_by_default(self):
        self.assertTrue(self.asked(relayed=True))

    def test_not_directly_nor_when_turned_off(self):
        self.assertFalse(self.asked(relayed=False))
        self.assertFalse(self.asked(relayed=True, confirm_through_relays=False))

    def test_a_drop_after_the_relays_200_fails_the_message(self):
        sessions = pair(report_timeout=30.0)
        sessions.alice.transport.relayed = True
        sessions.bob.write_report = lambda report: None  # the relay dropped it after its 200
        result = sessions.alice.send_message(b"lost on the way", "text/plain")
        sessions.flush()
        sessions.clock.advance(30.0)
        self.assertEqual(self.failureResultOf(result, MSRPTransactionError).value.code, 408)
