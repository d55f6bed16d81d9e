"""Partial success REPORTs, and a sender paced by them (``max_unreported_bytes``).

In memory (iosim) with a task.Clock; the same pacing through a real relay whose receiver
stops reading is in ``test_relay_kamailio``.
"""

from twisted.trial import unittest

from msrplib.errors import MSRPSessionError, MSRPTransactionError
from msrplib.protocol import ByteRange, make_report
from msrplib.session import SessionSettings
from msrplib.testing import CollectingReceiver, SessionPair

BODY = bytes(range(100))


def settings(**changes):
    return SessionSettings(keepalive_interval=0, chunk_size=10, **changes)


class Pair:
    """Alice sends to Bob, each with their own settings; REPORTs that reach Alice are kept."""

    def __init__(self, testcase, alice_settings, bob_settings):
        self.received = CollectingReceiver()
        self.sessions = SessionPair(settings=alice_settings,
                                    bob_options={"receiver": self.received})
        self.sessions.bob.settings = bob_settings
        self.alice, self.bob, self.clock = (self.sessions.alice, self.sessions.bob,
                                            self.sessions.clock)
        self.reports = []
        hear_report = self.alice.report_received

        def keep(report):
            self.reports.append(str(report.byte_range))
            hear_report(report)

        testcase.patch(self.alice, "report_received", keep)

    def flush(self):
        self.sessions.flush()

    def bob_stops_reporting(self, testcase):
        write = self.bob.write_report

        def write_all_but_reports(chunk, *args, **kwargs):
            if chunk.method != "REPORT":
                write(chunk, *args, **kwargs)

        testcase.patch(self.bob, "write_report", write_all_but_reports)

    def bob_has(self):
        """Body bytes of the message Bob is receiving now."""
        [message] = self.bob._receiver.incoming.values()
        return message.received


class ProgressReportTests(unittest.TestCase):
    """The receiver confirms what arrived in order every ``progress_report_bytes``."""

    def test_reports_every_interval_then_the_whole(self):
        pair = Pair(self, settings(), settings(progress_report_bytes=30))
        result = pair.alice.send_message(BODY, "text/plain", success_report="yes")
        pair.flush()
        self.successResultOf(result)
        self.assertEqual(pair.reports, ["1-30/100", "1-60/100", "1-90/100", "1-100/100"])

    def test_off_reports_only_the_whole(self):
        pair = Pair(self, settings(), settings(progress_report_bytes=None))
        result = pair.alice.send_message(BODY, "text/plain", success_report="yes")
        pair.flush()
        self.successResultOf(result)
        self.assertEqual(pair.reports, ["1-100/100"])

    def test_no_reports_unless_asked(self):
        pair = Pair(self, settings(), settings(progress_report_bytes=10))
        result = pair.alice.send_message(BODY, "text/plain")
        pair.flush()
        self.successResultOf(result)
        self.assertEqual(pair.reports, [])

    def test_unknown_total_is_reported_as_star(self):
        pair = Pair(self, settings(), settings(progress_report_bytes=20))
        writer = pair.alice.open_message("text/plain", success_report="yes")
        writer.write(BODY[:50])
        pair.flush()
        self.assertEqual(pair.reports, ["1-20/*", "1-40/*"])
        writer.write(BODY[50:])
        result = writer.finish()
        pair.flush()
        self.successResultOf(result)
        self.assertEqual(pair.received.received[0].data, BODY)


