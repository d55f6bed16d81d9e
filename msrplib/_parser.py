"""An incremental MSRP chunk parser: bytes in, events out, no I/O (like h11's readers).

Feed bytes in any split; the parser yields

* :class:`~msrplib._chunk.MSRPData` for a chunk whose body fitted in
  ``ParserLimits.max_buffered_body`` (the common case: one event per chunk), or
* :class:`ChunkStarted`, then :class:`ChunkData` pieces as they arrive, then
  :class:`ChunkEnded`, for a chunk whose body grew past that limit, so that a 1 GiB chunk
  never sits in memory whole.

There is one way through a chunk, with three states: its start line, its header block,
its body. The parser frames chunks and checks their syntax (RFC 4975 section 7.1);
what a well-framed request means (its paths, its Byte-Range) is the receiver's to check
(:mod:`msrplib._rules`). Every limit applies to every chunk. What the parser remembers
between chunks (header lines it has split before) belongs to that parser alone and is
a plain memo: a chunk parses the same whatever came before it.

Every search starts where the last one stopped, less an end-line's length, so the work is
linear in the input whatever the split. A read is parsed where it is; only an unfinished
end is kept in the parser's buffer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Dict, Iterator, List, Optional, Tuple, Union

from msrplib._headerreader import HeaderReader
from msrplib._headers import Headers
from msrplib._chunk import MAX_LINE_LENGTH, MSRPData
from msrplib.errors import ChunkParseError

__all__ = ["ChunkParser", "ParserLimits", "ChunkStarted", "ChunkData", "ChunkEnded",
           "ParserEvent"]


@dataclass(frozen=True)
class ParserLimits:
    """Bounds that keep a hostile or broken peer from using unbounded memory.

    ``max_line_length``: longest start line or header line, in bytes.
    ``max_header_block``: longest start line plus headers of one chunk, in bytes.
    ``max_buffered_body``: bodies up to this size are delivered whole in the chunk; larger
    ones are streamed as :class:`ChunkData` pieces.
    """

    max_line_length: int = MAX_LINE_LENGTH
    max_header_block: int = 64 * 1024
    max_buffered_body: int = 256 * 1024


@dataclass
class ChunkStarted:
    """A chunk whose body is streamed: ``chunk`` has its headers, no body, no contflag."""

    chunk: MSRPData


@dataclass
class ChunkData:
    """The next piece of the streamed body of ``chunk``."""

    chunk: MSRPData
    data: bytes


@dataclass
class ChunkEnded:
    """The streamed ``chunk`` is complete; its ``contflag`` is now set."""

    chunk: MSRPData


ParserEvent = Union[MSRPData, ChunkStarted, ChunkData, ChunkEnded]
_Buffer = Union[bytes, bytearray]
_Kind = Tuple[Optional[str], Optional[int], Optional[str]]

#: A start line (without its CRLF): ``MSRP``, the transaction id, and what follows it.
_START_LINE_RE = re.compile(rb"MSRP ([A-Za-z0-9][A-Za-z0-9.+%=-]{3,31}) ([^\r\n]*)")
#: The same, with its CRLF.
_WHOLE_START_LINE_RE = re.compile(rb"MSRP ([A-Za-z0-9][A-Za-z0-9.+%=-]{3,31}) ([^\r\n]*)\r\n")
_METHOD_RE = re.compile(rb"[A-Z]+")
#: The three lines that may end a chunk's end-line, with the flag each stands for.
_END_FLAGS = {b"$\r\n": "$", b"+\r\n": "+", b"#\r\n": "#"}

_START, _HEADERS, _BODY = range(3)

#: Smallest piece of a read kept as a view while the rest of its body arrives (smaller
#: ones are copied out).
VIEW_MIN = 1024

#: Bytes left unfinished by a read, at most, that are joined with the next read into one
#: ``bytes`` (what chunks are cut from without a second copy); a longer rest grows in the
#: parser's own buffer, so that input trickling in costs linear time.
JOINED_LEFTOVER = 4 * 1024

#: Start lines a parser remembers what follows the transaction id of ("SEND", "200 OK"),
#: at most (it forgets them all when full), and the longest such text it remembers.
KINDS_KEPT = 16
KIND_LENGTH = 64


def _then_raise(events: List[ParserEvent], error: ChunkParseError) -> Iterator[ParserEvent]:
    """Yield ``events``, then raise ``error``: bad input fails after what came before it."""
    yield from events
    raise error


def _unfinished_line_too_long(buf: _Buffer, start: int, max_line: int) -> bool:
    """Whether the line at ``start``, not ended yet, is longer than ``max_line`` however it
    ends: its CR may have arrived without its LF."""
    length = len(buf) - start
    return length > max_line + 1 or (length == max_line + 1 and buf[-1] != 13)


def _take(buf: _Buffer, start: int, end: int) -> bytes:
    """``bytes(buf[start:end])``, with one copy instead of two for big bodies (and none
    for the whole of a ``bytes`` read)."""
    if type(buf) is bytes or end - start < 4096:
        return bytes(buf[start:end])
    with memoryview(buf) as view:
        return view[start:end].tobytes()


class ChunkParser:
    """Turns a stream of bytes into MSRP chunks and responses.

    Use ``for event in parser.feed(data): ...`` and run the iterator to its end. Bad input
    raises :class:`~msrplib.errors.ChunkParseError` from the iterator after every event that
    came before it; from then on :attr:`error` is set and :meth:`feed` raises at once.
    """

    def __init__(self, limits: ParserLimits = ParserLimits()) -> None:
        self._limits = limits
        self._buf = bytearray()
        self._state = _START
        #: Where the next search of the buffer starts: what is before it was searched.
        self._scan = 0
        # The chunk being read: its transaction id, its kind, its end-line's start
        # (CRLF, seven dashes, the id) and, once the header block is read, its headers.
        self._tid = ""
        self._kind: _Kind = (None, None, None)
        self._marker = b""
        self._headers: Optional[Headers] = None
        #: How far past the header block's start its lines were read (whole lines).
        self._lines_done = 0
        # Its body: pieces kept so far, or the chunk whose body is streamed.
        self._parts: List[Union[bytes, memoryview]] = []
        self._body_len = 0
        self._streamed: Optional[MSRPData] = None
        #: Bytes at the start of the body state that are the CRLF before the body.
        self._lead = 0
        self._kinds: Dict[bytes, _Kind] = {}
        self._reader = HeaderReader(limits.max_line_length)
        #: The error that stopped this parser, or ``None``.
        self.error: Optional[ChunkParseError] = None

    @property
    def limits(self) -> ParserLimits:
        """The bounds this parser keeps to, fixed for its life (what it remembers of
        earlier chunks was checked against them)."""
        return self._limits

    @property
    def in_chunk(self) -> bool:
        """True when part of a chunk has arrived but not its end-line."""
        return self._state != _START or bool(self._buf)

    @property
    def in_body(self) -> bool:
        """True when a chunk's start line and headers have arrived, and its body is
        arriving."""
        return self._state == _BODY

    def feed(self, data: bytes) -> Iterator[ParserEvent]:
        """Add ``data`` and iterate over the events it completes."""
        if self.error is not None:
            raise ChunkParseError("the parser stopped at an earlier error: %s" % self.error)
        buf: _Buffer
        if self._buf and len(self._buf) <= JOINED_LEFTOVER and type(data) is bytes:
            buf = b"".join((self._buf, data))  # one copy of each, then slices of bytes
            self._buf.clear()
        elif self._buf:
            buf = self._buf  # a long rest grows in place: what trickles in stays linear
            buf += data
        elif isinstance(data, (bytes, bytearray)):
            buf = data  # nothing is left over: parse the read where it is
        else:
            buf = bytes(data)  # a memoryview, say
        events: List[ParserEvent] = []
        try:
            pos = self._run(buf, events)
        except ChunkParseError as error:
            self.error = error
            return _then_raise(events, error)
        if buf is self._buf:
            del self._buf[:pos]
        elif pos < len(buf):
            with memoryview(buf) as view:
                self._buf += view[pos:]
        self._scan = max(0, self._scan - pos)
        return iter(events)

    def _run(self, buf: _Buffer, events: List[ParserEvent]) -> int:
        """Parse ``buf`` into ``events`` as far as it goes; return the position reached."""
        pos = 0
        while True:
            state = self._state
            if state == _START:
                if pos == len(buf):
                    return pos
                if type(buf) is bytes:
                    after = self._repeated_chunk(buf, pos, events)
                    if after >= 0:
                        pos = after
                        continue
                eol = self._start_line(buf, pos)
                if eol < 0:
                    return pos
                pos = eol
                state = _HEADERS
            if state == _HEADERS:
                after = self._header_block(buf, pos, events)
                if after < 0:
                    return pos
                pos = after
            else:
                pos, ended = self._body(buf, pos, events)
                if not ended:
                    return pos

    # The start line.

    def _start_line(self, buf: _Buffer, pos: int) -> int:
        """Read the start line at ``pos``; return where its CRLF is (the header block
        starts there: see :meth:`_header_block`), or -1 until it is whole."""
        max_line = self._limits.max_line_length
        scan = self._scan
        newline = buf.find(b"\n", pos if scan < pos else scan)
        if newline < 0:
            if _unfinished_line_too_long(buf, pos, max_line):
                raise ChunkParseError("line longer than %d bytes" % max_line)
            if not b"MSRP ".startswith(bytes(buf[pos:pos + 5])):
                raise self._start_line_error(bytes(buf[pos:pos + 80]))
            self._scan = len(buf)
            return -1
        eol = newline - 1
        if eol - pos > max_line:
            raise ChunkParseError("line longer than %d bytes" % max_line)
        if eol < pos or buf[eol] != 13:
            raise ChunkParseError("start line %r ends with a bare LF"
                                  % bytes(buf[pos:newline])[:80])
        match = _START_LINE_RE.fullmatch(buf, pos, eol)
        if match is None:
            raise self._start_line_error(bytes(buf[pos:eol]))
        tid, rest = match.groups()
        kind = self._kinds.get(rest)
        if kind is None:
            kind = self._parse_kind(rest, bytes(buf[pos:eol]))
        self._tid = tid.decode()
        self._kind = kind
        self._marker = b"\r\n-------" + tid
        self._state = _HEADERS
        self._scan = eol
        return eol

    def _start_line_error(self, line: bytes) -> ChunkParseError:
        """The error for a start line that is not ``MSRP <transaction id> <rest>``."""
        parts = line.split(b" ", 2)
        if len(parts) < 3 or parts[0] != b"MSRP":
            return ChunkParseError("malformed start line %r" % line[:80])
        if b"\r" in line or b"\n" in line:
            return ChunkParseError("start line %r holds a bare CR or LF" % line[:80])
        return ChunkParseError("transaction id %r is not 4 to 32 letters, digits or .+%%=-"
                               % parts[1][:40])

    def _parse_kind(self, rest: bytes, line: bytes) -> _Kind:
        """What follows a start line's transaction id, checked: ``(method, code, comment)``."""
        kind: _Kind
        word, space, comment = rest.partition(b" ")
        if len(word) == 3 and word.isdigit():
            kind = (None, int(word),
                    comment.decode("utf-8", "surrogateescape") if space else None)
        elif not space and _METHOD_RE.fullmatch(word):
            kind = (word.decode(), None, None)
        else:
            raise ChunkParseError("malformed start line %r: neither a method nor a status code"
                                  % line[:80])
        if len(rest) <= KIND_LENGTH:  # a long comment is not worth keeping
            if len(self._kinds) >= KINDS_KEPT:
                self._kinds.clear()
            self._kinds[rest] = kind
        return kind

    # The header block.

    def _header_block(self, buf: _Buffer, pos: int, events: List[ParserEvent]) -> int:
        """Read the header block after the start line's CRLF at ``pos``, up to the blank
        line before a body or the end-line of a chunk without one; a chunk found whole with
        a small body is finished here. Returns where reading goes on, or -1 until the
        block is whole.

        The end-line is looked for first: when the whole chunk is in ``buf`` it is found
        once, and the blank line is then looked for only before it. Both may share the CRLF
        at ``pos`` (a chunk without headers), and a blank line may share the end-line's
        CRLF (an empty body). Lines that arrived whole are read at once, so a bad one fails
        before the rest of its block arrives.
        """
        limits = self._limits
        marker = self._marker
        head = pos + 2
        seen = self._scan  # what is before it was looked at: only its tail is looked at again
        done = head + self._lines_done
        stop = head + limits.max_header_block + len(marker) + 3
        if seen <= pos:  # the usual case: the start line was just read
            end = buf.find(marker, pos, stop)
            blank = buf.find(b"\r\n\r\n", pos, stop if end < 0 else end + 2)
        else:  # more of a block that was not whole before
            end = buf.find(marker, max(pos, seen - len(marker) + 1), stop)
            blank = buf.find(b"\r\n\r\n", max(pos, done - 2, seen - 3),
                             stop if end < 0 else end + 2)
        if blank < 0:
            if end < 0:
                self._unfinished_block(buf, head, done, seen)
                self._scan = len(buf)
                return -1
            block_end = end
            after = end + len(marker)
            if len(buf) < after + 3:
                self._scan = end  # an end-line whose flag has not arrived yet
                return -1
        else:
            block_end = blank
        if block_end - head > limits.max_header_block:
            raise ChunkParseError("header block longer than %d bytes" % limits.max_header_block)
        headers = self._headers
        if headers is None:
            if block_end > head:
                request = self._kind[1] is None
                headers = self._reader.read_block(
                    buf, head, block_end, self._tid,
                    request if request == (blank >= 0) else None)
            else:
                headers = Headers()
        else:
            if block_end > done:
                self._reader.read_lines(headers, bytes(buf[done:block_end]), self._tid)
            self._headers = None
            self._lines_done = 0
        if blank >= 0:
            return self._body_follows(buf, blank, end, stop, headers, events)
        flag = _END_FLAGS.get(bytes(buf[after:after + 3]))
        if flag is None:
            raise ChunkParseError("end-line %r does not end transaction %s with a flag and CRLF"
                                  % (bytes(buf[end + 2:after + 3]), self._tid))
        method, code, comment = self._kind
        events.append(MSRPData(self._tid, method, code, comment, headers, b"", flag))
        self._state = _START
        return after + 3

    def _body_follows(self, buf: _Buffer, blank: int, end: int, stop: int, headers: Headers,
                      events: List[ParserEvent]) -> int:
        """The header block ended at the blank line at ``blank``, and ``end`` is the first
        end-line candidate after it (-1: none before ``stop``): finish the chunk when it is
        whole and its body small, else read its body. Returns where reading goes on."""
        marker = self._marker
        after = end + len(marker)
        flag = _END_FLAGS.get(bytes(buf[after:after + 3])) if end >= 0 else None
        if flag is None or end - blank - 4 > self._limits.max_buffered_body:
            self._headers = headers
            self._scan = end if end >= 0 else \
                max(blank + 2, min(len(buf), stop) - len(marker) + 1)
            self._state = _BODY
            self._lead = 2
            return blank + 2
        method, code, comment = self._kind
        events.append(MSRPData(self._tid, method, code, comment, headers,
                               bytes(buf[blank + 4:end]) if end > blank + 2 else b"", flag))
        self._state = _START
        return after + 3

    def _repeated_chunk(self, buf: bytes, pos: int, events: List[ParserEvent]) -> int:
        """Read the chunk at ``pos`` when its header block repeats the last one of its kind
        that the general path split (:class:`HeaderReader` remembers it), without a search
        of that block; return where reading goes on, or -1, having done nothing, for the
        general path to read it.

        It gives what the general path would: its start line is matched by the same rule;
        a remembered block holds nothing like an end-line or a blank line, its new values
        hold no CR or LF, so the general path's searches would find the block's end where
        this finds it; the end-line is then looked for from the same place within the same
        bound; every limit is checked; and whatever this cannot tell (an error, a chunk
        not whole yet) is left to the general path. ``tests/test_parser_properties.py``
        compares the two on any stream, in any split.
        """
        match = _WHOLE_START_LINE_RE.match(buf, pos)
        if match is None:
            return -1
        tid, rest = match.groups()
        kind = self._kinds.get(rest)
        head = match.end()
        limits = self._limits
        if kind is None or head - pos - 2 > limits.max_line_length:
            return -1
        marker = b"\r\n-------" + tid
        reader = self._reader
        if kind[1] is None:
            shape = reader.request_shape
            if shape is None:
                return -1
            found = shape.match(buf, head, limits.max_line_length - 12)
            if found is None or found[0] - head > limits.max_header_block:
                return -1
            blank, headers = found
            stop = head + limits.max_header_block + len(marker) + 3
            end = buf.find(marker, blank + 2, stop)
            if end >= 0:  # the usual case, a whole small chunk, as _body_follows reads it
                after = end + len(marker)
                flag = _END_FLAGS.get(buf[after:after + 3])
                if flag is not None and end - blank - 4 <= limits.max_buffered_body:
                    events.append(MSRPData(tid.decode(), kind[0], None, None, headers,
                                           buf[blank + 4:end] if end > blank + 2 else b"",
                                           flag))
                    return after + 3
            self._tid = tid.decode()
            self._kind = kind
            self._marker = marker
            return self._body_follows(buf, blank, end, stop, headers, events)
        remembered = reader.response_block
        if remembered is None:
            return -1
        block, headers = remembered
        end = head + len(block)
        after = end + len(marker)
        flag = _END_FLAGS.get(buf[after:after + 3])
        if flag is None or not buf.startswith(block, head) or not buf.startswith(marker, end) \
                or len(block) > limits.max_header_block:
            return -1
        events.append(MSRPData(tid.decode(), None, kind[1], kind[2], headers.copy(), b"",
                               flag))
        return after + 3

    def _unfinished_block(self, buf: _Buffer, head: int, done: int, seen: int) -> None:
        """Read the lines of an unfinished header block that arrived whole, and fail
        early when the block can only be bad: too long, a line too long, or a bare CR or
        LF in the line still arriving (a peer that ends its lines with LF alone would
        otherwise wait for ever)."""
        limits = self._limits
        last = buf.rfind(b"\r\n", max(done, seen - 1))
        if last >= done:
            if last - head > limits.max_header_block:  # the block ends at a CRLF or later
                raise ChunkParseError("header block longer than %d bytes"
                                      % limits.max_header_block)
            if self._headers is None:
                self._headers = Headers()
            self._reader.read_lines(self._headers, bytes(buf[done:last]), self._tid)
            done = last + 2
            self._lines_done = done - head
        if _unfinished_line_too_long(buf, done, limits.max_line_length):
            raise ChunkParseError("line longer than %d bytes" % limits.max_line_length)
        if buf.find(b"\n", max(done, seen)) >= 0 or \
                buf.find(b"\r", max(done, seen - 1), len(buf) - 1) >= 0:
            raise ChunkParseError("header line of transaction %s holds a bare CR or LF"
                                  % self._tid)

    # The body.

    def _end_flag(self, buf: _Buffer, found: int) -> Optional[str]:
        """The continuation flag of the end-line whose marker is at ``found``, or ``None``
        when the marker is not followed by a flag and CRLF (RFC 4975 section 7.1: then it
        is body, and the search goes on)."""
        after = found + len(self._marker)
        return _END_FLAGS.get(bytes(buf[after:after + 3]))

    def _body(self, buf: _Buffer, pos: int, events: List[ParserEvent]
              ) -> Tuple[int, bool]:
        """Take the body from ``pos`` up to its end-line, or as much as is surely body.
        Returns where reading goes on and whether it can, as :meth:`_run` wants."""
        marker = self._marker
        start = pos + self._lead
        found = buf.find(marker, max(pos, self._scan))
        while found >= 0 and len(buf) >= found + len(marker) + 3:
            flag = self._end_flag(buf, found)
            if flag is not None:
                if found > start:
                    self._body_piece(buf, start, found, events)
                self._end_body(events, flag)
                return found + len(marker) + 3, True
            found = buf.find(marker, found + 1)  # a candidate that is body after all
        if found >= 0:
            safe_end = found  # a candidate whose flag has not arrived yet
        else:
            # Hold back only a tail that could be the start of the end-line. (Holding back
            # from any CR near the end would, for a file with CRLF lines, copy most reads
            # into the buffer: a held-back tail makes the next read join it.)
            safe_end = len(buf)
            # The end-line may start at ``pos`` itself: the CRLF of the blank line before
            # an empty body (``_lead``) is its first two bytes then.
            carriage = buf.find(b"\r", max(pos, len(buf) - len(marker) + 1))
            while carriage >= 0:
                if marker.startswith(buf[carriage:]):
                    safe_end = carriage
                    break
                carriage = buf.find(b"\r", carriage + 1)
        self._scan = safe_end
        if safe_end <= start:
            return pos, False
        self._lead = 0
        self._body_piece(buf, start, safe_end, events)
        return safe_end, False

    def _body_piece(self, buf: _Buffer, start: int, end: int,
                    events: List[ParserEvent]) -> None:
        """Keep ``buf[start:end]`` of the current body, or stream it (adding the events to
        ``events``) once the body grew too big.

        A body that spans reads is copied once, when its pieces are joined: a piece of a
        read (``bytes``, which nothing changes) is kept as a view of it, not copied out
        first. Only a read's first or last part is ever a piece (a read in between is body
        through and through, kept as it is), so the views hold at most the body and the
        rest of the read it began in. Pieces under ``VIEW_MIN`` bytes are copied.
        """
        streamed = self._streamed
        if streamed is not None:
            events.append(ChunkData(streamed, _take(buf, start, end)))
            return
        if self._body_len + end - start > self._limits.max_buffered_body:
            streamed = self._streamed = self._chunk(b"", None)
            events.append(ChunkStarted(streamed))
            events.extend(ChunkData(streamed, bytes(part)) for part in self._parts)
            events.append(ChunkData(streamed, _take(buf, start, end)))
            self._parts = []
            return
        if type(buf) is not bytes or end - start < VIEW_MIN:
            part: Union[bytes, memoryview] = _take(buf, start, end)
        elif end - start == len(buf):
            part = buf  # the whole read is body: kept as it is
        else:
            part = memoryview(buf)[start:end]
        self._parts.append(part)
        self._body_len += end - start

    def _end_body(self, events: List[ParserEvent], flag: str) -> None:
        """The body's end-line arrived: finish the chunk, streamed or whole."""
        streamed = self._streamed
        if streamed is not None:
            streamed.contflag = flag
            self._streamed = None
            self._state = _START
            self._headers = None
            events.append(ChunkEnded(streamed))
        else:
            parts = self._parts
            self._finish(events, parts[0] if len(parts) == 1 and type(parts[0]) is bytes
                         else b"".join(parts), flag)
        self._parts = []
        self._body_len = 0
        self._lead = 0

    # Chunks.

    def _chunk(self, data: bytes, flag: Optional[str]) -> MSRPData:
        """The chunk being read, with ``data`` as its body and ``flag`` as its contflag."""
        method, code, comment = self._kind
        headers = self._headers
        assert headers is not None
        return MSRPData(self._tid, method, code, comment, headers, data, flag)

    def _finish(self, events: List[ParserEvent], data: _Buffer, flag: str) -> None:
        """Add the finished chunk, with ``data`` as its body, to ``events`` and wait for
        the next start line."""
        events.append(self._chunk(data if type(data) is bytes else bytes(data), flag))
        self._state = _START
        self._headers = None
