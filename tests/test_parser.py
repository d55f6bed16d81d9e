"""ChunkParser: any split, streaming of large bodies, and a named error for bad input."""

from twisted.trial import unittest

from msrplib.protocol import (ChunkData, ChunkEnded, ChunkParseError, ChunkParser,
                              ChunkStarted, MSRPData, ParserLimits)
from tests.rfc_examples import RFC4975, RFC4976
from tests.test_parser_properties import reassemble

ALL = b"".join(RFC4975 + RFC4976)


def feed_all(parser, pieces):
    events = []
    for piece in pieces:
        events.extend(parser.feed(piece))
    return events


def send_chunk(body, tid="abcd1234", flag="$"):
    chunk = MSRPData(tid, method="SEND", data=body, contflag=flag)
    chunk.headers.add("To-Path", "msrp://b.example.com/s;tcp")
    chunk.headers.add("From-Path", "msrp://a.example.com/s;tcp")
    chunk.headers.add("Content-Type", "application/octet-stream")
    return chunk


class SplitTests(unittest.TestCase):
    def test_all_at_once(self):
        events = feed_all(ChunkParser(), [ALL])
        self.assertEqual(b"".join(e.encode() for e in events), ALL)

    def test_byte_by_byte(self):
        events = feed_all(ChunkParser(), [ALL[i:i + 1] for i in range(len(ALL))])
        self.assertEqual(len(events), len(RFC4975) + len(RFC4976))
        self.assertEqual(b"".join(e.encode() for e in events), ALL)

    def test_every_split_point(self):
        raw = RFC4975[0] + RFC4975[1]
        for cut in range(len(raw) + 1):
            events = feed_all(ChunkParser(), [raw[:cut], raw[cut:]])
            self.assertEqual([e.encode() for e in events], [RFC4975[0], RFC4975[1]], cut)

    def test_lenient_empty_body_after_blank_line(self):
        raw = (b"MSRP abcd SEND\r\nTo-Path: msrp://b/s;tcp\r\nFrom-Path: msrp://a/s;tcp\r\n"
               b"Content-Type: text/plain\r\n\r\n-------abcd$\r\n")
        [chunk] = feed_all(ChunkParser(), [raw])
        self.assertEqual(chunk.data, b"")

    def test_a_body_across_reads_comes_out_whole_as_bytes(self):
        # Pieces of reads are kept as views until the body is joined; what comes out must
        # be the body, as bytes, whether the reads were big, tiny, or a mutable bytearray
        # that the caller then reuses.
        body = bytes(range(256)) * 200
        raw = send_chunk(body).encode() + send_chunk(b"next", tid="efgh5678").encode()
        for size in (5000, 1023, 1024, 7):
            pieces = [raw[i:i + size] for i in range(0, len(raw), size)]
            first, second = feed_all(ChunkParser(), pieces)
            self.assertEqual((type(first.data), first.data, second.data),
                             (bytes, body, b"next"), size)
        parser, events, reused = ChunkParser(), [], bytearray()
        for i in range(0, len(raw), 5000):
            reused[:] = raw[i:i + 5000]
            events.extend(parser.feed(reused))
        self.assertEqual([e.data for e in events], [body, b"next"])

    def test_in_chunk(self):
        parser = ChunkParser()
        self.assertFalse(parser.in_chunk)
        feed_all(parser, [RFC4975[0][:30]])
        self.assertTrue(parser.in_chunk)
        feed_all(parser, [RFC4975[0][30:]])
        self.assertFalse(parser.in_chunk)


