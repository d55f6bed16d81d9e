"""Property tests of the parser (hypothesis), as h11 fuzzes its readers.

Invariants: serialise-then-parse is the identity in any split; any input either parses or
raises ChunkParseError, fed whole or byte by byte; and the bytes the parser scans grow
linearly with its input (counted, not timed, so the test is deterministic).
"""

from hypothesis import example, given, settings
from hypothesis import strategies as st
from twisted.trial import unittest

from msrplib.protocol import (ChunkData, ChunkEnded, ChunkParseError, ChunkParser,
                              ChunkStarted, Headers, MSRPData, ParserLimits)
from tests.rfc_examples import RFC4975, RFC4976

TID_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.+%=-"
ALNUM = TID_CHARS[:62]
transaction_ids = st.builds(lambda first, rest: first + rest,
                            st.sampled_from(ALNUM), st.text(TID_CHARS, min_size=3, max_size=31))
header_names = st.builds(lambda first, rest: first + rest, st.sampled_from(ALNUM[:52]),
                         st.text(ALNUM + "-", max_size=19)).filter(
    lambda n: n.lower() not in ("to-path", "from-path", "byte-range")
    and not n.lower().startswith("content-"))
header_values = st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=40).filter(
    lambda v: not v.startswith(" "))


@st.composite
def chunks(draw):
    tid = draw(transaction_ids)
    headers = Headers([("To-Path", "msrp://b.example.com:1/s;tcp"),
                       ("From-Path", "msrp://a.example.com:2/t;tcp")])
    for name, value in draw(st.lists(st.tuples(header_names, header_values), max_size=5)):
        headers.add(name, value)
    if draw(st.booleans()):
        body = draw(st.binary(max_size=3000))
        if body or draw(st.booleans()):
            headers.add("Content-Type", "application/octet-stream")
        chunk = MSRPData(tid, method=draw(st.sampled_from(["SEND", "REPORT", "NICKNAME"])),
                         headers=headers, data=body, contflag=draw(st.sampled_from("$+#")))
    else:
        chunk = MSRPData(tid, code=draw(st.integers(100, 999)),
                         comment=draw(st.sampled_from([None, "OK", "Some comment"])),
                         headers=headers)
    return chunk


def reassemble(events):
    """Turn parser events back into whole chunks."""
    whole = []
    for event in events:
        if isinstance(event, MSRPData):
            whole.append(event)
        elif isinstance(event, ChunkStarted):
            parts = []
        elif isinstance(event, ChunkData):
            parts.append(event.data)
        elif isinstance(event, ChunkEnded):
            event.chunk.data = b"".join(parts)
            whole.append(event.chunk)
    return whole


def split(data, cuts):
    points = sorted({min(c, len(data)) for c in cuts})
    return [data[a:b] for a, b in zip([0] + points, points + [len(data)])]


class _Scanned:
    """How many bytes the ``find`` and ``rfind`` calls of the buffers below looked at."""

    count = 0

    @classmethod
    def add(cls, buffer, sub, start, end, found, backwards=False):
        limit = len(buffer) if end is None else min(end, len(buffer))
        if backwards:
            cls.count += max(0, limit - (start if found < 0 else found))
        else:
            cls.count += max(0, (limit if found < 0 else found + len(sub)) - start)


class _Counting:
    def find(self, sub, start=0, end=None):
        found = super().find(sub, start, len(self) if end is None else end)
        _Scanned.add(self, sub, start, end, found)
        return found

    def rfind(self, sub, start=0, end=None):
        found = super().rfind(sub, start, len(self) if end is None else end)
        _Scanned.add(self, sub, start, end, found, backwards=True)
        return found


class CountingBytes(_Counting, bytes):
    pass


class CountingBuffer(_Counting, bytearray):
    pass


class CountingParser(ChunkParser):
    """A ChunkParser whose buffers count the bytes its searches look at, whichever kind
    of buffer a read is parsed in (a copy of it, of the same kind)."""

    def _run(self, buf, events):
        counting = CountingBytes(buf) if isinstance(buf, bytes) else CountingBuffer(buf)
        return super()._run(counting, events)


def counting_parser(limits=ParserLimits()):
    _Scanned.count = 0
    return CountingParser(limits)


def run(parser, pieces):
    events = []
    for piece in pieces:
        events.extend(parser.feed(piece))
    return events


