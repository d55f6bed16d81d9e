"""IMDN (RFC 5438): asking for notifications, answering them, reading them, and hostile
XML refused."""

from datetime import datetime, timedelta, timezone

from hypothesis import given, settings, strategies as st
from twisted.trial import unittest

from msrplib.cpim import Address, CPIMMessage, parse_cpim
from msrplib.imdn import (IMDN_CONTENT_TYPE, MAX_IMDN_BYTES, STATUSES, IMDNParseError,
                          Notification, imdn_message_id, notification_for,
                          parse_notification, request_notifications, requested)

# RFC 5438's message that asks for notifications (section 7.1.1), as a CPIM body.
RFC5438_REQUEST = (
    b"From: Alice <im:alice@example.com>\r\n"
    b"To: Bob <im:bob@example.com>\r\n"
    b"NS: imdn <urn:ietf:params:imdn>\r\n"
    b"imdn.Message-ID: 34jk324j\r\n"
    b"DateTime: 2006-04-04T12:16:49-05:00\r\n"
    b"imdn.Disposition-Notification: positive-delivery, display\r\n"
    b"\r\n"
    b"Content-type: text/plain\r\n"
    b"Content-length: 12\r\n"
    b"\r\n"
    b"Hello World\n")

# Its delivery notification's document (section 7.2.1.1).
RFC5438_DELIVERED = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b'<imdn xmlns="urn:ietf:params:xml:ns:imdn">\n'
    b"  <message-id>34jk324j</message-id>\n"
    b"  <datetime>2008-04-04T12:16:49-05:00</datetime>\n"
    b"  <recipient-uri>im:bob@example.com</recipient-uri>\n"
    b"  <original-recipient-uri\n"
    b"      >im:bob@example.com</original-recipient-uri>\n"
    b"  <delivery-notification>\n"
    b"     <status>\n"
    b"        <delivered/>\n"
    b"     </status>\n"
    b"  </delivery-notification>\n"
    b"</imdn>\n")

BILLION_LAUGHS = (
    b'<?xml version="1.0"?>\n<!DOCTYPE lolz [<!ENTITY lol "lol">'
    b'<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
    b'<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>'
    b'<imdn xmlns="urn:ietf:params:xml:ns:imdn"><message-id>&lol3;</message-id>'
    b"<datetime>2008-04-04T12:16:49-05:00</datetime>"
    b"<delivery-notification><status><delivered/></status></delivery-notification></imdn>")

EXTERNAL_ENTITY = (
    b'<?xml version="1.0"?>\n<!DOCTYPE imdn [<!ENTITY secret SYSTEM "file:///etc/passwd">]>'
    b'<imdn xmlns="urn:ietf:params:xml:ns:imdn"><message-id>&secret;</message-id>'
    b"<datetime>2008-04-04T12:16:49-05:00</datetime>"
    b"<delivery-notification><status><delivered/></status></delivery-notification></imdn>")


class RFCExampleTests(unittest.TestCase):
    def test_the_request(self):
        message = parse_cpim(RFC5438_REQUEST)
        self.assertEqual(message.encode(), RFC5438_REQUEST)
        self.assertEqual(imdn_message_id(message), "34jk324j")
        self.assertEqual(requested(message), {"positive-delivery", "display"})

    def test_the_delivery_notification(self):
        notification = Notification.from_xml(RFC5438_DELIVERED)
        self.assertEqual(notification, Notification(
            "34jk324j", datetime(2008, 4, 4, 12, 16, 49, tzinfo=timezone(timedelta(hours=-5))),
            "delivery", "delivered", "im:bob@example.com", "im:bob@example.com"))
        self.assertEqual(Notification.from_xml(notification.to_xml()), notification)