class StreamingTests(unittest.TestCase):
    def test_large_body_streams(self):
        body = bytes(range(256)) * 4096  # 1 MiB
        raw = send_chunk(body).encode()
        parser = ChunkParser(ParserLimits(max_buffered_body=64 * 1024))
        events = feed_all(parser, [raw[i:i + 10000] for i in range(0, len(raw), 10000)])
        self.assertIsInstance(events[0], ChunkStarted)
        self.assertIsInstance(events[-1], ChunkEnded)
        pieces = events[1:-1]
        self.assertTrue(all(isinstance(e, ChunkData) for e in pieces))
        self.assertTrue(all(len(e.data) <= 64 * 1024 + 10000 for e in pieces))
        self.assertEqual(b"".join(e.data for e in pieces), body)
        self.assertEqual(events[-1].chunk.contflag, "$")
        self.assertEqual(events[0].chunk.data, b"")

    def test_body_below_limit_is_whole(self):
        raw = send_chunk(b"x" * 1000, flag="+").encode()
        events = feed_all(ChunkParser(ParserLimits(max_buffered_body=1000)),
                          [raw[i:i + 7] for i in range(0, len(raw), 7)])
        self.assertEqual(len(events), 1)
        self.assertEqual((events[0].data, events[0].contflag), (b"x" * 1000, "+"))

    def test_chunk_past_the_one_go_span_in_one_read_is_whole(self):
        body = bytes(range(256)) * 64  # 16 KiB: parsed by the general path
        events = feed_all(ChunkParser(), [send_chunk(body).encode() + RFC4975[0]])
        self.assertEqual([type(e) for e in events], [MSRPData, MSRPData])
        self.assertEqual((events[0].data, events[0].contflag), (body, "$"))

    def test_whole_chunk_in_one_read_still_streams_past_the_limit(self):
        body = b"y" * 5000
        events = feed_all(ChunkParser(ParserLimits(max_buffered_body=4096)),
                          [send_chunk(body).encode() + RFC4975[0]])
        self.assertIsInstance(events[0], ChunkStarted)
        self.assertEqual(b"".join(e.data for e in events if isinstance(e, ChunkData)), body)
        self.assertIsInstance(events[-2], ChunkEnded)
        self.assertIsInstance(events[-1], MSRPData)

    def test_end_line_split_across_feeds_while_streaming(self):
        body = b"y" * 5000
        raw = send_chunk(body).encode()
        end = len(raw) - len(b"\r\n-------abcd1234$\r\n")
        for cut in range(end - 2, len(raw)):
            parser = ChunkParser(ParserLimits(max_buffered_body=100))
            events = feed_all(parser, [raw[:cut], raw[cut:]])
            self.assertEqual(b"".join(e.data for e in events if isinstance(e, ChunkData)),
                             body, cut)
            self.assertIsInstance(events[-1], ChunkEnded)

    def test_only_the_start_of_an_end_line_is_held_back(self):
        lines = b"line one\r\nline two\r\n-------abcd12\r\n" * 200  # CRLF text
        head = send_chunk(lines + b"tail").encode()
        head = head[:head.index(lines) + len(lines)]
        for tail, held in ((b"\r\nline", b""), (b"\r\n---", b"\r\n---"),
                           (b"\r", b"\r"), (b"\r\r\n-", b"\r\n-")):
            parser = ChunkParser(ParserLimits(max_buffered_body=100))
            events = feed_all(parser, [head + tail])
            body = b"".join(e.data for e in events if isinstance(e, ChunkData))
            self.assertEqual(body + held, lines + tail, tail)
            rest = feed_all(parser, [b"x\r\n-------abcd1234$\r\n"])
            self.assertEqual(b"".join(e.data for e in rest if isinstance(e, ChunkData)),
                             held + b"x", tail)
            self.assertIsInstance(rest[-1], ChunkEnded)


