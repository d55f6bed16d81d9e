"""Is-composing (RFC 3994): the documents, and the two state machines on a task.Clock."""

from datetime import datetime, timezone

from twisted.internet.task import Clock
from twisted.trial import unittest

from msrplib.iscomposing import (ASSUMED_REFRESH, IDLE_TIMEOUT, REFRESH_LEAD,
                                 ComposingIndicator, ComposingWatcher, IsComposing,
                                 IsComposingParseError)

# RFC 3994's idle example (section 7), and an active one of the same form.
RFC3994_IDLE = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b'<isComposing xmlns="urn:ietf:params:xml:ns:im-iscomposing"\n'
    b'  xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"\n'
    b'  xsi:schemaLocation="urn:ietf:params:xml:ns:im-composing iscomposing.xsd">\n'
    b"  <state>idle</state>\n"
    b"  <lastactive>2003-01-27T10:43:00Z</lastactive>\n"
    b"  <contenttype>audio</contenttype>\n"
    b"</isComposing>\n")
RFC3994_ACTIVE = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b'<isComposing xmlns="urn:ietf:params:xml:ns:im-iscomposing"\n'
    b'  xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"\n'
    b'  xsi:schemaLocation="urn:ietf:params:xml:ns:im-composing iscomposing.xsd">\n'
    b"  <state>active</state>\n"
    b"  <contenttype>text/plain</contenttype>\n"
    b"  <refresh>90</refresh>\n"
    b"</isComposing>\n")


class DocumentTests(unittest.TestCase):
    def test_the_rfc_examples(self):
        self.assertEqual(IsComposing.from_xml(RFC3994_IDLE), IsComposing(
            "idle", datetime(2003, 1, 27, 10, 43, tzinfo=timezone.utc), "audio"))
        self.assertEqual(IsComposing.from_xml(RFC3994_ACTIVE),
                         IsComposing("active", None, "text/plain", 90))

    def test_round_trips(self):
        for document in (IsComposing("active", refresh=60),
                         IsComposing("idle", datetime(2026, 1, 1, tzinfo=timezone.utc),
                                     "text/plain")):
            self.assertEqual(IsComposing.from_xml(document.to_xml()), document)

    def test_bad_documents(self):
        ns = b'<isComposing xmlns="urn:ietf:params:xml:ns:im-iscomposing">'
        for data in (b"<isComposing", b"<other/>", ns + b"</isComposing>",
                     ns + b"<state>sleepy</state></isComposing>",
                     ns + b"<state>active</state><refresh>-5</refresh></isComposing>",
                     ns + b"<state>active</state><refresh>9999999999</refresh></isComposing>",
                     ns + b"<state>idle</state><refresh>60</refresh></isComposing>",
                     ns + b"<state>idle</state><lastactive>then</lastactive></isComposing>",
                     ns + b"<state>idle</state><state>active</state></isComposing>",
                     b'<!DOCTYPE x [<!ENTITY a "b">]>' + ns
                     + b"<state>&a;</state></isComposing>"):
            self.assertRaises(IsComposingParseError, IsComposing.from_xml, data)


class IndicatorTests(unittest.TestCase):
    def setUp(self):
        self.clock = Clock()
        self.sent = []
        self.indicator = ComposingIndicator(self.sent.append, self.clock, refresh=60)

    def states(self):
        return [document.state for document in self.sent]

    def test_active_then_idle_after_the_timeout(self):
        self.indicator.typing()
        self.assertEqual(self.sent, [IsComposing("active", content_type="text/plain",
                                                 refresh=60)])
        for _ in range(5):
            self.clock.advance(2)
            self.indicator.typing()  # more typing: nothing more to say
        self.assertEqual(self.states(), ["active"])
        self.clock.advance(IDLE_TIMEOUT - 0.1)
        self.assertEqual(self.states(), ["active"])
        self.clock.advance(0.1)
        self.assertEqual(self.states(), ["active", "idle"])
        self.assertEqual(self.sent[-1].last_active,
                         datetime.fromtimestamp(10, timezone.utc))
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_long_typing_is_refreshed_before_the_interval_runs_out(self):
        self.indicator.typing()
        for _ in range(int((60 - REFRESH_LEAD) / 5)):
            self.clock.advance(5)
            self.indicator.typing()
        self.assertEqual(self.states(), ["active", "active"])
        self.assertEqual(self.clock.seconds(), 60 - REFRESH_LEAD)

    def test_sending_the_message_ends_it_silently(self):
        self.indicator.typing()
        self.indicator.message_sent()
        self.clock.advance(100)
        self.assertEqual(self.states(), ["active"])
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.indicator.typing()  # the next message
        self.assertEqual(self.states(), ["active", "active"])


class WatcherTests(unittest.TestCase):
    def setUp(self):
        self.clock = Clock()
        self.changes = []
        self.watcher = ComposingWatcher(self.clock, self.changes.append)

    def test_active_expires_after_its_refresh(self):
        self.watcher.received(IsComposing("active", refresh=60))
        self.clock.advance(59)
        self.watcher.received(IsComposing("active", refresh=60))  # refreshed
        self.clock.advance(59)
        self.assertEqual(self.changes, ["active"])
        self.clock.advance(1)
        self.assertEqual(self.changes, ["active", "idle"])

    def test_without_a_refresh_it_is_assumed(self):
        self.watcher.received(IsComposing("active"))
        self.clock.advance(ASSUMED_REFRESH - 1)
        self.assertEqual(self.watcher.state, "active")
        self.clock.advance(1)
        self.assertEqual(self.watcher.state, "idle")

    def test_idle_and_a_message_end_it(self):
        self.watcher.received(IsComposing("active", refresh=60))
        self.watcher.received(IsComposing("idle"))
        self.watcher.received(IsComposing("active", refresh=60))
        self.watcher.message_received()
        self.assertEqual(self.changes, ["active", "idle", "active", "idle"])
        self.assertEqual(self.clock.getDelayedCalls(), [])
