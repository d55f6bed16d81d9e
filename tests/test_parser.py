"""ChunkParser: any split, streaming of large bodies, and a named error for bad input."""

from twisted.trial import unittest

from msrplib.protocol import (ChunkData, ChunkEnded, ChunkParseError, ChunkParser,
                              ChunkStarted, MSRPData, ParserLimits)
from tests.rfc_examples import RFC4975, RFC4976

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

    def test_missing_paths(self):
        self.assertParseError(b"MSRP abcd SEND\r\nTo-Path: msrp://b/s;tcp\r\n-------abcd$\r\n",
                              "without From-Path")
        self.assertParseError(b"MSRP abcd SEND\r\nFrom-Path: msrp://b/s;tcp\r\n\r\nx\r\n",
                              "without To-Path")

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

    def test_byte_range(self):
        self.assertParseError(b"MSRP abcd SEND\r\nByte-Range: 1-a/5\r\n", "Byte-Range")

    def test_unknown_flag(self):
        self.assertParseError(
            b"MSRP abcd SEND\r\nTo-Path: msrp://b/s;tcp\r\nFrom-Path: msrp://a/s;tcp\r\n"
            b"-------abcd!\r\n", "unknown continuation")
        self.assertParseError(
            b"MSRP abcd SEND\r\nTo-Path: msrp://b/s;tcp\r\nFrom-Path: msrp://a/s;tcp\r\n"
            b"-------abce$\r\n", "does not match")
        self.assertParseError(send_chunk(b"body", flag="!").encode(), "unknown continuation")

    def test_end_line_without_crlf(self):
        raw = send_chunk(b"body").encode()[:-2] + b"XX"
        self.assertParseError(raw, "not followed by CRLF")

    def test_bad_end_lines_after_a_body_parsed_step_by_step(self):
        # A body past WHOLE_CHUNK_SPAN takes the general path: its end-line gets the same
        # checks as a small chunk's.
        big = b"x" * 10000
        self.assertParseError(send_chunk(big).encode()[:-2] + b"XX", "not followed by CRLF")
        self.assertParseError(send_chunk(big, flag="!").encode(), "unknown continuation")

    def test_bad_header_name(self):
        for _ in range(2):  # checked names are cached: a bad one must fail every time
            self.assertParseError(b"MSRP abcd SEND\r\nTo Path: msrp://b/s;tcp\r\n",
                                  "bad header name")

    def test_a_bad_response_header_block_fails_every_time(self):
        for _ in range(2):  # response header blocks are cached once parsed
            self.assertParseError(b"MSRP abcd 200 OK\r\nTo Path: msrp://b/s;tcp\r\n"
                                  b"-------abcd$\r\n", "bad header name")

    def test_events_before_the_error_are_delivered(self):
        parser = ChunkParser()
        received = []
        with self.assertRaises(ChunkParseError):
            for event in parser.feed(RFC4975[0] + RFC4975[1] + b"garbage\r\n"):
                received.append(event)
        self.assertEqual([e.encode() for e in received], [RFC4975[0], RFC4975[1]])


