"""Property tests of the parser (hypothesis), as h11 fuzzes its readers.

Invariants: serialise-then-parse is the identity in any split; any input either parses or
raises ChunkParseError, fed whole or byte by byte; and the bytes the parser scans grow
linearly with its input (counted, not timed, so the test is deterministic).
"""

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial import unittest

from msrplib.protocol import (ChunkData, ChunkEnded, ChunkParseError, ChunkParser,
                              ChunkStarted, Headers, MSRPData, ParserLimits)
from tests.rfc_examples import RFC4975, RFC4976

TID_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.+%=-"
ALNUM = TID_CHARS[:62]
transaction_ids = st.builds(lambda first, rest: first + rest,
                            st.sampled_from(ALNUM), st.text(TID_CHARS, min_size=3, max_size=31))
header_names = st.text(ALNUM + "-", min_size=1, max_size=20).filter(
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
def session_chunks(draw):
    """A chunk of one session: a SEND or a 200 whose header block is the same as the
    others' of its kind but for its Message-ID (and one of a few Byte-Ranges), as the
    parser's like-the-last paths read them; bodies that hold blank lines and end-lines of
    their own."""
    tid = draw(transaction_ids)
    headers = Headers([("To-Path", "msrp://b.example.com:1/s;tcp"),
                       ("From-Path", "msrp://a.example.com:2/t;tcp")])
    if draw(st.booleans()):
        return MSRPData(tid, code=200, comment="OK", headers=headers)
    headers.add("Message-ID", draw(header_values))
    headers.add("Byte-Range", draw(st.sampled_from(["1-*/*", "1-5/5", "2-12/*"])))
    headers.add("Content-Type", "text/plain")
    pieces = st.sampled_from([b"x", b"\r\n", b"\r\n\r\n", b"-------", tid.encode(), b"$",
                              b"\r\n-------" + tid.encode() + b"+"])
    body = b"".join(draw(st.lists(pieces, max_size=40)))
    return MSRPData(tid, method="SEND", headers=headers, data=body,
                    contflag=draw(st.sampled_from("$+#")))


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
        # The chunks but the first of each kind take the like-the-last paths when they
        # are whole in a read (bytes, or a short rest joined with the next read).
        wire = b"".join(c.encode() for c in originals)
        parser = ChunkParser(ParserLimits(max_buffered_body=buffered))
        self.assertEqual(reassemble(run(parser, split(wire, cuts))), originals)
        self.assertFalse(parser.in_chunk)


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