class AskingAndAnsweringTests(unittest.TestCase):
    def setUp(self):
        self.message = CPIMMessage.build(
            "hi", sender=Address("im:alice@example.com", "Alice"),
            recipients=[Address("im:bob@example.com", "Bob")])
        self.message_id = request_notifications(self.message)

    def test_the_request_headers(self):
        parsed = parse_cpim(self.message.encode())
        self.assertEqual(imdn_message_id(parsed), self.message_id)
        self.assertEqual(requested(parsed), {"positive-delivery", "display"})
        self.assertEqual(parsed.namespaces, {"imdn": "urn:ietf:params:imdn"})

    def test_delivered_and_displayed(self):
        for kind, status in (("delivery", "delivered"), ("display", "displayed")):
            answer = parse_cpim(notification_for(self.message, kind, status).encode())
            self.assertEqual(answer.content_type, IMDN_CONTENT_TYPE)
            self.assertEqual(answer.content_header("Content-Disposition"), "notification")
            self.assertEqual(answer.recipients, [self.message.sender])
            self.assertEqual(answer.sender, self.message.recipients[0])
            notification = parse_notification(answer)
            self.assertEqual((notification.message_id, notification.kind,
                              notification.status, notification.sent_at),
                             (self.message_id, kind, status, self.message.moment))

    def test_nothing_unasked(self):
        self.assertRaises(ValueError, notification_for, self.message, "delivery", "failed")
        self.assertRaises(ValueError, notification_for, self.message, "processing",
                          "processed")
        self.assertRaises(ValueError, notification_for, self.message, "display", "delivered")
        plain = CPIMMessage.build("no request")
        self.assertRaises(ValueError, notification_for, plain, "delivery", "delivered")
        self.assertEqual(requested(plain), frozenset())

    def test_unknown_dispositions(self):
        self.assertRaises(ValueError, request_notifications, CPIMMessage.build("x"),
                          ["positive-delivery", "telepathy"])


class HostileXMLTests(unittest.TestCase):
    def refused(self, data, why):
        error = self.assertRaises(IMDNParseError, Notification.from_xml, data)
        self.assertIn(why, str(error))

    def test_entities_and_dtds_are_refused(self):
        self.refused(BILLION_LAUGHS, "refused XML")
        self.refused(EXTERNAL_ENTITY, "refused XML")

    def test_malformed_documents(self):
        ns = b'<imdn xmlns="urn:ietf:params:xml:ns:imdn">'
        when = b"<datetime>2008-04-04T12:16:49Z</datetime>"
        delivered = b"<delivery-notification><status><delivered/></status>" \
                    b"</delivery-notification>"
        cases = [(b"<imdn", "not XML"),
                 (b"<other/>", "not an imdn document"),
                 (ns + when + delivered + b"</imdn>", "no <message-id>"),
                 (ns + b"<message-id>a</message-id><message-id>b</message-id>" + when
                  + delivered + b"</imdn>", "more than one"),
                 (ns + b"<message-id>a</message-id>" + when + b"</imdn>",
                  "0 notification kinds"),
                 (ns + b"<message-id>a</message-id>" + when + b"<delivery-notification>"
                  b"<status><displayed/></status></delivery-notification></imdn>",
                  "no such delivery status"),
                 (ns + b"<message-id>a</message-id><datetime>soon</datetime>" + delivered
                  + b"</imdn>", "not an RFC 3339"),
                 (b" " * (MAX_IMDN_BYTES + 1), "over")]
        for data, why in cases:
            self.refused(data, why)

    @settings(max_examples=300, deadline=None)
    @given(st.binary(max_size=400))
    def test_anything_parses_or_is_refused_clearly(self, data):
        try:
            Notification.from_xml(data)
        except IMDNParseError:
            pass


class RoundTripTests(unittest.TestCase):
    @settings(max_examples=200, deadline=None)
    @given(kind_status=st.sampled_from([(kind, status) for kind, statuses in STATUSES.items()
                                        for status in statuses]),
           message_id=st.from_regex(r"[A-Za-z0-9]{1,32}", fullmatch=True),
           moment=st.datetimes(timezones=st.just(timezone.utc)),
           subject=st.none() | st.text(st.characters(min_codepoint=0x20,
                                                     blacklist_categories=("Cs",)),
                                       max_size=30).map(str.strip))
    def test_documents(self, kind_status, message_id, moment, subject):
        notification = Notification(message_id, moment.replace(microsecond=0), *kind_status,
                                    recipient_uri="im:bob@example.com", subject=subject)
        self.assertEqual(Notification.from_xml(notification.to_xml()), notification)