class ErrorTests(unittest.TestCase):
    def assertParseError(self, raw, reason, limits=ParserLimits()):
        parser = ChunkParser(limits)
        error = self.assertRaises(ChunkParseError, feed_all, parser, [raw])
        self.assertIn(reason, str(error))
        self.assertIs(parser.error, error)
        again = self.assertRaises(ChunkParseError, feed_all, parser, [RFC4975[0]])
        self.assertIn("earlier error", str(again))
        return error

    def test_malformed_start_line(self):
        self.assertParseError(b"HTTP/1.1 200 OK\r\n", "malformed start line")
        self.assertParseError(b"MSRP abcd send\r\n", "neither a method")
        self.assertParseError(b"MSRP abcd SEND extra\r\n", "neither a method")

    def test_transaction_id(self):
        self.assertParseError(b"MSRP abc SEND\r\n", "transaction id")
        self.assertParseError(b"MSRP " + b"a" * 33 + b" SEND\r\n", "transaction id")
        self.assertParseError(b"MSRP ab/c SEND\r\n", "transaction id")

    def test_header_without_colon(self):
        self.assertParseError(b"MSRP abcd SEND\r\nTo-Path is missing\r\n", "without a colon")

    def test_bad_input_fails_as_soon_as_it_can_only_be_bad(self):
        # Nothing more could make these right: the error comes without waiting for the
        # rest of a line or a block.
        self.assertParseError(b"GET / HT", "malformed start line")
        self.assertParseError(b"MSRP abcd SEND\n", "bare LF")
        self.assertParseError(b"MSRP abcd SEND\r\nTo-Path: msrp://b/s;tcp\n", "bare CR or LF")
        self.assertParseError(b"MSRP abcd SEND\r\nTo-Path: a\rb\r\n", "bare CR or LF")
        self.assertParseError(b"MSRP abcd SEND\r\nTo-Path: a\rb", "bare CR or LF")
        self.assertParseError(b"MSRP abcd SEND\r\n\n", "bare CR or LF")
        self.assertParseError(b"MSRP abcd SEND\r\nTo Path: x\r\n", "bad header name")
        self.assertParseError(b"MSRP abcd SEND\r\nX: y\r\n-------abce$\r\n", "does not match")

    def test_a_chunk_at_the_limits_passes_in_any_split(self):
        # A line exactly max_line_length long, and a block exactly max_header_block long,
        # whether or not a read ends between a CR and its LF or inside the end-line.
        limits = ParserLimits(max_line_length=100, max_header_block=300)
        line = b"X: " + b"x" * 97
        start = b"MSRP abcd 200 " + b"c" * 86
        block = b"\r\n".join([line, line, b"Y: " + b"y" * 93])  # 300 bytes
        for raw in (start + b"\r\n" + line + b"\r\n-------abcd$\r\n",
                    b"MSRP abcd 200 OK\r\n" + block + b"\r\n-------abcd$\r\n"):
            for cut in range(len(raw) + 1):
                [chunk] = feed_all(ChunkParser(limits), [raw[:cut], raw[cut:]])
                self.assertEqual(chunk.transaction_id, "abcd")
        self.assertParseError(start + b"c\r\n", "line longer", limits)
        self.assertParseError(start + b"cc", "line longer", limits)
        self.assertParseError(b"MSRP abcd 200 OK\r\n" + block + b"y\r\n", "header block",
                              limits)

    def test_a_whole_block_with_a_bare_cr_or_lf_fails(self):
        for line in (b"X: a\rb", b"X: a\nb", b"X: a\r"):
            self.assertParseError(b"MSRP abcd 200 OK\r\n" + line + b"\r\n-------abcd$\r\n",
                                  "bare CR or LF")

    def test_line_and_block_limits(self):
        limits = ParserLimits(max_line_length=100, max_header_block=300)
        self.assertParseError(b"MSRP abcd SEND" + b"x" * 200, "line longer", limits)
        self.assertParseError(b"MSRP abcd SEND\r\nX: " + b"x" * 200 + b"\r\n", "line longer",
                              limits)
        many = b"MSRP abcd SEND\r\n" + b"X-Filler: 1234567890\r\n" * 20
        self.assertParseError(many, "header block", limits)
        # The same, with the whole chunk (end-line and all) in one read.
        self.assertParseError(b"MSRP abcd 200\r\nX: " + b"x" * 200 + b"\r\n-------abcd$\r\n",
                              "line longer", limits)
        self.assertParseError(many + b"-------abcd$\r\n", "header block", limits)

    def test_what_headers_mean_is_left_to_the_receiver(self):
        # The parser frames chunks: a request without paths, or with a bad Byte-Range,
        # is a chunk all the same, for its receiver to answer 400 (msrplib._rules).
        raw = (b"MSRP abcd SEND\r\nTo-Path: msrp://b/s;tcp\r\nByte-Range: 1-a/5\r\n"
               b"Byte-Range: 1-\xd9\xa1/5\r\n-------abcd$\r\n"
               b"MSRP efgh SEND\r\n-------efgh$\r\n")
        first, second = feed_all(ChunkParser(), [raw])
        self.assertEqual(first.headers.get_all("Byte-Range"), ["1-a/5", "1-\u0661/5"])
        self.assertEqual((second.transaction_id, len(second.headers)), ("efgh", 0))

    def test_an_end_line_without_a_body_must_end_its_transaction(self):
        paths = b"MSRP abcd SEND\r\nTo-Path: msrp://b/s;tcp\r\nFrom-Path: msrp://a/s;tcp\r\n"
        self.assertParseError(paths + b"-------abcd!\r\n", "with a flag and CRLF")
        self.assertParseError(paths + b"-------abcd$XX", "with a flag and CRLF")
        self.assertParseError(paths + b"-------abcde$\r\n", "with a flag and CRLF")
        self.assertParseError(paths + b"-------abce$\r\n", "does not match")

    def test_what_only_looks_like_an_end_line_is_body(self):
        # RFC 4975 section 7.1: a candidate end-line whose transaction id only starts with
        # the chunk's, or without a continuation flag and CRLF, is body; the search goes
        # on. The same whether the body is small or streamed, whole or in pieces.
        fakes = [b"\r\n-------abcd12345$\r\n", b"\r\n-------abcd1234!\r\n",
                 b"\r\n-------abcd1234$XX", b"\r\n-------abcd1234$\r", b"\r\n-------abcd1234"]
        for size in (10, 10000):
            body = b"".join(fake + b"x" * size for fake in fakes)
            raw = send_chunk(body).encode() + RFC4975[1]
            for limits in (ParserLimits(), ParserLimits(max_buffered_body=100)):
                for step in (len(raw), 7, 1000):
                    events = feed_all(ChunkParser(limits),
                                      [raw[i:i + step] for i in range(0, len(raw), step)])
                    [chunk, response] = reassemble(events)
                    self.assertEqual((chunk.data, chunk.contflag), (body, "$"))
                    self.assertEqual(response.encode(), RFC4975[1])

    def test_bad_header_name(self):
        self.assertParseError(b"MSRP abcd SEND\r\nTo Path: msrp://b/s;tcp\r\n",
                              "bad header name")
        # RFC 4975's hname starts with a letter: a line that starts like an end-line
        # never passes for a header.
        self.assertParseError(b"MSRP abcd 200 OK\r\n-------abcd: x\r\n-------abcd$\r\n",
                              "with a flag and CRLF")
        self.assertParseError(b"MSRP abcd 200 OK\r\n-------abc: x\r\n-------abcd$\r\n",
                              "bad header name")
        self.assertParseError(b"MSRP abcd 200 OK\r\n1X: y\r\n-------abcd$\r\n",
                              "bad header name")

    def test_events_before_the_error_are_delivered(self):
        parser = ChunkParser()
        received = []
        with self.assertRaises(ChunkParseError):
            for event in parser.feed(RFC4975[0] + RFC4975[1] + b"garbage\r\n"):
                received.append(event)
        self.assertEqual([e.encode() for e in received], [RFC4975[0], RFC4975[1]])


