"""Message/CPIM (RFC 3862): the RFC's own example, escapes, strictness, round trips."""

from datetime import datetime, timedelta, timezone

from hypothesis import given, settings, strategies as st
from twisted.trial import unittest

from msrplib.cpim import (MAX_CPIM_HEADER_LENGTH, MAX_CPIM_HEADERS, Address, CPIMMessage,
                          CPIMParseError, format_datetime, parse_cpim)

# RFC 3862 section 5.1's example message, after its "Content-type: Message/CPIM" MIME
# header and blank line (which MSRP carries as the chunk's Content-Type).
RFC3862_EXAMPLE = (
    b"From: MR SANDERS <im:piglet@100akerwood.com>\r\n"
    b"To: Depressed Donkey <im:eeyore@100akerwood.com>\r\n"
    b"DateTime: 2000-12-13T13:40:00-08:00\r\n"
    b"Subject: the weather will be fine today\r\n"
    b"Subject:;lang=fr beau temps prevu pour aujourd'hui\r\n"
    b"NS: MyFeatures <mid:MessageFeatures@id.foo.com>\r\n"
    b"Require: MyFeatures.VitalMessageOption\r\n"
    b"MyFeatures.VitalMessageOption: Confirmation-requested\r\n"
    b"MyFeatures.WackyMessageOption: Use-silly-font\r\n"
    b"\r\n"
    b"Content-type: text/xml; charset=utf-8\r\n"
    b"Content-ID: <1234567890@foo.com>\r\n"
    b"\r\n"
    b"<body>\r\n"
    b"Here is the text of my message.\r\n"
    b"</body>\r\n")


class RFCExampleTests(unittest.TestCase):
    def setUp(self):
        self.message = parse_cpim(RFC3862_EXAMPLE)

    def test_round_trip_is_byte_for_byte(self):
        self.assertEqual(self.message.encode(), RFC3862_EXAMPLE)

    def test_addresses(self):
        self.assertEqual(self.message.sender,
                         Address("im:piglet@100akerwood.com", "MR SANDERS"))
        self.assertEqual(self.message.recipients,
                         [Address("im:eeyore@100akerwood.com", "Depressed Donkey")])
        self.assertEqual(self.message.cc, [])

    def test_date_time_and_subjects(self):
        self.assertEqual(self.message.moment,
                         datetime(2000, 12, 13, 13, 40, tzinfo=timezone(timedelta(hours=-8))))
        self.assertEqual(self.message.subject(), "the weather will be fine today")
        self.assertEqual(self.message.subject("fr"), "beau temps prevu pour aujourd'hui")
        self.assertIsNone(self.message.subject("de"))

    def test_namespaced_headers(self):
        self.assertEqual(self.message.namespaces,
                         {"MyFeatures": "mid:MessageFeatures@id.foo.com"})
        self.assertEqual(self.message.first("VitalMessageOption",
                                            "mid:MessageFeatures@id.foo.com"),
                         "Confirmation-requested")
        self.assertEqual(self.message.first("WackyMessageOption", "urn:other"), None)
        self.assertEqual(self.message.first("Require"), "MyFeatures.VitalMessageOption")

    def test_encapsulated_object(self):
        self.assertEqual((self.message.content_type, self.message.charset),
                         ("text/xml", "utf-8"))
        self.assertEqual(self.message.content_header("content-id"), "<1234567890@foo.com>")
        self.assertEqual(self.message.text,
                         "<body>\r\nHere is the text of my message.\r\n</body>\r\n")


