"""Whatever a peer sends, a session answers or closes: it never raises into the reactor.

Hypothesis builds chunk streams from the pieces a hostile or broken peer would use
(Byte-Ranges that overlap, run backwards or exceed their totals, unknown methods, bad
paths, aborts, garbage); every exception the session lets out of ``dataReceived`` would
be a crash of the reactor's read loop.
"""

import io

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial import unittest

from msrplib._rangeset import RangeSet
from msrplib.protocol import Headers, MSRPData
from msrplib.session import SessionSettings
from msrplib.testing import ALICE_URI, BOB_URI, CollectingReceiver, SessionPair

numbers = st.one_of(st.integers(0, 40), st.just(None))


@st.composite
def requests(draw):
    method = draw(st.sampled_from(["SEND", "SEND", "SEND", "REPORT", "NICKNAME", "FROB"]))
    # Mostly well addressed, so that the chunks get past the path checks.
    headers = Headers([
        ("To-Path", draw(st.sampled_from([BOB_URI] * 6 + [ALICE_URI, "junk",
                                                          BOB_URI + " " + BOB_URI]))),
        ("From-Path", draw(st.sampled_from([ALICE_URI] * 6 + [BOB_URI, "msrp://x/y;tcp"]))),
    ])
    if draw(st.integers(0, 5)):
        headers.add("Message-ID", draw(st.sampled_from(["m1", "m2", "m3"])))
    start = draw(st.sampled_from([0, 1, 1, 1, 2, 5, 11, 30]))
    end, total = draw(numbers), draw(numbers)
    if draw(st.integers(0, 5)):
        headers.add("Byte-Range", "%d-%s/%s" % (start, "*" if end is None else end,
                                               "*" if total is None else total))
    for name, values in [("Failure-Report", ["yes", "no", "partial", "maybe"]),
                         ("Success-Report", ["yes", "no", "x"]),
                         ("Status", ["000 200 OK", "000 413 Too big", "nonsense"]),
                         ("Content-Type", ["text/plain", "text/plain", "image/png", ""]),
                         ("Use-Nickname", ['"n"', "bare"])]:
        if draw(st.booleans()):
            headers.add(name, draw(st.sampled_from(values)))
    data = draw(st.binary(max_size=30)) if headers.get("Content-Type") is not None else b""
    return MSRPData(draw(st.sampled_from(["t001", "t002", "t003"])), method=method,
                    headers=headers, data=data, contflag=draw(st.sampled_from("$+#")))


class HostilePeerProperties(unittest.TestCase):
    def bob(self, sink=None):
        received = CollectingReceiver(sink)
        pair = SessionPair(settings=SessionSettings(keepalive_interval=0, max_message_size=64),
                           bob_options={"receiver": received, "accept_types": ["text/*"],
                                        "on_incoming_cb": lambda chunk=None, error=None: None})
        return pair, received

    @settings(max_examples=300, deadline=None)
    @given(st.lists(requests(), max_size=12), st.integers(1, 50), st.booleans())
    def test_any_chunk_stream(self, chunks, piece, to_file):
        pair, received = self.bob(io.BytesIO() if to_file else None)
        wire = b"".join(chunk.encode() for chunk in chunks)
        protocol = pair.bob.transport.protocol
        for index in range(0, len(wire), piece):
            protocol.dataReceived(wire[index:index + piece])
        pair.flush()
        for message in received.received:
            self.assertLessEqual(len(message.data or b""), 64)

    @settings(max_examples=200, deadline=None)
    @given(st.binary(max_size=400))
    def test_garbage(self, data):
        pair, _ = self.bob()
        protocol = pair.bob.transport.protocol
        protocol.dataReceived(data)
        pair.flush()
        # Unintelligible input closes the connection with that parse error.
        if protocol.parser.error is not None:
            self.assertTrue(protocol.lost.fired)
            self.assertIs(protocol.lost.result.value, protocol.parser.error)


class RangeSetProperties(unittest.TestCase):
    @given(st.lists(st.tuples(st.integers(0, 60), st.integers(0, 15)), max_size=12))
    def test_matches_a_set_of_byte_offsets(self, additions):
        ranges, offsets = RangeSet(), set()
        for start, length in additions:
            new = ranges.add(start, start + length)
            added = {offset for low, high in new for offset in range(low, high)}
            self.assertEqual(added, set(range(start, start + length)) - offsets)
            offsets |= added
            self.assertEqual({offset for low, high in ranges.ranges
                              for offset in range(low, high)}, offsets)
            for (_, high), (low, _) in zip(ranges.ranges, ranges.ranges[1:]):
                self.assertLess(high, low)  # disjoint and merged
        self.assertEqual(ranges.count, len(offsets))


class CountingList(list):
    """A list that counts the items read from it, however they are read."""

    reads = 0

    def __getitem__(self, index):
        CountingList.reads += 1
        return super().__getitem__(index)


class RangeSetCostTests(unittest.TestCase):
    def test_pieces_in_any_order_cost_a_search_each_not_a_walk(self):
        # Every other byte, last to first: the set holds thousands of ranges at once, and
        # each piece still costs a binary search, not a look at every range kept.
        for count in (1000, 4000):
            ranges = RangeSet()
            ranges._starts, ranges._ends = CountingList(), CountingList()
            CountingList.reads = 0
            for offset in range(2 * count - 2, -1, -2):
                self.assertEqual(ranges.add(offset, offset + 1), [(offset, offset + 1)])
            self.assertEqual(len(ranges.ranges), count)
            self.assertLess(CountingList.reads, 40 * count.bit_length() * count)
            for offset in range(2 * count - 1, 0, -2):  # now fill every gap
                ranges.add(offset, offset + 1)
            self.assertTrue(ranges.covers(2 * count))
            self.assertLess(CountingList.reads, 80 * count.bit_length() * count)
