"""Hostile input over real loopback TCP (issue 21): mutated chunks, fed by hypothesis to an
``MSRPServer`` (a connection's first bytes) and to bound ``MSRPSession`` s.

How the pieces fit (see ``tests/hostile.py``): the library runs in the trial reactor's
thread as usual; each test hands a hypothesis ``@given`` function to ``deferToThread``,
and that worker thread plays the hostile peer with blocking sockets, asking the reactor's
thread (``blockingCallFromThread``) for what only it knows: a URI to bind to, when the
library has read what was sent, what it logged. Connections are reused while an example
leaves them usable. Each example draws one tape of choices (``tests/hostile_chunks.py``),
then builds its chunks and mutations from it.

Every example checks that no exception but msrplib's own errors escaped ``dataReceived``
or was logged, that everything the library wrote parses as RFC 4975 responses (to
transaction ids we sent) and REPORTs with RFC statuses, and that the library answered the
probe after the example, closed, or is still inside a chunk (never silence). Targeted
properties then pin the exact answer the issue's rules require, the warm-cache rule (the
same bytes get the same answers whatever came before, on that connection or another),
and memory (tracemalloc).

Example counts: ``MSRPLIB_FUZZ_EXAMPLES`` unset, the CI profile runs 10,000 network
examples in all, derandomized and without a database, so a run is repeatable. Set it (as
``tox -e fuzz`` does) to run that many, randomized, remembering failures in hypothesis's
example database.

Hypothesis settings: ``deadline`` is off, since an example's time is loopback round
trips, which vary with the machine's load; a hang is caught by the harness's own timeout
(``HANG_SECONDS``). No health check is suppressed: all of an example's data is one draw,
made before its network part, so none of them mistakes the network for slow generation.
"""

from __future__ import annotations

import functools
import gc
import itertools
import os
import re
import traceback
import tracemalloc
from typing import Any, Callable, List

from hypothesis import Phase, given, note, settings
from hypothesis import strategies as st
from twisted.internet.defer import inlineCallbacks
from twisted.internet.threads import deferToThread
from twisted.trial import unittest

from msrplib.errors import MSRPError
from msrplib.protocol import MSRPData, ParserLimits, URIParseError, parse_uri
from tests.hostile import REMOTE, SESSION_SETTINGS, Driver, Library, Outcome, call
from tests.hostile_chunks import (BAD_NUMBER_LIST, BAD_NUMBERS, MANY_DIGIT_LIST, MANY_DIGITS,
                                  TAPES, Choices, Chunk, Peer, any_chunk, binding, body_of,
                                  fake_end_line, holds_end_line, mutate, mutate_bytes,
                                  send_chunk, sent_tids, splits, warm_up)

#: Network examples in all: the CI default, or what MSRPLIB_FUZZ_EXAMPLES asks for.
FUZZING = bool(os.environ.get("MSRPLIB_FUZZ_EXAMPLES"))
TOTAL = int(os.environ.get("MSRPLIB_FUZZ_EXAMPLES") or 10_000)

BASE = settings(
    derandomize=not FUZZING, database=settings.default.database if FUZZING else None,
    deadline=None, print_blob=FUZZING)


def share(fraction: float) -> int:
    """This test's part of the TOTAL network examples."""
    return max(20, int(TOTAL * fraction))


def check(outcome: Outcome) -> None:
    """What every example must show, whatever it sent."""
    note("answers: %r" % (shorter(outcome.output),))
    assert not outcome.errors, "not msrplib's own error: %s" % outcome.errors
    assert not outcome.invalid, "answers: %s" % outcome.invalid
    assert outcome.hung is None, outcome.hung


def expect(outcome: Outcome, tid: bytes, codes: Any, may_close: bool = False) -> None:
    """``tid`` was answered once, with one of ``codes``, and the connection is still usable
    (``may_close``: or the library closed it without answering)."""
    check(outcome)
    got = outcome.codes_for(tid.decode())
    if may_close and outcome.closed and not got:
        return
    assert len(got) == 1 and got[0] in codes, \
        "expected %s for %s, got %s (closed: %s)" % (sorted(codes), tid, got, outcome.closed)
    assert outcome.probe_answered and not outcome.closed, \
        "answered %s, then the connection closed" % got


