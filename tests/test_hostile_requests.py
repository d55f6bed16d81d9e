"""What a bound session answers to requests that are well framed but wrong (RFC 4975
sections 7.1, 7.3 and 9): every one gets an MSRP status, the connection stays up, and the
same request gets the same answer wherever it comes (msrplib._rules)."""

from twisted.trial import unittest

from msrplib.errors import HeaderParseError, URIParseError
from msrplib.protocol import MSRPData, URI, parse_number
from msrplib.session import SessionSettings
from msrplib.testing import ALICE_URI, BOB_URI, CollectingReceiver, SessionPair
from tests.test_reports import reports_from


class Answers:
    """Bob's answers (code by transaction id) and REPORTs, as he writes them."""

    def __init__(self, session):
        self.codes = {}
        self.reports = reports_from(session)
        protocol = session.transport.protocol
        write_response = protocol.write_response

        def spy(request, code, comment=None):
            self.codes[request.transaction_id] = code
            return write_response(request, code, comment)

        protocol.write_response = spy


def request(tid, headers, body=b"", flag="$", method="SEND"):
    """A request's bytes as given: headers in order, repeated or missing as the test says."""
    lines = b"".join(b"%s: %s\r\n" % (name.encode(), value.encode()) for name, value in headers)
    if body or any(name == "Content-Type" for name, _ in headers):
        return b"MSRP %s %s\r\n%s\r\n%s\r\n-------%s%s\r\n" % (
            tid.encode(), method.encode(), lines, body, tid.encode(), flag.encode())
    return b"MSRP %s %s\r\n%s-------%s%s\r\n" % (tid.encode(), method.encode(), lines,
                                                tid.encode(), flag.encode())


PATHS = [("To-Path", BOB_URI), ("From-Path", ALICE_URI)]


def send(tid, body=b"hello", byte_range=None, message_id=None, extra=(), paths=PATHS,
         flag="$", content_type="text/plain"):
    headers = list(paths) + [("Message-ID", message_id or "m-" + tid),
                             ("Byte-Range", byte_range or "1-%d/%d" % (len(body), len(body)))]
    headers += list(extra)
    if content_type is not None:
        headers.append(("Content-Type", content_type))
    return request(tid, headers, body, flag)


