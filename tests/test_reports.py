"""REPORTs that tell the truth: what a receiver confirms or refuses, and what the sender
learns from it (RFC 4975 sections 5.3 and 7.1.2), on an in-memory pair and a Clock."""

from twisted.internet.defer import Deferred
from twisted.trial import unittest

from msrplib.errors import MSRPError, MSRPTransactionError
from msrplib.session import SessionSettings
from msrplib.testing import CollectingReceiver, SessionPair


def pair(bob_receiver=None, **settings):
    settings.setdefault("keepalive_interval", 0)
    return SessionPair(settings=SessionSettings(**settings),
                       bob_options={"receiver": bob_receiver or CollectingReceiver()})


def reports_from(session):
    """The REPORTs ``session`` writes, as they are written."""
    reports = []
    write = session._write

    def spy(chunk, *args, **kwargs):
        if chunk.method == "REPORT":
            reports.append(chunk)
        return write(chunk, *args, **kwargs)

    session._write = spy
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