class BuildTests(unittest.TestCase):
    def test_a_chat_message(self):
        moment = datetime(2026, 12, 7, 10, 0, tzinfo=timezone.utc)
        message = CPIMMessage.build(
            "h\u00e9llo", sender=Address("sip:alice@example.com", "Alice"),
            recipients=[Address("sip:bob@example.com")], moment=moment,
            namespaces={"imdn": "urn:ietf:params:imdn"},
            headers=[("imdn.Message-ID", "abc123")])
        self.assertEqual(message.encode(), (
            "From: Alice <sip:alice@example.com>\r\n"
            "To: <sip:bob@example.com>\r\n"
            "DateTime: 2026-12-07T10:00:00Z\r\n"
            "NS: imdn <urn:ietf:params:imdn>\r\n"
            "imdn.Message-ID: abc123\r\n"
            "\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n"
            "\r\n"
            "h\u00e9llo").encode("utf-8"))
        self.assertEqual(parse_cpim(message.encode()).text, "h\u00e9llo")

    def test_another_charset(self):
        message = CPIMMessage.build("gr\u00fc\u00df", "text/plain; charset=iso-8859-1")
        self.assertEqual(message.body, "gr\u00fc\u00df".encode("iso-8859-1"))
        self.assertEqual(parse_cpim(message.encode()).text, "gr\u00fc\u00df")

    def test_values_are_escaped(self):
        message = CPIMMessage.build(
            b"x", sender=Address("im:a@b", 'Mr "Quote" \\ Back'),
            subject="line one\nline two\t\\ end",
            moment=datetime(2026, 1, 1, tzinfo=timezone.utc))
        encoded = message.encode()
        self.assertIn(b'From: "Mr \\"Quote\\" \\\\ Back" <im:a@b>\r\n', encoded)
        self.assertIn(b"Subject: line one\\nline two\\t\\\\ end\r\n", encoded)
        parsed = parse_cpim(encoded)
        self.assertEqual(parsed.sender.display_name, 'Mr "Quote" \\ Back')
        self.assertEqual(parsed.subject(), "line one\nline two\t\\ end")

    def test_bad_names_are_refused(self):
        self.assertRaises(ValueError, CPIMMessage.build, b"", headers=[("Bad Name", "x")])
        self.assertRaises(ValueError, CPIMMessage.build, b"",
                          content_headers=[("X-Evil", "a\r\nInjected: yes")])


class StrictnessTests(unittest.TestCase):
    def refused(self, data, why):
        error = self.assertRaises(CPIMParseError, parse_cpim, data)
        self.assertIn(why, str(error))

    def test_no_blank_lines(self):
        self.refused(b"From: <im:a@b>\r\n", "no blank line after the message headers")
        self.refused(b"From: <im:a@b>\r\n\r\nContent-Type: text/plain\r\n",
                     "no blank line after the content headers")

    def test_bad_header_lines(self):
        for line in (b"From:<im:a@b>", b"From <im:a@b>", b"Fr om: x", b": x",
                     b"Subject:;lang= x", b"Subject: a\x07b", b"Subject: bad \\q escape",
                     b"From: <im:a@b>\n"):
            self.refused(line + b"\r\n\r\nContent-Type: text/plain\r\n\r\n", "")

    def test_core_header_values(self):
        cases = [(b"From: no angle brackets", "not an address"),
                 (b"To: <two words>", "not an address"),
                 (b"DateTime: 2000-13-45T99:00:00Z", "no such date-time"),
                 (b"DateTime: yesterday", "not an RFC 3339"),
                 (b"NS: <>", "not an NS value"),
                 (b"Require: a b", "not a list of header names"),
                 (b"From:;lang=en <im:a@b>", "takes no parameters"),
                 (b"Subject:;colour=red hi", "a Subject parameter"),
                 (b"Subject:;lang=123456789 hi", "a Subject parameter"),
                 (b"imdn.Message-ID: x", "was not declared"),
                 (b"From: <im:a@b>\r\nFrom: <im:c@d>", "more than one From")]
        for head, why in cases:
            self.refused(head + b"\r\n\r\nContent-Type: text/plain\r\n\r\n", why)

    def test_the_encapsulated_object(self):
        self.refused(b"From: <im:a@b>\r\n\r\nContent-ID: <x>\r\n\r\nbody", "no Content-Type")
        self.refused(b"From: <im:a@b>\r\n\r\nContent-Type:text/plain\r\n\r\n",
                     "not a content header")
        self.refused(b"From: <im:a@b>\r\n\r\n Content-Type: text/plain\r\n\r\n",
                     "not a content header")

    def test_not_utf8(self):
        self.refused(b"Subject: \xff\r\n\r\nContent-Type: text/plain\r\n\r\n", "not UTF-8")
        message = parse_cpim(b"From: <im:a@b>\r\n\r\nContent-Type: text/plain\r\n\r\n\xff")
        self.assertRaises(CPIMParseError, lambda: message.text)

    def test_limits(self):
        many = b"Subject: x\r\n" * MAX_CPIM_HEADERS
        self.refused(many + b"\r\nContent-Type: text/plain\r\n\r\n", "more than")
        long_subject = b"Subject: " + b"x" * MAX_CPIM_HEADER_LENGTH
        self.refused(long_subject + b"\r\n\r\nContent-Type: text/plain\r\n\r\n", "over")


