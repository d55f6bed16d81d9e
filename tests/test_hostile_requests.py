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


class MessageRuleTests(RequestCheckTests):
    """The rules that hold across a message's chunks (review findings)."""

    def test_a_body_needs_a_content_type_whatever_its_size(self):
        for tid, body in (("aaaa1", b"x" * 1000), ("aaaa2", b"y" * 300000)):
            self.feed(send(tid, body=body, content_type=None))
        self.assertAnswered({"aaaa1": 400, "aaaa2": 400})
        self.assertEqual(self.received.started, [])
        self.assertEqual([error.code for _, error in self.received.refused], [400, 400])

    def test_a_total_first_told_later_is_kept_to(self):
        self.feed(send("aaaa1", body=b"hello", byte_range="1-5/*", flag="+",
                       message_id="late"),
                  send("aaaa2", body=b"world", byte_range="6-10/20", message_id="late"))
        self.assertAnswered({"aaaa1": 200, "aaaa2": 400})
        self.assertEqual(self.received.received, [])
        self.feed(send("bbbb1", body=b"hello", byte_range="1-5/*", flag="+", message_id="less"),
                  send("bbbb2", body=b"x", byte_range="6-6/3", message_id="less"))
        self.assertEqual(self.answers.codes["bbbb2"], 400)

    def test_a_start_may_be_one_past_a_known_total_and_no_further(self):
        # The empty range just after the last byte (1-*/0, the 1-0/0 of an empty message)
        # is well formed; a start beyond it is not (found by the hostile-input fuzzer).
        self.feed(send("aaaa1", body=b"", content_type=None, byte_range="1-*/0", flag="+",
                       message_id="edge"),
                  send("aaaa2", body=b"", content_type=None, byte_range="2-*/0", flag="+",
                       message_id="past"),
                  send("aaaa3", body=b"", content_type=None, byte_range="7-*/5", flag="+",
                       message_id="past2"))
        self.assertAnswered({"aaaa1": 200, "aaaa2": 400, "aaaa3": 400})

    def test_a_later_chunk_refused_refuses_the_whole_message(self):
        self.pair.bob.accept_types = ["text/plain"]
        self.feed(send("aaaa1", body=b"hello", byte_range="1-5/10", flag="+", message_id="mix"),
                  send("aaaa2", body=b"world", byte_range="6-10/10", message_id="mix",
                       content_type="image/png"),
                  send("aaaa3", body=b"again", byte_range="6-10/10", message_id="mix"))
        self.assertAnswered({"aaaa1": 200, "aaaa2": 415, "aaaa3": 415})
        self.assertEqual(self.pair.bob._receiver.incoming, {})
        self.assertEqual([(m.message_id, r.value.code) for m, r in self.received.failed],
                         [("mix", 415)])
        self.assertEqual(self.received.refused, [])
        self.assertEqual([r.status.code for r in self.answers.reports], [415])

    def test_a_message_aborted_by_the_chunk_that_completes_it_is_not_delivered(self):
        # Its last chunk came first; the one that fills the gap before it says "#".
        self.feed(send("aaaa1", body=b"world", byte_range="6-10/10", message_id="ab",
                       extra=[("Success-Report", "yes")]),
                  send("aaaa2", body=b"hello", byte_range="1-5/10", message_id="ab",
                       flag="#", extra=[("Success-Report", "yes")]))
        self.assertAnswered({"aaaa1": 200, "aaaa2": 200})
        self.assertEqual(self.received.received, [])
        self.assertEqual([(m.message_id, r.value.code) for m, r in self.received.failed],
                         [("ab", 499)])
        self.assertEqual(self.answers.reports, [])  # no success REPORT for it
        self.assertEqual(self.pair.bob._receiver.incoming, {})

    def test_a_message_that_expires_while_its_chunk_arrives_is_not_delivered(self):
        self.pair.bob.settings.incomplete_message_timeout = 300
        size = 1000000
        wire = send("aaaa1", body=b"z" * size, extra=[("Success-Report", "yes")])
        self.feed(wire[:400000])
        self.pair.clock.advance(200)
        self.feed(wire[400000:800000])  # still arriving, 400 s after it began: not stalled
        self.pair.clock.advance(200)
        self.assertEqual(self.received.failed, [])
        self.feed(wire[800000:])
        [message] = self.received.received
        self.assertEqual(message.data, b"z" * size)
        self.assertEqual([r.status.code for r in self.answers.reports], [200])
        # Stalled for good in the middle of its chunk: dropped, and not completed after.
        stalled = send("bbbb1", body=b"w" * size, extra=[("Success-Report", "yes")])
        self.feed(stalled[:600000])
        self.pair.clock.advance(301)
        self.feed(stalled[600000:])
        self.assertEqual(len(self.received.received), 1)
        self.assertEqual([r.status.code for r in self.answers.reports], [200, 408])
        self.assertEqual(self.answers.codes["bbbb1"], 408)

    def test_an_empty_binding_send_must_name_no_bytes(self):
        from msrplib._bind import accept_binding
        from msrplib._rules import is_empty_send
        from msrplib.protocol import ChunkParser
        [good] = ChunkParser().feed(send("aaaa1", body=b"", byte_range="1-0/0",
                                         content_type=None))
        [bad] = ChunkParser().feed(send("aaaa2", body=b"", byte_range="1-5/5",
                                        content_type=None))
        self.assertEqual((is_empty_send(good), is_empty_send(bad)), (True, False))
        self.assertTrue(accept_binding)  # the passive side answers only the first itself