class LineCacheTests(unittest.TestCase):
    def test_repeated_lines_parse_the_same_and_the_cache_stays_bounded(self):
        from msrplib import _headerblock
        parser = ChunkParser()
        for number in range(3 * _headerblock._LINES_CACHED):
            chunk = send_chunk(b"x", tid="seq%05d" % number)
            chunk.headers.add("X-Seq", str(number))
            [event] = list(parser.feed(chunk.encode()))
            self.assertEqual(event.headers["X-Seq"], str(number))
            self.assertEqual(event.headers["content-type"], "application/octet-stream")
            self.assertLessEqual(len(_headerblock._LINES), _headerblock._LINES_CACHED)

    def test_names_of_uncached_lines_are_cached_bounded(self):
        # Message-ID lines are never cached whole; their names are, checked.
        from msrplib import _headerblock
        parser = ChunkParser()
        for number in range(3 * _headerblock._NAMES_CACHED):
            chunk = send_chunk(b"x", tid="seq%05d" % number)
            chunk.headers.add("Message-ID", "id%d" % number)
            chunk.headers.add("X-Name-%d" % number, "a" * 300)  # too long to be cached
            [event] = list(parser.feed(chunk.encode()))
            self.assertEqual((event.message_id, event.headers["x-name-%d" % number]),
                             ("id%d" % number, "a" * 300))
            self.assertLessEqual(len(_headerblock._NAMES), _headerblock._NAMES_CACHED)

    def test_response_header_blocks_parse_the_same_and_their_cache_stays_bounded(self):
        # A session's responses all carry the same header block, which is parsed once:
        # each response must still get headers of its own, and every peer's paths are a
        # new entry.
        from msrplib import _headerblock
        parser = ChunkParser()
        for number in range(3 * _headerblock._BLOCKS_CACHED):
            block = b"To-Path: msrp://a/s%d;tcp\r\nFrom-Path: msrp://b/t;tcp\r\n" % number
            raw = b"MSRP t%04d 200 OK\r\n%s-------t%04d$\r\n" % (number, block, number)
            first, second = (event for event in parser.feed(raw + raw))
            self.assertEqual(first.headers["To-Path"], "msrp://a/s%d;tcp" % number)
            self.assertEqual(second.headers, first.headers)
            first.headers["To-Path"] = "changed"  # the one parsed
            second.headers["From-Path"] = "changed"  # the one copied from the cache
            self.assertEqual(second.headers["To-Path"], "msrp://a/s%d;tcp" % number)
            [third] = list(parser.feed(raw))
            self.assertEqual(third.headers.items(), [("To-Path", "msrp://a/s%d;tcp" % number),
                                                     ("From-Path", "msrp://b/t;tcp")])
            self.assertEqual(third.headers["From-Path"], "msrp://b/t;tcp")
            self.assertLessEqual(len(_headerblock._RESPONSE_BLOCKS), _headerblock._BLOCKS_CACHED)

    def test_request_header_blocks_of_one_shape_each_get_their_message_id(self):
        # A block of a shape seen before is copied, with only its Message-ID new: every
        # chunk must still have its own Message-ID, in its place, and headers of its own.
        from msrplib import _headerblock
        parser = ChunkParser()
        for number in range(3 * _headerblock._BLOCKS_CACHED):
            chunks = []
            for message in ("first", "second"):
                chunk = send_chunk(b"x", tid="seq%05d" % number)
                chunk.headers.add("Message-ID", "%s-%d" % (message, number))
                chunk.headers.add("X-Shape", str(number))
                chunks.append(chunk)
            first, second = parser.feed(b"".join(chunk.encode() for chunk in chunks))
            self.assertEqual((first.message_id, second.message_id),
                             ("first-%d" % number, "second-%d" % number))
            self.assertEqual(second.encode(), chunks[1].encode())
            second.headers["X-Shape"] = "changed"
            [third] = parser.feed(chunks[0].encode())
            self.assertEqual(third.headers.items(), first.headers.items())
            self.assertLessEqual(len(_headerblock._REQUEST_BLOCKS), _headerblock._BLOCKS_CACHED)

    def test_a_second_message_id_of_a_known_shape_is_not_the_first(self):
        # Headers read the first of a name: a later Message-ID must not replace it.
        raw = (b"MSRP %s SEND\r\nTo-Path: msrp://b/s;tcp\r\nFrom-Path: msrp://a/s;tcp\r\n"
               b"message-id: early\r\nMessage-ID: %s\r\n-------%s$\r\n")
        parser = ChunkParser()
        events = list(parser.feed(b"".join(raw % (tid, later, tid) for tid, later in
                                           [(b"abcd1", b"one"), (b"abcd2", b"two")])))
        self.assertEqual([event.message_id for event in events], ["early", "early"])
        self.assertEqual([event.headers.get_all("Message-ID") for event in events],
                         [["early", "one"], ["early", "two"]])

    def test_an_overlong_message_id_in_a_known_shape_is_refused(self):
        limits = ParserLimits(max_line_length=100)
        chunk = send_chunk(b"x")
        chunk.headers.add("Message-ID", "short")
        for length in (120, 95):  # its line is 12 bytes longer: "Message-ID: "
            parser = ChunkParser(limits)
            list(parser.feed(chunk.encode()))
            overlong = chunk.copy()
            overlong.headers["Message-ID"] = "m" * length
            with self.assertRaisesRegex(ChunkParseError, "line longer than 100 bytes"):
                list(parser.feed(overlong.encode()))

    def test_a_response_like_the_last_is_read_the_same_way(self):
        # A response whose header block is the last one's is read without a search: it
        # must still end where its end-line is, whatever follows the block.
        block = b"To-Path: msrp://a/s;tcp\r\nFrom-Path: msrp://b/t;tcp\r\n"
        first = b"MSRP aaaa1 200 OK\r\n%s-------aaaa1$\r\n" % block
        more = b"MSRP aaaa2 408 Late\r\n%sX-More: yes\r\n-------aaaa2$\r\n" % block
        same = b"MSRP aaaa3 200 OK\r\n%s-------aaaa3$\r\n" % block
        raw = first + more + same + same.replace(b"aaaa3", b"aaaa4")
        for cut in range(len(raw) + 1):
            events = feed_all(ChunkParser(), [raw[:cut], raw[cut:]])
            self.assertEqual([(event.transaction_id, event.code, event.comment)
                              for event in events],
                             [("aaaa1", 200, "OK"), ("aaaa2", 408, "Late"),
                              ("aaaa3", 200, "OK"), ("aaaa4", 200, "OK")])
            self.assertEqual(b"".join(event.encode() for event in events), raw)
            events[2].headers["To-Path"] = "changed"
            self.assertEqual(events[3].headers["To-Path"], "msrp://a/s;tcp")
        bad_flag = same.replace(b"aaaa3$", b"aaaa3!")
        with self.assertRaisesRegex(ChunkParseError, "unknown continuation flag"):
            feed_all(ChunkParser(), [first + bad_flag])

    def test_a_block_that_might_hold_an_end_line_is_always_searched(self):
        # A header named like an end-line ends the response where the search finds it,
        # the first time and every time after.
        block = b"To-Path: msrp://a/s;tcp\r\n-------abcd: x\r\n"
        raw = b"MSRP abcd 200 OK\r\n%s-------abcd$\r\n" % block
        other = b"MSRP efgh 200 OK\r\n%s-------efgh$\r\n" % block
        parser = ChunkParser()
        self.assertEqual([event.transaction_id for event in parser.feed(other)], ["efgh"])
        with self.assertRaisesRegex(ChunkParseError, "unknown continuation flag"):
            list(parser.feed(raw))

    def test_a_request_like_the_last_is_read_the_same_way(self):
        # A request whose header block is the last one's but for its Message-ID is read
        # without a search of its headers: it must still end where its end-line is and
        # get headers of its own, whatever its body holds.
        def request(tid, message_id, body, method="SEND", flag="$"):
            chunk = send_chunk(body, tid=tid, flag=flag)
            chunk.method = method
            chunk.headers.add("Message-ID", message_id)
            return chunk.encode()

        chunks = [request("aaaa1", "m1", b"first"), request("aaaa2", "m2", b""),
                  request("aaaa3", "m-three", b"a\r\n\r\nb\r\n-------aaaa1$\r\n", flag="+"),
                  request("aaaa4", "", b"x", method="NICKNAME"),
                  request("aaaa5", "m5", b"\r\n-------aaaa5 not yet\r\n")]
        raw = b"".join(chunks)
        for cut in range(len(raw) + 1):
            events = feed_all(ChunkParser(), [raw[:cut], raw[cut:]])
            self.assertEqual([(event.method, event.message_id, event.contflag)
                              for event in events],
                             [("SEND", "m1", "$"), ("SEND", "m2", "$"), ("SEND", "m-three", "+"),
                              ("NICKNAME", "", "$"), ("SEND", "m5", "$")])
            self.assertEqual([event.encode() for event in events], chunks)
            events[0].headers["To-Path"] = "changed"
            events[1].headers.add("X-Later", "only here")
            self.assertEqual(events[2].headers.items(), [
                ("To-Path", "msrp://b.example.com/s;tcp"),
                ("From-Path", "msrp://a.example.com/s;tcp"), ("Message-ID", "m-three"),
                ("Content-Type", "application/octet-stream")])

    def test_a_request_like_the_last_keeps_to_the_limits(self):
        def request(tid, message_id, body):
            chunk = send_chunk(body, tid=tid)
            chunk.headers.add("Message-ID", message_id)
            return chunk.encode()

        parser = ChunkParser(ParserLimits(max_buffered_body=10))
        events = feed_all(parser, [request("aaaa1", "m1", b"short") +
                                   request("aaaa2", "m2", b"past the limit")])
        self.assertEqual([type(event) for event in events],
                         [MSRPData, ChunkStarted, ChunkData, ChunkEnded])
        parser = ChunkParser(ParserLimits(max_header_block=170))
        self.assertEqual(len(list(parser.feed(request("aaaa1", "m1", b"x")))), 1)
        with self.assertRaisesRegex(ChunkParseError, "header block longer than 170"):
            list(parser.feed(request("aaaa2", "m" * 60, b"x")))

    def test_a_request_block_that_might_hold_an_end_line_is_always_searched(self):
        # As for responses: a header named like an end-line ends the request where the
        # search finds it, the first time and every time after.
        raw = (b"MSRP %s SEND\r\nTo-Path: msrp://b/s;tcp\r\nFrom-Path: msrp://a/s;tcp\r\n"
               b"Message-ID: %s\r\n-------abcd: x\r\nContent-Type: text/plain\r\n\r\n"
               b"hi\r\n-------%s$\r\n")
        parser = ChunkParser()
        self.assertEqual([event.message_id for event in parser.feed(raw % (b"efgh", b"one",
                                                                          b"efgh"))],
                         ["one"])
        with self.assertRaisesRegex(ChunkParseError, "unknown continuation flag"):
            list(parser.feed(raw % (b"abcd", b"two", b"abcd")))

    def test_a_request_like_an_earlier_one_is_read_the_same_way(self):
        # Messages of other sizes have other Byte-Ranges, so other header blocks: one of
        # a block seen before is read like the last too, and becomes the last.
        def request(tid, size):
            chunk = send_chunk(b"s" * size, tid=tid)
            chunk.headers.add("Message-ID", "m-" + tid)
            chunk.headers.add("Byte-Range", "1-%d/%d" % (size, size))
            return chunk.encode()

        chunks = [request("aaaa%d" % number, size)
                  for number, size in enumerate([5, 7, 5, 7, 7, 9, 5, 0, 9])]
        raw = b"".join(chunks)
        for cut in range(0, len(raw) + 1, 7):
            events = feed_all(ChunkParser(), [raw[:cut], raw[cut:]])
            self.assertEqual([event.encode() for event in events], chunks)
            self.assertEqual([event.byte_range.total for event in events],
                             [5, 7, 5, 7, 7, 9, 5, 0, 9])

    def test_requests_like_the_last_around_a_big_one(self):
        # A big request (a file's chunk) goes step by step and ends the like-the-last
        # reading; the small ones around it still come out as they went in.
        def request(tid, body):
            chunk = send_chunk(body, tid=tid)
            chunk.headers.add("Message-ID", "m-" + tid)
            return chunk.encode()

        chunks = [request("aaaa1", b"small"), request("aaaa2", b"small"),
                  request("aaaa3", b"b" * 10000), request("aaaa4", b"small"),
                  request("aaaa5", b"small")]
        raw = b"".join(chunks)
        for cut in range(0, len(raw) + 1, 97):
            events = feed_all(ChunkParser(), [raw[:cut], raw[cut:]])
            self.assertEqual([event.encode() for event in events], chunks)

    def test_an_earlier_block_that_might_hold_an_end_line_is_always_searched(self):
        raw = (b"MSRP %s SEND\r\nTo-Path: msrp://b/s;tcp\r\nFrom-Path: msrp://a/s;tcp\r\n"
               b"Message-ID: %s\r\n%sContent-Type: text/plain\r\n\r\nhi\r\n-------%s$\r\n")
        parser = ChunkParser()
        events = list(parser.feed(raw % (b"efgh", b"one", b"", b"efgh") +
                                  raw % (b"ijkl", b"two", b"-------abcd: x\r\n", b"ijkl") +
                                  raw % (b"mnop", b"three", b"", b"mnop")))
        self.assertEqual([event.message_id for event in events], ["one", "two", "three"])
        with self.assertRaisesRegex(ChunkParseError, "unknown continuation flag"):
            list(parser.feed(raw % (b"abcd", b"four", b"-------abcd: x\r\n", b"abcd")))

    def test_start_lines_parse_the_same_and_their_cache_stays_bounded(self):
        # What follows the transaction id is cached ("SEND", "200 OK"): every comment a
        # peer sends is a new entry, so the cache must stay bounded and never mix them up.
        from msrplib import _parser
        parser = ChunkParser()
        for number in range(3 * _parser._KINDS_CACHED):
            raw = b"MSRP t%04d 200 Fine %d\r\n-------t%04d$\r\n" % (number, number, number)
            [event, other] = list(parser.feed(raw + b"MSRP abcd 404\r\n-------abcd$\r\n"))
            self.assertEqual((event.code, event.comment), (200, "Fine %d" % number))
            self.assertEqual((other.code, other.comment), (404, None))
            self.assertLessEqual(len(_parser._KINDS), _parser._KINDS_CACHED)
        [bare, empty] = list(parser.feed(b"MSRP abcd 404\r\n-------abcd$\r\n"
                                         b"MSRP abcd 404 \r\n-------abcd$\r\n"))
        self.assertEqual((bare.comment, empty.comment), (None, ""))