class PacingTests(unittest.TestCase):
    """A message sent with success reports stays ``max_unreported_bytes`` ahead of them."""

    def paced_pair(self, progress_report_bytes=20):
        return Pair(self, settings(max_unreported_bytes=40),
                    settings(progress_report_bytes=progress_report_bytes))

    def held_message(self, **options):
        """A pair whose Bob reports whole messages only, and Alice's message held by the
        limit after its first 40 bytes."""
        pair = self.paced_pair(progress_report_bytes=None)
        result = pair.alice.send_message(BODY, "text/plain", success_report="yes", **options)
        pair.flush()
        self.assertEqual(pair.bob_has(), 40)
        return pair, result

    def test_a_reporting_peer_gets_the_whole_message(self):
        pair = self.paced_pair()
        result = pair.alice.send_message(BODY, "text/plain", success_report="yes")
        pair.flush()
        self.successResultOf(result)
        self.assertEqual(pair.received.received[0].data, BODY)
        self.assertIs(pair.alice._sender._window.peer_reports_progress, True)

    def test_never_more_than_the_limit_ahead_of_the_reports(self):
        pair = self.paced_pair()
        warm_up = pair.alice.send_message(BODY, "text/plain", success_report="yes")
        pair.flush()
        self.successResultOf(warm_up)
        result = pair.alice.send_message(BODY, "text/plain", success_report="yes")
        pair.alice.send_message(b"not paced", "text/plain")
        pair.bob_stops_reporting(self)
        pair.flush()
        self.assertEqual(pair.bob_has(), 40)
        self.assertEqual(pair.received.received[-1].data, b"not paced")
        self.assertNoResult(result)

    def test_a_peer_that_goes_silent_fails_the_message(self):
        pair = self.paced_pair()
        first = pair.alice.send_message(BODY, "text/plain", success_report="yes")
        pair.flush()
        self.successResultOf(first)
        pair.bob_stops_reporting(self)
        result = pair.alice.send_message(BODY, "text/plain", success_report="yes")
        pair.flush()
        pair.clock.advance(pair.alice.settings.report_timeout - 0.1)
        self.assertNoResult(result)
        pair.clock.advance(0.1)
        pair.flush()
        error = self.failureResultOf(result, MSRPTransactionError).value
        self.assertEqual(error.code, 408)
        [(message, reason)] = pair.received.failed
        self.assertEqual((message.received, reason.value.code), (40, 499))

    def test_a_peer_that_reports_whole_messages_only_is_probed_then_not_paced(self):
        pair, result = self.held_message()
        wait = pair.alice.settings.progress_report_wait
        pair.clock.advance(wait)  # no partial REPORT: the limit doubles, 80 bytes out
        pair.flush()
        self.assertEqual(pair.bob_has(), 80)
        self.assertIs(pair.alice._sender._window.peer_reports_progress, None)
        pair.clock.advance(wait)  # and again: the rest goes, and a whole REPORT comes
        pair.flush()
        self.successResultOf(result)
        self.assertIs(pair.alice._sender._window.peer_reports_progress, False)
        second = pair.alice.send_message(BODY, "text/plain", success_report="yes")
        pair.flush()
        self.successResultOf(second)
        self.assertEqual([m.data for m in pair.received.received], [BODY, BODY])

    def test_without_success_reports_nothing_is_paced(self):
        pair = self.paced_pair(progress_report_bytes=None)
        result = pair.alice.send_message(BODY, "text/plain")
        pair.flush()
        self.successResultOf(result)

    def test_a_held_message_can_be_aborted(self):
        pair, result = self.held_message(message_id="held")
        pair.alice.abort_message("held")
        pair.flush()
        self.assertEqual(self.failureResultOf(result, MSRPTransactionError).value.code, 499)
        [(message, reason)] = pair.received.failed
        self.assertEqual((message.message_id, reason.value.code), ("held", 499))
        self.assertEqual(pair.alice._sender._window.held, {})

    def test_a_failure_report_stops_a_held_message(self):
        pair, result = self.held_message()
        [message] = pair.bob._receiver.incoming.values()
        pair.bob.send_chunk(make_report(message.first_chunk, 415))
        pair.flush()
        self.assertEqual(self.failureResultOf(result, MSRPTransactionError).value.code, 415)
        [(failed, reason)] = pair.received.failed
        self.assertEqual((failed.received, reason.value.code), (40, 499))

    def test_a_report_on_bytes_not_sent_yet_confirms_only_those_sent(self):
        pair, result = self.held_message()
        [message] = pair.bob._receiver.incoming.values()
        pair.bob.send_chunk(make_report(message.first_chunk, 200,
                                        byte_range=ByteRange(1, 100, 100)))
        pair.flush()
        self.assertEqual(pair.bob_has(), 80)
        self.assertNoResult(result)

    def test_a_closed_connection_fails_a_held_message(self):
        pair, result = self.held_message()
        pair.bob.transport.loseConnection()
        pair.flush()
        self.failureResultOf(result, MSRPSessionError)
        self.assertEqual(pair.alice._sender._window.held, {})
        self.assertEqual(pair.clock.getDelayedCalls(), [])

    def test_shutdown_waits_for_a_held_message(self):
        pair, result = self.held_message()
        closed = pair.alice.shutdown()
        pair.flush()
        self.assertNoResult(closed)
        for _ in range(2):
            pair.clock.advance(pair.alice.settings.progress_report_wait)
            pair.flush()
        self.successResultOf(result)
        self.successResultOf(closed)

    def test_a_receiver_that_stalls_at_the_start_keeps_pacing_on(self):
        # Bob reports progress, but stalls before the first report of a file (a slow
        # disk, a user asked): Alice lets a little more go, never the whole file, and
        # once his reports come she paces by them again.
        pair = self.paced_pair(progress_report_bytes=20)
        stalled_reports = []
        write = pair.bob.write_report

        def held_back(chunk, *args, **kwargs):
            if chunk.method == "REPORT":
                stalled_reports.append(chunk)
            else:
                write(chunk, *args, **kwargs)

        pair.bob.write_report = held_back
        result = pair.alice.send_message(BODY * 3, "text/plain", success_report="yes")
        pair.flush()
        self.assertEqual(pair.bob_has(), 40)
        pair.clock.advance(pair.alice.settings.progress_report_wait)
        pair.flush()
        self.assertEqual(pair.bob_has(), 80)  # the limit doubled once: no flood
        self.assertIsNone(pair.alice._sender._window.peer_reports_progress)
        pair.bob.write_report = write  # his reports get out again
        for report in stalled_reports:
            write(report)
        pair.flush()
        self.successResultOf(result)
        window = pair.alice._sender._window
        self.assertIs(window.peer_reports_progress, True)
        self.assertEqual(window._probed, {})
        self.assertEqual(pair.received.received[0].data, BODY * 3)