_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)
_uri = st.from_regex(r"(im|sip):[a-z0-9]{1,10}@[a-z0-9.]{1,20}", fullmatch=True)
_addresses = st.builds(Address, _uri, st.none() | _text)
_names = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9-]{0,15}", fullmatch=True)


class RoundTripTests(unittest.TestCase):
    @settings(max_examples=300, deadline=None)
    @given(sender=st.none() | _addresses, recipients=st.lists(_addresses, max_size=3),
           subject=st.none() | _text, body=st.binary(max_size=200) | _text,
           extra=st.lists(st.tuples(_names, _text), max_size=4),
           moment=st.datetimes(timezones=st.just(timezone.utc)))
    def test_what_is_built_parses_back(self, sender, recipients, subject, body, extra,
                                       moment):
        message = CPIMMessage.build(
            body, sender=sender, recipients=recipients, subject=subject,
            moment=moment.replace(microsecond=0), namespaces={"x": "urn:example:x"},
            headers=[("x." + name, text) for name, text in extra])
        encoded = message.encode()
        parsed = parse_cpim(encoded)
        self.assertEqual(parsed.encode(), encoded)
        self.assertEqual(parsed.sender, sender)
        self.assertEqual(parsed.recipients, recipients)
        self.assertEqual(parsed.subject(), subject)
        self.assertEqual(parsed.moment, moment.replace(microsecond=0))
        self.assertEqual([parsed.first(name, "urn:example:x") is not None
                          for name, _ in extra], [True] * len(extra))
        for header, (name, text) in zip(parsed.in_namespace("urn:example:x"), extra):
            self.assertEqual((header.local_name, header.text), (name, text))
        self.assertEqual(parsed.body, body if isinstance(body, bytes)
                         else body.encode("utf-8"))

    @settings(max_examples=500, deadline=None)
    @given(st.binary(max_size=300))
    def test_anything_parses_or_is_refused_clearly(self, data):
        try:
            message = parse_cpim(data)
        except CPIMParseError:
            return
        self.assertEqual(message.encode(), data)

    def test_a_leap_second_is_taken(self):
        message = parse_cpim(b"DateTime: 2016-12-31T23:59:60Z\r\n\r\n"
                             b"Content-Type: text/plain\r\n\r\n")
        self.assertEqual(message.moment, datetime(2016, 12, 31, 23, 59, 59,
                                                  tzinfo=timezone.utc))
        self.assertEqual(message.first("DateTime"), "2016-12-31T23:59:60Z")

    def test_what_cannot_be_written_is_refused_when_built(self):
        self.assertRaises(ValueError, CPIMMessage.build, b"", subject="\ud800")
        self.assertRaises(ValueError, CPIMMessage.build, b"",
                          recipients=[Address("sip:a@b c")])

    def test_format_datetime(self):
        zone = timezone(timedelta(hours=5, minutes=30))
        self.assertEqual(format_datetime(datetime(2026, 1, 2, 3, 4, 5, tzinfo=zone)),
                         "2026-01-02T03:04:05+05:30")
        self.assertEqual(format_datetime(datetime(2026, 1, 2, 3, 4, 5)),
                         "2026-01-02T03:04:05Z")