@st.composite
def session_chunks(draw, real_end_lines=False):
    """A chunk of one session: a SEND or a 200 whose header block is the same as the
    others' of its kind but for its Message-ID (and one of a few Byte-Ranges); bodies
    that hold blank lines, end-lines of other chunks and candidates that are not
    end-lines (an id that only starts with the chunk's, a flag without CRLF). With
    ``real_end_lines``, bodies may also hold their own end-line (then they do not parse
    back as they were: for properties that compare two parses)."""
    tid = draw(transaction_ids)
    headers = Headers([("To-Path", "msrp://b.example.com:1/s;tcp"),
                       ("From-Path", "msrp://a.example.com:2/t;tcp")])
    if draw(st.booleans()):
        return MSRPData(tid, code=200, comment="OK", headers=headers)
    headers.add("Message-ID", draw(header_values))
    headers.add("Byte-Range", draw(st.sampled_from(["1-*/*", "1-5/5", "2-12/*"])))
    headers.add("Content-Type", "text/plain")
    marker = b"\r\n-------" + tid.encode()
    pieces = st.sampled_from([b"x", b"\r\n", b"\r\n\r\n", b"-------", tid.encode(), b"$",
                              marker + b"+", marker + b"0$\r\n", marker + b"$X",
                              marker + b"!\r\n", marker + b"$\r\n", marker[2:] + b"$\r\n"])
    body = b"".join(draw(st.lists(pieces, max_size=40)))
    framed = b"\r\n" + body + b"\r\n"
    if not real_end_lines and any(marker + flag + b"\r\n" in framed for flag in (b"$", b"+", b"#")):
        body = body.replace(b"-------", b"--x----")  # a real end-line would end the chunk
    return MSRPData(tid, method="SEND", headers=headers, data=body,
                    contflag=draw(st.sampled_from("$+#")))


def wire_of(chunks):
    """The chunks on the wire as they are: bodies are not searched for their end-lines
    (a session's transaction ids are random; these bodies hold near-misses on purpose)."""
    return b"".join(b"".join(chunk.encode_parts(check_body=False)) for chunk in chunks)


def outcome(parser, pieces):
    """Every event the parser gives for ``pieces``, and the error it stopped at (or None)."""
    events = []
    try:
        for piece in pieces:
            events.extend(parser.feed(piece))
    except ChunkParseError as error:
        return events, str(error)
    return events, None


@st.composite
def hostile_streams(draw):
    """A session's chunks on the wire, perhaps with junk let in somewhere."""
    wire = wire_of(draw(st.lists(session_chunks(real_end_lines=True), min_size=1,
                                 max_size=4)))
    if draw(st.booleans()):
        where = draw(st.integers(0, len(wire)))
        junk = draw(st.sampled_from([b"\r", b"\n", b"\r\n", b"-------", b"\r\n\r\n", b"x",
                                     b":", b" ", b"$\r\n", b"\x00", b"\xff"]))
        wire = wire[:where] + junk + wire[where:]
    return wire


class RoundTripProperties(unittest.TestCase):
    @settings(max_examples=300, deadline=None)
    @given(st.lists(chunks(), min_size=1, max_size=4), st.lists(st.integers(0, 20000)),
           st.integers(1, 4000))
    def test_encode_then_parse_is_identity(self, originals, cuts, buffered):
        wire = b"".join(c.encode() for c in originals)
        parser = ChunkParser(ParserLimits(max_buffered_body=buffered))
        parsed = reassemble(run(parser, split(wire, cuts)))
        self.assertEqual(parsed, originals)
        self.assertFalse(parser.in_chunk)

    @settings(max_examples=300, deadline=None)
    @given(st.lists(session_chunks(), min_size=1, max_size=8),
           st.lists(st.integers(0, 3000)), st.integers(1, 400))
    def test_a_session_s_chunks_parse_back_in_any_split(self, originals, cuts, buffered):
        # Repeated header blocks, and bodies with blank lines, other end-lines and
        # candidates that are not end-lines (RFC 4975 section 7.1: they are body).
        parser = ChunkParser(ParserLimits(max_buffered_body=buffered))
        self.assertEqual(reassemble(run(parser, split(wire_of(originals), cuts))), originals)
        self.assertFalse(parser.in_chunk)


def SHAPED(tid, body):
    """A SEND with the header block every other one here has, but for its Message-ID."""
    headers = Headers([("To-Path", "msrp://b.example.com:1/s;tcp"),
                       ("From-Path", "msrp://a.example.com:2/t;tcp"),
                       ("Message-ID", "m-" + tid), ("Byte-Range", "1-5/5"),
                       ("Content-Type", "text/plain")])
    return MSRPData(tid, method="SEND", headers=headers, data=body)


