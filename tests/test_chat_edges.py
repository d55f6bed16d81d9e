"""Edges of cpim, imdn, iscomposing and chat found by review (each failed on 0613323)."""

import os
import subprocess
import sys

from twisted.trial import unittest

from msrplib import cpim
from msrplib.cpim import Address, CPIMMessage, parse_cpim
from msrplib.imdn import (IMDNParseError, Notification, imdn_message_id, notification_for,
                          parse_notification, request_notifications)
from msrplib.iscomposing import IsComposing, IsComposingParseError
from tests.test_chat import ALICE, BOB, InMemoryChat

CT = b"\r\n\r\nContent-Type: text/plain\r\n\r\nx"
IMDN = b'<imdn xmlns="urn:ietf:params:xml:ns:imdn"><message-id>x</message-id>' \
       b'<datetime>2024-01-01T00:00:00Z</datetime><delivery-notification><status>' \
       b'<delivered/></status></delivery-notification></imdn>'
HOSTILE_ENCODINGS = ("x-bogus", "shift_jis", "rot13", "idna", "utf-32")


def original(head):
    return parse_cpim(b"From: <sip:a@b>\r\nTo: <sip:c@d>\r\n" + head + CT)


class CPIMTests(unittest.TestCase):
    def test_parameter_backtracking_is_bounded(self):
        # TOKEN and [0-9]+ both match "1": 2**n paths before the missing SP is refused.
        code = ("from msrplib.cpim import parse_cpim, CPIMParseError\n"
                "try: parse_cpim(b'Subject:' + b';a=1' * 60 + %r)\n"
                "except CPIMParseError: pass\n" % CT)
        env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(cpim.__file__)))
        try:
            subprocess.run([sys.executable, "-c", code], env=env, timeout=10, check=True)
        except subprocess.TimeoutExpired:
            self.fail("a 250-byte header line takes more than 10 s to refuse")

    def assertBuildIsSafe(self, body=b"x", **options):
        try:
            built = CPIMMessage.build(body, **options)
        except ValueError:
            return
        parsed = parse_cpim(built.encode())  # no CPIMParseError, no injected header
        self.assertEqual([h.name for h in parsed.headers], [h.name for h in built.headers])
        self.assertEqual(parsed.body, built.body)

    def test_build_uri_cannot_inject_headers(self):
        self.assertBuildIsSafe(sender=Address("sip:a@b>\r\nX-Evil: 1"))

    def test_build_content_type_cannot_inject(self):
        self.assertBuildIsSafe(content_type="text/plain\r\n\r\nEVIL")

    def test_build_namespace_prefix_checked(self):
        self.assertBuildIsSafe(namespaces={"a b": "urn:x"})

    def test_second_prefix_for_a_namespace(self):
        message = original(b"DateTime: 2024-01-01T00:00:00Z\r\n"
                           b"NS: imdn <urn:ietf:params:imdn>\r\nimdn.Message-ID: abc\r\n"
                           b"NS: i <urn:ietf:params:imdn>")
        self.assertEqual(imdn_message_id(message), "abc")

    def test_redeclared_prefix_applies_to_later_headers_only(self):
        message = original(b"NS: imdn <urn:other>\r\nimdn.Message-ID: spoof\r\n"
                           b"NS: imdn <urn:ietf:params:imdn>")
        self.assertIsNone(imdn_message_id(message))


class IMDNTests(unittest.TestCase):
    def test_datetime_echoed_exactly(self):
        asked = original(b"DateTime: 2024-01-01T10:00:00.123+01:00")
        request_notifications(asked, ["positive-delivery"])
        answer = parse_notification(notification_for(asked, "delivery", "delivered"))
        self.assertEqual(answer.sent_at, asked.moment)

    def test_notification_for_a_non_token_message_id_is_well_formed(self):
        asked = original(b"DateTime: 2024-01-01T10:00:00Z\r\nNS: imdn <urn:ietf:params:imdn>"
                         b"\r\nimdn.Message-ID: a\\u0001b\r\n"
                         b"imdn.Disposition-Notification: positive-delivery")
        try:
            answer = notification_for(asked, "delivery", "delivered")
        except ValueError:
            return
        parse_notification(answer)  # today: IMDNParseError on our own XML

    def test_xml_encoding_declarations_raise_parse_errors(self):
        for encoding in HOSTILE_ENCODINGS:
            declaration = b'<?xml version="1.0" encoding="%s"?>' % encoding.encode()
            self.assertRaises(IMDNParseError, Notification.from_xml, declaration + IMDN)
            self.assertRaises(IsComposingParseError, IsComposing.from_xml,
                              declaration + b"<isComposing/>")


class ChatTests(unittest.TestCase):
    def setUp(self):
        self.chat = InMemoryChat()

    def from_bob(self, body, content_type="message/cpim"):
        sent = self.chat.pair.bob.send_message(body, content_type, success_report="yes")
        self.chat.flush()
        return sent

    def forged(self, sent, kind, status, asked):
        copy = CPIMMessage.build("x", sender=ALICE, recipients=[BOB])
        request_notifications(copy, [asked], message_id=sent.imdn_message_id)
        return notification_for(copy, kind, status, sender=BOB).encode()

    def test_unrequested_notification_kinds_are_dropped(self):
        self.chat.alice.notifications = ("positive-delivery",)
        sent = self.chat.alice.send_text("hi")
        self.chat.flush()
        self.from_bob(self.forged(sent, "display", "displayed", "display"))
        self.from_bob(self.forged(sent, "delivery", "failed", "negative-delivery"))
        self.assertEqual([(n.kind, n.status) for n in sent.notifications],
                         [("delivery", "delivered")])

    def test_repeated_notifications_do_not_pile_up(self):
        sent = self.chat.alice.send_text("hi")
        self.chat.flush()
        forged = self.forged(sent, "delivery", "delivered", "positive-delivery")
        for _ in range(50):
            self.from_bob(forged)
        self.assertEqual(len(sent.notifications), 1)

    def test_no_typing_timers_after_the_session_ended(self):
        self.chat.pair.alice.abort()
        self.chat.flush()
        before = len(self.chat.pair.clock.getDelayedCalls())
        self.chat.alice.composing()
        self.assertEqual(len(self.chat.pair.clock.getDelayedCalls()), before)

    def test_hostile_xml_encoding_is_refused_with_400(self):
        wrapped = CPIMMessage.build(b'<?xml version="1.0" encoding="x-bogus"?>' + IMDN,
                                    "message/imdn+xml")
        error = self.failureResultOf(self.from_bob(wrapped.encode())).value
        self.assertEqual(error.code, 400)  # today 413 "too large", from a LookupError

    def test_plain_text_in_an_odd_charset_is_delivered(self):
        self.successResultOf(self.from_bob(b"a" * 100, "text/plain; charset=idna"))
        self.assertEqual(len(self.chat.alice_heard), 1)  # today: UnicodeError -> 413

    def test_binary_inside_cpim_is_delivered(self):
        png = b"\x89PNG\r\n\x1a\n\xff\xfe"
        wrapped = CPIMMessage.build(png, "image/png", sender=BOB, recipients=[ALICE])
        self.successResultOf(self.from_bob(wrapped.encode()))
        self.assertEqual([m.body for m in self.chat.alice_heard], [png])