def sending(pieces: List[bytes]) -> List[bytes]:
    note("sent: %r" % ([shorter(piece) for piece in pieces],))
    return pieces


def shorter(data: bytes, most: int = 3000) -> bytes:
    """``data``, with the middle of a long one left out (and said so)."""
    if len(data) <= most:
        return data
    return data[:most // 2] + b"<%d bytes left out>" % (len(data) - most) + data[-most // 2:]


def readable(test: Callable[..., None]) -> Callable[..., None]:
    """``test``, failing with everything hypothesis found in the message: trial shows
    neither the parts of an exception group (several failures, FlakyFailure) nor notes."""
    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> None:
        try:
            test(*args, **kwargs)
        except Exception as error:
            raise AssertionError("".join(traceback.format_exception(error))) from None

    return run


class HostileInputTestCase(unittest.TestCase):
    """Runs a hypothesis test in a worker thread against a library in this reactor."""

    #: Trial's limit for one test, in seconds: ample for the CI examples (a few seconds
    #: each), and grown with the example count when fuzzing.
    timeout = max(600, TOTAL // 100)

    @inlineCallbacks
    def run_examples(self, body: Callable[[Driver, Choices], None], examples: int,
                     library: Any = None, no_shrinking: bool = False) -> Any:
        library = library or Library(self)
        yield library.start()
        phases = [phase for phase in Phase if not (no_shrinking and phase == Phase.shrink)]

        def worker() -> None:
            driver = Driver(library)

            @settings(BASE, max_examples=examples, phases=phases)
            @given(TAPES)
            def example(tape: bytes) -> None:
                body(driver, Choices(tape))

            try:
                readable(example)()
            finally:
                driver.close_all()

        try:
            yield deferToThread(worker)
        finally:
            yield library.stop()
            gc.collect()
            unexplained = library.unexplained_failures()
            self.flushLoggedErrors()
        self.assertEqual(unexplained, [], "failures logged outside any example")


def addressed_send(driver: Driver, c: Choices) -> Any:
    """A bound connection, and a well-formed SEND for it, of a type the session takes
    (so that no 415 comes before the answer a test looks for)."""
    wire = driver.bound_wire()
    peer = Peer(wire.local or "")
    chunk = peer.address(send_chunk(c))
    if chunk.get(b"Content-Type") is not None:
        chunk.set(b"Content-Type", b"text/plain")
    return wire, peer, chunk


def run_one(driver: Driver, wire: Any, c: Choices, chunk: Chunk) -> Outcome:
    """Send ``chunk`` in chosen writes; what the library did."""
    raw = chunk.encode()
    driver.open_messages += opens_message(chunk)
    return driver.run(wire, sending(splits(c, raw)), sent_tids(raw))


def opens_message(chunk: Chunk) -> bool:
    """Whether ``chunk`` may leave a message unfinished on its session (a SEND that is not
    a whole message: a ``+`` or ``#`` flag, or a Byte-Range that does not start at 1)."""
    return chunk.kind == b"SEND" and (
        chunk.flag != b"$" or not (chunk.get(b"Byte-Range") or b"1-").startswith(b"1-"))


class FirstBytesTests(HostileInputTestCase):
    """A connection's first bytes, to an ``MSRPServer`` with a session waiting for them."""

    def test_first_bytes_of_a_connection(self):
        def body(driver: Driver, c: Choices) -> None:
            wire = driver.unbound_wire()
            peer = Peer(wire.local or "")
            chunks = [binding(c) if n == 0 and c.flip() else any_chunk(c)
                      for n in range(1 + c.pick(3))]
            chunks = [mutate(c, peer.address(chunk)) for chunk in chunks]
            raw = mutate_bytes(c, b"".join(c.encode() for c in chunks))
            pieces = sending(splits(c, raw) or [b"\r\n"])
            check(driver.run(wire, pieces, sent_tids(raw), closing=True))

        return self.run_examples(body, share(0.15))


class BoundSessionTests(HostileInputTestCase):
    """Chunks on a bound session's connection (reused while usable)."""

    def test_chunks_on_a_bound_session(self):
        def body(driver: Driver, c: Choices) -> None:
            wire = driver.bound_wire()
            peer = Peer(wire.local or "")
            chunks = [peer.address(any_chunk(c)) for _ in range(1 + c.pick(3))]
            if c.flip():  # a warm-up of the same header shape goes first
                chunks.insert(0, warm_up(chunks[0], peer))
            chunks = [mutate(c, chunk) for chunk in chunks]
            raw = mutate_bytes(c, b"".join(c.encode() for c in chunks))
            pieces = sending(splits(c, raw) or [b"\r\n"])
            driver.open_messages += sum(map(opens_message, chunks))
            check(driver.run(wire, pieces, sent_tids(raw)))

        return self.run_examples(body, share(0.46))

    def test_byte_range_disagreeing_with_the_body_gets_400(self):
        # RFC 4975 section 7.1: end - start + 1 is the body's length, and a total is at
        # least the end; a start past a known total cannot be (total + 1 can: the empty
        # range just after the last byte, as in the 1-0/0 of an empty message).
        def body(driver: Driver, c: Choices) -> None:
            wire, peer, chunk = addressed_send(driver, c)
            size = len(chunk.body or b"")
            how = c.choose(["end", "total", "implied end", "start"])
            start = 1 + c.pick(100)
            end = start + size - 1
            if how == "end":
                wrong = start - 1 + c.pick(size + 52)
                wrong += wrong == end
                total = b"*" if c.flip() else b"%d" % (wrong + 10)
                byte_range = b"%d-%d/%s" % (start, wrong, total)
            elif how in ("total", "implied end"):
                end = max(end, 1)  # a total below it needs an end of 1 at least
                if size == 0:
                    start = end + 1
                shown = b"%d" % end if how == "total" else b"*"
                byte_range = b"%d-%s/%d" % (start, shown, c.pick(end))
            else:
                total = c.pick(51)
                start = total + 2 + c.pick(100)
                byte_range = b"%d-*/%d" % (start, total)
            chunk.set(b"Byte-Range", byte_range)
            chunk.flag = b"$" if c.flip() else b"+"
            expect(run_one(driver, wire, c, chunk), chunk.tid, {400})

        return self.run_examples(body, share(0.05))

    def test_fake_end_lines_are_body(self):
        # RFC 4975 section 7.1: only "-------" + the chunk's id + a flag + CRLF ends it.
        def body(driver: Driver, c: Choices) -> None:
            wire, peer, chunk = addressed_send(driver, c)
            content = b"".join(fake_end_line(c, chunk.tid) if c.flip() else body_of(c)
                               for _ in range(1 + c.pick(4)))
            chunk.body, chunk.flag = content, b"$"
            chunk.set(b"Byte-Range", b"1-%d/%d" % (len(content), len(content)))
            chunk.set(b"Content-Type", b"text/plain")
            if holds_end_line(chunk):
                return  # its own end-line in its body: not this property's input
            outcome = run_one(driver, wire, c, chunk)
            expect(outcome, chunk.tid, {200})
            assert outcome.delivered == [(chunk.get(b"Message-ID").decode(), content)], \
                "delivered %r" % (outcome.delivered,)

        return self.run_examples(body, share(0.06))

    def odd_number_example(self, numbers: List[bytes], codes: Any, may_close: bool) -> Any:
        """A SEND with one of ``numbers`` in its Byte-Range or a path's port: answered
        with one of ``codes`` (or, ``may_close``, the connection closed)."""
        def body(driver: Driver, c: Choices) -> None:
            wire, peer, chunk = addressed_send(driver, c)
            number = c.choose(numbers)
            place = c.choose(["start", "end", "total", "To-Path",
                                               "From-Path"])
            size = len(chunk.body or b"")
            if place in ("start", "end", "total"):
                fields = [b"1", b"%d" % size, b"%d" % size]
                fields[["start", "end", "total"].index(place)] = number
                chunk.set(b"Byte-Range", b"%s-%s/%s" % tuple(fields))
            else:
                uri = chunk.get(place.encode()) or b""
                chunk.set(place.encode(), re.sub(rb":[0-9]+/", b":" + number + b"/", uri))
            expect(run_one(driver, wire, c, chunk), chunk.tid, codes, may_close)

        return self.run_examples(body, share(0.03))

    def test_numbers_that_are_not_ascii_digits_are_refused(self):
        return self.odd_number_example(BAD_NUMBER_LIST, {400}, may_close=True)

    def test_numbers_of_too_many_digits_get_400_or_413(self):
        return self.odd_number_example(MANY_DIGIT_LIST, {400, 413}, may_close=False)

    def test_duplicated_headers_get_400(self):
        def body(driver: Driver, c: Choices) -> None:
            wire, peer, chunk = addressed_send(driver, c)
            if chunk.get(b"Content-Type") is None:
                chunk.headers.append((b"Content-Type", b"text/plain"))
                chunk.body = chunk.body or b""
            name = c.choose([b"To-Path", b"From-Path", b"Byte-Range",
                                              b"Message-ID", b"Content-Type"])
            others = {b"To-Path": peer.local, b"From-Path": REMOTE.encode(),
                      b"Byte-Range": b"1-1/1", b"Message-ID": peer.message_id(),
                      b"Content-Type": b"text/html"}
            value = chunk.get(name) if c.flip() else others[name]
            chunk.headers.insert(c.pick(len(chunk.headers) + 1), (name, value))
            expect(run_one(driver, wire, c, chunk), chunk.tid, {400})

        return self.run_examples(body, share(0.05))

    def test_missing_paths_get_400_without_a_close(self):
        def body(driver: Driver, c: Choices) -> None:
            wire, peer, chunk = addressed_send(driver, c)
            if c.flip():
                chunk = Chunk(chunk.tid, b"NICKNAME", chunk.headers[:2] +
                              [(b"Use-Nickname", b'"bob"')])
            for name in c.choose([[b"To-Path"], [b"From-Path"],
                                                   [b"To-Path", b"From-Path"]]):
                chunk.without(name)
            expect(run_one(driver, wire, c, chunk), chunk.tid, {400})

        return self.run_examples(body, share(0.04))

    def test_paths_of_spaces_get_400(self):
        def body(driver: Driver, c: Choices) -> None:
            wire, peer, chunk = addressed_send(driver, c)
            blank = c.choose([b" ", b"   ", b"\t", b" \t ", b""])
            chunk.set(c.choose([b"To-Path", b"From-Path"]), blank)
            expect(run_one(driver, wire, c, chunk), chunk.tid, {400})

        return self.run_examples(body, share(0.02))

    def test_message_ids_missing_or_not_idents_are_refused(self):
        # RFC 4975 sections 7.1 and 9: a SEND has a Message-ID, an ident (msrplib's own
        # request rule, _rules.request_error, says so too; it takes ids shorter than the
        # RFC's 4 characters, so "abc" is not among these).
        def body(driver: Driver, c: Choices) -> None:
            wire, peer, chunk = addressed_send(driver, c)
            message_id = c.choose([None, b"", b"x" * 33, b"a b c d", b"m\xc3\xa9ssage",
                                   b"-abcd", b"ab/cd", b"x" * 4000, b"ab\x00cd"])
            if message_id is None:
                chunk.without(b"Message-ID")
            else:
                chunk.set(b"Message-ID", message_id)
            expect(run_one(driver, wire, c, chunk), chunk.tid, {400}, may_close=True)

        return self.run_examples(body, share(0.02))

    def test_bare_cr_and_lf_only_lines_get_400_or_a_close(self):
        # A start line or header line ended by a bare CR or LF: 400 or a close, at once,
        # not a wait for more bytes that a peer which sent a whole chunk will never send.
        def body(driver: Driver, c: Choices) -> None:
            wire, peer, chunk = addressed_send(driver, c)
            raw = chunk.encode()
            head_end = raw.find(b"\r\n\r\n") + 4 if chunk.body is not None else \
                raw.find(b"\r\n-------")
            ends = [at for at in range(head_end) if raw.startswith(b"\r\n", at)]
            chosen = sorted({ends[c.pick(len(ends))]
                             for _ in range(1 + c.pick(3))})
            new = c.choose([b"\n", b"\r", b"\r\r\n", b"\n\r\n", b"\n\r"])
            for at in reversed(chosen):
                raw = raw[:at] + new + raw[at + 2:]
            outcome = driver.run(wire, sending(splits(c, raw)), sent_tids(raw))
            assert not outcome.in_chunk, "the library waits for more after a whole chunk"
            expect(outcome, chunk.tid, {400}, may_close=True)

        return self.run_examples(body, share(0.04))


class WarmCacheTests(HostileInputTestCase):
    """The same bytes get the same answers whatever came before them (issue 21).

    Only that is asserted here: what went wrong (an error that escaped, a hang) is part of
    what must be the same each time, and the other tests report it as a failure of its
    own, so that a crash does not hide a difference.
    """

    def test_same_bytes_same_answers_whatever_came_before(self):
        shapes = itertools.count()

        def body(driver: Driver, c: Choices) -> None:
            peer = Peer(str(call(driver.library.local_uri, "fzshared")))
            template = peer.address(any_chunk(c))
            # A header of its own makes the shape new to the process: the first run is
            # cold, whatever earlier examples parsed.
            template.headers.insert(2, (b"X-Shape", b"%09d" % next(shapes)))
            chunk = mutate(c, template, most=2)
            raw = mutate_bytes(c, chunk.encode(), most=1)
            pieces = sending(splits(c, raw, most=3))
            warm = warm_up(template, peer)
            tids = sent_tids(raw)
            seen = []
            for warming in (False, True, False):
                wire = driver.bound_wire(fresh=True, shared="fzshared")
                if warming:  # in a run of its own: what it did is not the example's
                    driver.run(wire, [warm.encode()], sent_tids(warm.encode()))
                    wire = driver.bound_wire(shared="fzshared")  # a new one if it closed
                outcome = driver.run(wire, pieces, tids)
                seen.append(what_happened(outcome, tids, warm.get(b"Message-ID")))
            note("cold, after a warm-up, on another connection: %r" % (seen,))
            assert seen[0] == seen[1] == seen[2], "answers depend on what came before"

        return self.run_examples(body, share(0.05))


def what_happened(outcome: Outcome, tids: List[str], warm_id: Any) -> Any:
    """The example's own answers, REPORTs, messages and the connection's fate (not the
    warm-up's, whose Message-ID is ``warm_id``), and which kinds of error it met (a
    warm-up may meet the same kind)."""
    other = (warm_id or b"").decode()
    return ([a for a in outcome.answers if a[0] in tids],
            [r for r in outcome.reports if r[0] != other],
            [d for d in outcome.delivered if d[0] != other], outcome.closed, outcome.in_chunk,
            sorted({error.split(":")[0] for error in outcome.errors}), outcome.invalid,
            outcome.hung)


NUMBER_HEADERS = ["Expires", "Min-Expires", "Max-Expires", "Byte-Range", "port"]


class HeaderNumberTests(unittest.TestCase):
    """Typed header numbers are 1 to 20 ASCII digits: anything else is msrplib's own
    error, never a number read from other digits nor ``int()``'s ValueError."""

    def read(self, number: bytes, where: str) -> Any:
        text = number.decode()
        if where == "port":
            return parse_uri("msrp://127.0.0.1:%s/s;tcp" % text).port
        chunk = MSRPData("abcd", method="SEND")
        chunk.headers.add(where, text if where != "Byte-Range" else "1-%s/*" % text)
        value = getattr(chunk, where.lower().replace("-", "_"))
        return value.end if where == "Byte-Range" else value

    def refused(self, number: bytes, where: str) -> None:
        try:
            value = self.read(number, where)
        except (MSRPError, URIParseError):
            return
        self.fail("%s %r read as %r" % (where, shorter(number, 60), value))

    @readable
    @settings(BASE, max_examples=200)
    @given(BAD_NUMBERS, st.sampled_from(NUMBER_HEADERS))
    def test_numbers_that_are_not_ascii_digits(self, number, where):
        self.refused(number, where)

    @readable
    @settings(BASE, max_examples=200)
    @given(MANY_DIGITS, st.sampled_from(NUMBER_HEADERS))
    def test_numbers_of_too_many_digits(self, number, where):
        self.refused(number, where)

    @readable
    @settings(BASE, max_examples=100)
    @given(st.integers(0, 65535), st.sampled_from(NUMBER_HEADERS))
    def test_numbers(self, number, where):
        self.assertEqual(self.read(b"%d" % number, where), number)


# Memory: what one connection makes the library keep, and the process-wide caches.

#: What the process-wide caches may take in all: their documented counts, with each entry
#: bounded in length as msrplib's parser documents (a cached line 256 characters, a block
#: 1 KiB) come to about 2 MiB; twice that.
CACHE_ALLOWANCE = 4 * 1024 * 1024
#: What a connection's own state may take beyond twice the body bytes it holds: twice what
#: its parser may buffer.
CONNECTION_ALLOWANCE = 2 * (ParserLimits().max_header_block + ParserLimits().max_buffered_body)


def hostile_chunk(kind: str, n: int, size: int, peer: Peer) -> bytes:
    """The ``n``th chunk of a stream made to make the library keep something."""
    local, remote = peer.local, REMOTE.encode()
    paths = b"To-Path: %s\r\nFrom-Path: %s\r\n" % (local, remote)
    extra, content_type = b"", b"text/plain"
    tid = b"h%07d" % n
    # New to the process on every run, a replay's too: caches fill again.
    new = b"%09d-%06d" % (peer.example, n)
    if kind == "fragments":  # messages of a byte here and there, never complete
        mid, start, body = b"frag%d" % (n // 2000), 1 + 2 * size * (n % 2000), b"f" * size
    elif kind == "open messages":
        mid, start, body = peer.message_id(), 1, b"o" * size
    elif kind == "refused ids":  # refused (past max_message_size), and remembered
        mid, start = b"r%d" % n + b"i" * size, SESSION_SETTINGS.max_message_size + 1
        body = b"r"
    else:
        mid, start, body = peer.message_id(), 1, b"z"
    if kind == "long names":
        extra = b"X-%s%s: 1\r\n" % (new, b"n" * size)
    elif kind == "long relays":
        paths = b"To-Path: %s\r\nFrom-Path: msrp://r%s%s.example;tcp %s\r\n" % (
            local, new, b"p" * size, remote)
    elif kind == "long types":
        content_type = b"text/plain;x=%s%s" % (new, b"t" * size)
    elif kind == "long comments":  # responses to nothing: ignored, their kinds cached
        return b"MSRP %s 200 %s%s\r\n%s-------%s$\r\n" % (tid, new, b"c" * size, paths, tid)
    return (b"MSRP %s SEND\r\n%sMessage-ID: %s\r\nByte-Range: %d-%d/*\r\n%s"
            b"Content-Type: %s\r\n\r\n%s\r\n-------%s+\r\n" % (
                tid, paths, mid, start, start + len(body) - 1, extra, content_type, body,
                tid))


def hostile_stream(kind: str, count: int, size: int, peer: Peer) -> Any:
    """``count`` chunks of :func:`hostile_chunk`, made as they are sent, 500 to a write,
    and the body bytes of the messages they leave unfinished (which a session may hold)."""
    held = count * size if kind in ("fragments", "open messages") else 0
    writes = (b"".join(hostile_chunk(kind, n, size, peer)
                       for n in range(at, min(at + 500, count)))
              for at in range(0, count, 500))
    return writes, held


def down_from(most: int, least: int) -> Callable[[Choices], int]:
    """Numbers from ``most`` down to ``least``: hypothesis's simplest example (the first
    one it tries) is then the worst case, ``most``."""
    return lambda c: most - c.pick(most - least + 1)


def one_of(*numbers: int) -> Callable[[Choices], int]:
    """One of ``numbers``, the first in the simplest example."""
    return lambda c: c.choose(numbers)


#: A header value that still fits in a line of the default parser limits.
LONGEST = ParserLimits().max_line_length - 200


class MemoryTests(HostileInputTestCase):
    """Memory stays bounded by the configured limits whatever a peer sends.

    Each example streams chunks made to make the library keep something to a new
    connection, then measures (tracemalloc, after a garbage collection, with the
    sessions' receivers keeping nothing) what the library kept while the connection is
    open and after it closed: the difference is the connection's own state, at most twice
    the body bytes of the messages it has to hold plus CONNECTION_ALLOWANCE; what stays
    after the close is the process-wide caches, at most CACHE_ALLOWANCE.

    The first example of each test is its worst case; there are few, and none is shrunk:
    each streams megabytes under tracemalloc, and its note says what it sent. Before
    each, the same chunks with short values go over a connection of their own, so that
    the process-wide caches hold short entries whatever ran before.
    """

    @inlineCallbacks
    def memory_examples(self, kind: str, count: Callable[[Choices], int],
                        size: Callable[[Choices], int]) -> Any:
        library = Library(self, keep_messages=False)
        tracemalloc.start()
        self.addCleanup(tracemalloc.stop)

        def body(driver: Driver, c: Choices) -> None:
            chunks, length = count(c), size(c)
            # The same chunks with short values first, on a connection of their own: the
            # process-wide caches then hold short entries, whatever ran before (this
            # example too, when hypothesis replays it).
            wire = driver.bound_wire(fresh=True)
            short, _ = hostile_stream(kind, chunks, 1, Peer(wire.local or ""))
            check(driver.run(wire, short, [], check_answers=False))
            wire = driver.bound_wire(fresh=True)
            writes, held = hostile_stream(kind, chunks, length, Peer(wire.local or ""))
            note("%s: %d chunks of %d, %d body bytes held" % (kind, chunks, length, held))
            before = call(library.memory)
            outcome = driver.run(wire, writes, [], check_answers=False)
            check(outcome)
            assert outcome.probe_answered, "the stream was not read to its end"
            del outcome
            wire.output.clear()
            kept = call(library.memory) - before
            driver.close(wire)
            cached = call(library.memory) - before
            note("kept while open: %d, after the close: %d" % (kept, cached))
            assert kept - cached <= 2 * held + CONNECTION_ALLOWANCE, \
                "a connection holding %d body bytes keeps %d bytes" % (held, kept - cached)
            assert cached <= CACHE_ALLOWANCE, \
                "the process keeps %d bytes after the connection closed" % cached

        yield self.run_examples(body, 2 if not FUZZING else max(2, TOTAL // 5000), library,
                                no_shrinking=True)

    def test_memory_for_fragmented_messages(self):
        # Messages of a byte here and there, never complete.
        return self.memory_examples("fragments", down_from(8000, 2000), down_from(2, 1))

    def test_memory_for_open_messages(self):
        max_size = SESSION_SETTINGS.max_message_size
        return self.memory_examples("open messages",
                                    down_from(SESSION_SETTINGS.max_incoming_messages, 1),
                                    down_from(max_size, max_size // 2))

    def test_memory_for_refused_message_ids(self):
        # Messages refused with 413 (past max_message_size), with long Message-IDs.
        return self.memory_examples("refused ids", down_from(200, 100),
                                    down_from(LONGEST, 4000))

    def test_memory_of_header_names(self):
        return self.memory_examples("long names", one_of(511, 255),
                                    down_from(LONGEST, 4000))

    def test_memory_of_relay_paths(self):
        # Ever new From-Paths (relays in front of the peer), each answered.
        return self.memory_examples("long relays", one_of(511, 255),
                                    down_from(LONGEST, 4000))

    def test_memory_of_content_types(self):
        return self.memory_examples("long types", down_from(300, 100),
                                    down_from(LONGEST, 4000))

    def test_memory_of_response_comments(self):
        # Responses to nothing (ignored), each with a comment of its own.
        return self.memory_examples("long comments", down_from(300, 64),
                                    down_from(LONGEST, 4000))