#: A body that starts with its own end-line: the blank line's CRLF makes it a whole
#: chunk with an empty body, and ``xyz`` is then no start line.
BODY_LIKE_END = b"-------bbbb1$\r\nxyz"


@st.composite
def repeated_streams(draw):
    """SENDs of one header shape (so that all but the first are read without a search),
    with values and bodies at the edges: a Message-ID or Byte-Range holding a bare CR or
    LF, or longer than a line may be; bodies that start with their own end-line or with
    one that is not; Byte-Ranges of other sizes."""
    chunks = []
    for number in range(draw(st.integers(2, 6))):
        tid = "t%04d" % number
        body = draw(st.sampled_from([b"hello", b"", b"-------%s$\r\nxyz" % tid.encode(),
                                     b"-------%s0$\r\n" % tid.encode(), b"\r\n-------" +
                                     tid.encode(), b"x\r\n-------%s!\r\n" % tid.encode()]))
        message_id = draw(st.sampled_from(["m%d" % number, "", "a\rb", "a\nb", "a\r", "\n",
                                           "m" * 88, "m" * 89, "m" * 200]))
        byte_range = draw(st.sampled_from(["1-5/5", "1-%d/%d" % (number, number),
                                           "1\n-2/2"]))
        headers = Headers([("To-Path", "msrp://b.example.com:1/s;tcp"),
                           ("From-Path", "msrp://a.example.com:2/t;tcp"),
                           ("Message-ID", message_id), ("Byte-Range", byte_range),
                           ("Content-Type", "text/plain")])
        chunks.append(MSRPData(tid, method="SEND", headers=headers, data=body))
    return wire_of(chunks)


def forgetful(limits=ParserLimits()):
    """A parser that remembers no header block: every chunk takes the general path."""
    parser = ChunkParser(limits)
    parser._reader.remembers = False
    return parser


class HistoryProperties(unittest.TestCase):
    """The same bytes give the same events whatever came before them: on the same parser
    (a warm one) or on a fresh one, in any split, good input or bad."""

    @settings(max_examples=300, deadline=None)
    @given(st.lists(st.one_of(chunks(), session_chunks()), max_size=6), hostile_streams(),
           st.lists(st.integers(0, 3000)), st.lists(st.integers(0, 3000)),
           st.sampled_from([ParserLimits(), ParserLimits(max_line_length=120,
                                                         max_header_block=400,
                                                         max_buffered_body=50)]))
    @example(before=[SHAPED("aaaa1", b"hello")], subject=wire_of([SHAPED("bbbb1", BODY_LIKE_END)]),
             cuts=[], other_cuts=[], limits=ParserLimits())
    def test_what_came_before_changes_nothing(self, before, subject, cuts, other_cuts, limits):
        warm = ChunkParser(limits)
        earlier, error = outcome(warm, split(wire_of(before), other_cuts))
        if error is not None or warm.in_chunk:
            return  # the earlier chunks broke a stricter limit: nothing to warm up with
        self.assertEqual(outcome(warm, split(subject, cuts)),
                         outcome(ChunkParser(limits), split(subject, cuts)))

    @settings(max_examples=400, deadline=None)
    @given(st.lists(st.one_of(session_chunks(), session_chunks(real_end_lines=True)),
                    min_size=1, max_size=10),
           st.lists(st.integers(0, 5000)), st.lists(st.binary(max_size=3), max_size=3),
           st.lists(st.integers(0, 5000), max_size=3),
           st.sampled_from([ParserLimits(), ParserLimits(max_line_length=120,
                                                         max_header_block=400,
                                                         max_buffered_body=50)]))
    @example(chunks=[SHAPED("aaaa1", b"hello"), SHAPED("bbbb1", BODY_LIKE_END)], cuts=[],
             junk=[], places=[], limits=ParserLimits())
    def test_blocks_read_without_a_search_read_as_with_one(self, chunks, cuts, junk, places,
                                                           limits):
        # The chunks whose header blocks repeat the last ones are read without a search
        # of their blocks: the same events as a parser that searches every block, whole
        # or in any split, with junk let in anywhere.
        wire = wire_of(chunks)
        for piece, place in zip(junk, places):
            wire = wire[:place] + piece + wire[place:]
        for pieces in (split(wire, cuts), [wire]):
            self.assertEqual(outcome(ChunkParser(limits), pieces),
                             outcome(forgetful(limits), pieces))

    @settings(max_examples=400, deadline=None)
    @given(st.one_of(hostile_streams(), repeated_streams()), st.lists(st.integers(0, 3000)),
           st.sampled_from([ParserLimits(), ParserLimits(max_line_length=100,
                                                         max_header_block=300,
                                                         max_buffered_body=50)]))
    @example(wire=wire_of([SHAPED("aaaa1", b"hello"), SHAPED("bbbb1", BODY_LIKE_END)]),
             cuts=[wire_of([SHAPED("aaaa1", b"hello")]).__len__() + 130], limits=ParserLimits())
    def test_any_split_reads_as_the_whole(self, wire, cuts, limits):
        # Framing never depends on where reads end: the same chunks (their bodies put
        # together when streamed), and an error where there was one, as when all came
        # in one read (its message may quote less of the input).
        whole, error = outcome(ChunkParser(limits), [wire])
        pieces, split_error = outcome(ChunkParser(limits), split(wire, cuts))
        self.assertEqual((reassemble(pieces), split_error is None),
                         (reassemble(whole), error is None))

    @settings(max_examples=400, deadline=None)
    @given(repeated_streams(), st.lists(st.integers(0, 2000)),
           st.sampled_from([ParserLimits(), ParserLimits(max_line_length=100)]))
    def test_repeated_blocks_with_values_at_the_edges(self, wire, cuts, limits):
        for pieces in (split(wire, cuts), [wire]):
            self.assertEqual(outcome(ChunkParser(limits), pieces),
                             outcome(forgetful(limits), pieces))