class RequestCheckTests(unittest.TestCase):
    def setUp(self):
        self.received = CollectingReceiver()
        self.pair = SessionPair(settings=SessionSettings(keepalive_interval=0),
                                bob_options={"receiver": self.received})
        self.answers = Answers(self.pair.bob)

    def feed(self, *raw):
        self.pair.alice.transport.write(b"".join(raw), sync=False)
        self.pair.flush()

    def assertAnswered(self, expected):
        self.assertEqual(self.answers.codes, expected)
        self.assertTrue(self.pair.bob.transport.is_connected())

    def test_a_request_without_paths_is_400_not_a_close(self):
        self.feed(send("aaaa1", paths=[("From-Path", ALICE_URI)]),
                  send("aaaa2", paths=[("To-Path", BOB_URI)]),
                  request("aaaa3", [("To-Path", BOB_URI), ("From-Path", ALICE_URI)],
                          method="NICKNAME"),
                  request("aaaa4", [], method="SEND"))
        self.assertAnswered({"aaaa1": 400, "aaaa2": 400, "aaaa3": 501, "aaaa4": 400})

    def test_paths_of_spaces_are_400(self):
        self.feed(send("aaaa1", paths=[("To-Path", "   "), ("From-Path", ALICE_URI)]),
                  send("aaaa2", paths=[("To-Path", BOB_URI), ("From-Path", " \t ")]))
        self.assertAnswered({"aaaa1": 400, "aaaa2": 400})
        self.assertEqual(self.answers.reports, [])

    def test_a_header_given_twice_is_400(self):
        self.feed(send("aaaa1", extra=[("Byte-Range", "1-5/5")]),
                  send("aaaa2", paths=PATHS + [("To-Path", BOB_URI)]),
                  send("aaaa3", extra=[("Message-ID", "other")]),
                  send("aaaa4", extra=[("X-Note", "a"), ("X-Note", "b")]))
        self.assertAnswered({"aaaa1": 400, "aaaa2": 400, "aaaa3": 400, "aaaa4": 200})
        self.assertEqual(len(self.received.received), 1)

    def test_message_ids_are_rfc_4975_idents(self):
        self.feed(send("aaaa1", message_id="m" * 33), send("aaaa2", message_id="m" * 32),
                  send("aaaa3", message_id="a/b"), send("aaaa4", message_id="-abc"),
                  send("aaaa5", message_id="a.b+c%d=e-f"))
        self.assertAnswered({"aaaa1": 400, "aaaa2": 200, "aaaa3": 400, "aaaa4": 400,
                             "aaaa5": 200})
        self.assertEqual([m.message_id for m in self.received.received],
                         ["m" * 32, "a.b+c%d=e-f"])

    def test_numbers_are_ascii_digits_of_a_bounded_count(self):
        self.feed(send("aaaa1", byte_range="1-5/" + "9" * 5000),
                  send("aaaa2", byte_range="\u0661-5/5"),
                  send("aaaa3", byte_range="1-\u00b2/5"),
                  send("aaaa4", byte_range="+1-5/5"),
                  send("aaaa5", byte_range="1-5/99999999999999999999"))
        self.assertAnswered({"aaaa1": 400, "aaaa2": 400, "aaaa3": 400, "aaaa4": 400,
                             "aaaa5": 413})
        for text in ("9" * 5000, "\u0661", "\u00b2", "-1", " 1", "1_0", ""):
            self.assertRaises(HeaderParseError, parse_number, text)
        self.assertEqual(parse_number("9" * 20), int("9" * 20))
        chunk = MSRPData("abcd", method="AUTH")
        for text in ("\u00b2", "9" * 5000):
            chunk.headers["Expires"] = text
            self.assertRaises(HeaderParseError, getattr, chunk, "expires")
        for port in ("9" * 5000, "\u0661", "65536"):
            self.assertRaises(URIParseError, URI.parse, "msrp://a:%s/s;tcp" % port)

    def test_a_body_must_be_what_its_byte_range_says(self):
        self.feed(send("aaaa1", body=b"hello", byte_range="1-4/5"),
                  send("aaaa2", body=b"hello", byte_range="1-6/6"),
                  send("aaaa3", body=b"hello", byte_range="1-5/4"),
                  send("aaaa4", body=b"hello", byte_range="7-11/5"),
                  send("aaaa5", body=b"hello", byte_range="1-*/4"),
                  send("aaaa6", body=b"hello", byte_range="1-5/10", flag="$"),
                  send("aaaa7", body=b"hello", byte_range="1-5/5"))
        self.assertAnswered({"aaaa1": 400, "aaaa2": 400, "aaaa3": 400, "aaaa4": 400,
                             "aaaa5": 400, "aaaa6": 400, "aaaa7": 200})
        [message] = self.received.received
        self.assertEqual(message.data, b"hello")

    def test_a_streamed_body_must_be_what_its_byte_range_says(self):
        # Past the parser's max_buffered_body, the body comes in pieces: the same answers.
        big = b"b" * (300 * 1024)
        self.feed(send("aaaa1", body=big, byte_range="1-1000/%d" % len(big)),
                  send("aaaa2", body=big, byte_range="1-%d/%d" % (len(big) + 1, len(big) + 1)),
                  send("aaaa3", body=big))
        self.assertAnswered({"aaaa1": 400, "aaaa2": 400, "aaaa3": 200})
        self.assertEqual([m.data for m in self.received.received], [big])

    def test_the_same_request_gets_the_same_answer_as_a_binding(self):
        # The passive side of a connection checks its first chunk with the same rule.
        from msrplib._rules import request_error
        for raw in (send("aaaa1", paths=[("From-Path", ALICE_URI)]),
                    send("aaaa2", extra=[("Byte-Range", "1-5/5")]),
                    send("aaaa3", message_id="m" * 40)):
            from msrplib.protocol import ChunkParser
            [chunk] = list(ChunkParser().feed(raw))
            self.assertEqual(request_error(chunk).code, 400)