class HistoryTests(unittest.TestCase):
    """A chunk parses the same whatever came before it, on this parser or another."""

    def test_what_a_parser_remembers_is_its_own_and_bounded(self):
        # One block of each kind, and a few start lines: whatever peers send, a parser
        # remembers that much and no more, and a new parser remembers nothing.
        from msrplib import _parser
        parser = ChunkParser()
        for number in range(3 * _parser.KINDS_KEPT):
            chunk = send_chunk(b"x", tid="seq%05d" % number)
            chunk.headers.add("X-Seq", str(number))
            chunk.method = "M%s" % "".join(chr(65 + int(d)) for d in str(number))
            raw = chunk.encode() + b"MSRP r%04d 200 Fine %d\r\nX-Seq: %d\r\n-------r%04d$\r\n" % (
                number, number, number, number)
            [event, response] = list(parser.feed(raw))
            self.assertEqual((event.method, event.headers["X-Seq"]), (chunk.method, str(number)))
            self.assertEqual((response.comment, response.headers["X-Seq"]),
                             ("Fine %d" % number, str(number)))
            self.assertLessEqual(len(parser._kinds), _parser.KINDS_KEPT)
        reader = ChunkParser()._reader
        self.assertEqual((reader.request_shape, reader.response_block), (None, None))

    def test_each_parser_keeps_to_its_own_limits(self):
        # A block another parser (with larger limits) read before is read again, against
        # this parser's limits, every time.
        block = b"MSRP %s 200 OK\r\nTo-Path: msrp://a/s;tcp\r\nX: " + b"x" * 150 + \
            b"\r\n-------%s$\r\n"
        generous = ChunkParser()
        for tid in (b"aaaa1", b"aaaa2"):
            self.assertEqual(len(list(generous.feed(block % (tid, tid)))), 1)
        strict = ChunkParser(ParserLimits(max_line_length=100))
        with self.assertRaisesRegex(ChunkParseError, "line longer than 100 bytes"):
            list(strict.feed(block % (b"aaaa3", b"aaaa3")))
        strict = ChunkParser(ParserLimits(max_line_length=100))
        with self.assertRaisesRegex(ChunkParseError, "line longer than 100 bytes"):
            list(strict.feed((block % (b"aaaa3", b"aaaa3"))[:190]))

    def test_headers_of_repeated_blocks_are_each_chunk_s_own(self):
        block = b"To-Path: msrp://a/s;tcp\r\nFrom-Path: msrp://b/t;tcp\r\n"
        raw = b"".join(b"MSRP t%04d 200 OK\r\n%s-------t%04d$\r\n" % (n, block, n)
                       for n in range(3))
        first, second, third = feed_all(ChunkParser(), [raw])
        first.headers["To-Path"] = "changed"
        second.headers.add("X-Later", "only here")
        self.assertEqual(third.headers.items(), [("To-Path", "msrp://a/s;tcp"),
                                                 ("From-Path", "msrp://b/t;tcp")])

    def test_start_lines_parse_the_same_and_their_memo_stays_bounded(self):
        from msrplib import _parser
        parser = ChunkParser()
        for number in range(3 * _parser.KINDS_KEPT):
            raw = b"MSRP t%04d 200 Fine %d\r\n-------t%04d$\r\n" % (number, number, number)
            [event, other] = list(parser.feed(raw + b"MSRP abcd 404\r\n-------abcd$\r\n"))
            self.assertEqual((event.code, event.comment), (200, "Fine %d" % number))
            self.assertEqual((other.code, other.comment), (404, None))
        [bare, empty] = list(parser.feed(b"MSRP abcd 404\r\n-------abcd$\r\n"
                                         b"MSRP abcd 404 \r\n-------abcd$\r\n"))
        self.assertEqual((bare.comment, empty.comment), (None, ""))

    def test_the_parser_module_keeps_no_state_of_its_own(self):
        # Whatever a parser remembers is its own: the module holds only constants.
        from msrplib import _parser
        for name, value in vars(_parser).items():
            if isinstance(value, (dict, list, set, bytearray)) and not name.startswith("__"):
                self.assertIn(name, ("_END_FLAGS",), name)