class RobustnessProperties(unittest.TestCase):
    def check(self, pieces):
        parser = ChunkParser(ParserLimits(max_line_length=200, max_header_block=600,
                                          max_buffered_body=50))
        try:
            run(parser, pieces)
        except ChunkParseError:
            self.assertIsNotNone(parser.error)

    @settings(max_examples=500, deadline=None)
    @given(st.binary(max_size=2000))
    def test_arbitrary_bytes_whole_and_byte_by_byte(self, data):
        self.check([data])
        self.check([data[i:i + 1] for i in range(len(data))])

    @settings(max_examples=300, deadline=None)
    @given(st.sampled_from(RFC4975 + RFC4976), st.integers(0, 400), st.binary(max_size=8),
           st.lists(st.integers(0, 400)))
    def test_mutated_examples(self, raw, where, junk, cuts):
        self.check(split(raw[:where] + junk + raw[where:], cuts))


class LinearScanTests(unittest.TestCase):
    """The parser's scanning work stays within a constant factor of its input."""

    def assertLinear(self, pieces, limits=ParserLimits(), factor=3):
        parser = counting_parser(limits)
        try:
            run(parser, pieces)
        except ChunkParseError:
            pass
        total = sum(len(p) for p in pieces)
        self.assertLessEqual(_Scanned.count, factor * total + 1000)

    def test_large_body_byte_by_byte(self):
        raw = MSRPData("abcd1234", method="SEND", data=b"z" * 200000,
                       headers=Headers([("To-Path", "msrp://b/s;tcp"), ("From-Path", "msrp://a/s;tcp"),
                                        ("Content-Type", "x/y")])).encode()
        self.assertLinear([raw[i:i + 1] for i in range(len(raw))], factor=20)
        self.assertLinear([raw[i:i + 1000] for i in range(0, len(raw), 1000)])

    def test_long_header_line_byte_by_byte(self):
        raw = b"MSRP abcd SEND\r\nX: " + b"v" * 60000
        # Each byte re-reads at most the two end markers' length: a constant factor.
        self.assertLinear([raw[i:i + 1] for i in range(len(raw))],
                          ParserLimits(max_line_length=100000, max_header_block=200000),
                          factor=40)

    def test_long_start_line_byte_by_byte(self):
        raw = b"MSRP abcd SEND" + b"x" * 20000
        self.assertLinear([raw[i:i + 1] for i in range(len(raw))],
                          ParserLimits(max_line_length=100000), factor=40)

    def test_many_small_chunks(self):
        raw = b"".join(RFC4975) * 200
        self.assertLinear([raw])
        # Three bytes at a time, each feed re-reads an end-line's length: still linear.
        self.assertLinear([raw[i:i + 3] for i in range(0, len(raw), 3)], factor=12)

    def test_near_end_lines_in_body(self):
        body = b"\r\n-------abcd1234" * 5000
        raw = MSRPData("abcd1235", method="SEND", data=body,
                       headers=Headers([("To-Path", "msrp://b/s;tcp"), ("From-Path", "msrp://a/s;tcp"),
                                        ("Content-Type", "x/y")])).encode()
        self.assertLinear([raw[i:i + 7] for i in range(0, len(raw), 7)], factor=5)
