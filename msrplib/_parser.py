"""An incremental MSRP chunk parser: bytes in, events out, no I/O (like h11's readers).

Feed bytes in any split; the parser yields

* :class:`~msrplib._wire.MSRPData` for a chunk whose body fitted in
  ``ParserLimits.max_buffered_body`` (the common case: one event per chunk), or
* :class:`ChunkStarted`, then :class:`ChunkData` pieces as they arrive, then
  :class:`ChunkEnded`, for a chunk whose body grew past that limit, so that a 1 GiB chunk
  never sits in memory whole.

The end-line is found with ``find`` over the new bytes plus at most the end-line's length
of older ones, so the work is linear in the input whatever the split. A read is parsed
where it is when nothing was left over from the one before; only an unfinished end is
kept in the parser's buffer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Dict, Iterator, List, Optional, Tuple, Union

from msrplib._headerblock import (BLOCK_LENGTH, MESSAGE_ID_LINE, SplitBlock,
                                  known_request_shape, read_header_lines, request_headers,
                                  response_headers)
from msrplib._headers import Headers
from msrplib._wire import MSRPData
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

    max_line_length: int = 16 * 1024
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

#: A start line (without its CRLF): ``MSRP``, the transaction id, and what follows it.
_START_LINE_RE = re.compile(rb"MSRP ([A-Za-z0-9][A-Za-z0-9.+%=-]{3,31}) (.*)", re.DOTALL)
_METHOD_RE = re.compile(rb"[A-Z]+")
_Kind = Tuple[Optional[str], Optional[int], Optional[str]]
#: What followed the transaction id in start lines seen before (``SEND``, ``200 OK``), as
#: ``(method, code, comment)``. Bounded (emptied when full): comments come from peers.
_KINDS: Dict[bytes, _Kind] = {}
_KINDS_CACHED = 64

_START, _HEADERS, _BODY = range(3)

#: Smallest piece of a read kept as a view while the rest of its body arrives (smaller
#: ones are copied out).
VIEW_MIN = 1024

#: Chunks up to this size (start line excepted) that are all in the buffer are parsed in
#: one go; larger ones take the general path, which searches each byte once.
WHOLE_CHUNK_SPAN = 4 * 1024

#: Bytes left unfinished by a read, at most, that are joined with the next read into one
#: ``bytes`` (only the paths for chunks like the last read bytes); a longer rest is kept
#: growing in the parser's own buffer, so that input trickling in costs linear time.
JOINED_LEFTOVER = 4 * 1024


def _then_raise(events: List[ParserEvent], error: ChunkParseError) -> Iterator[ParserEvent]:
    """Yield ``events``, then raise ``error``: bad input fails after what came before it."""
    yield from events
    raise error


def _take(buf: Union[bytes, bytearray], start: int, end: int) -> bytes:
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
        self.limits = limits
        self._buf = bytearray()
        self._state = _START
        self._scan = 0
        self._line_scan = 0
        self._lines_done = 0
        self._chunk: Optional[MSRPData] = None
        self._marker = b""
        self._lead = 0
        self._parts: List[Union[bytes, memoryview]] = []
        self._body_len = 0
        self._streaming = False
        #: The header block of the last response parsed whole, and its Headers.
        self._last_response: Optional[Tuple[bytes, Headers]] = None
        #: The header block of the last request parsed whole with a body, split around
        #: its Message-ID's value.
        self._last_request: Optional[SplitBlock] = None
        #: The error that stopped this parser, or ``None``.
        self.error: Optional[ChunkParseError] = None

    @property
    def in_chunk(self) -> bool:
        """True when part of a chunk has arrived but not its end-line."""
        return self._state != _START or bool(self._buf)

    def feed(self, data: bytes) -> Iterator[ParserEvent]:
        """Add ``data`` and iterate over the events it completes."""
        if self.error is not None:
            raise ChunkParseError("the parser stopped at an earlier error: %s" % self.error)
        buf: Union[bytes, bytearray]
        if self._buf and len(self._buf) <= JOINED_LEFTOVER and type(data) is bytes:
            # A short unfinished end goes in front of the read in one bytes (one copy of
            # each), so that the whole read takes the paths that read bytes.
            buf = b"".join((self._buf, data))
            self._buf.clear()
        elif self._buf:
            buf = self._buf  # a long one grows in place: what trickles in stays linear
            buf += data
        elif isinstance(data, (bytes, bytearray)):
            # Nothing is left over: parse the read where it is, and keep only its
            # unfinished end (often nothing: a read of whole chunks, or of body only).
            buf = data
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
        if pos and (self._scan or self._line_scan):  # a no-op for 0s, as while a body goes on
            self._scan = max(0, self._scan - pos)
            self._line_scan = max(0, self._line_scan - pos)
        return iter(events)

    def _run(self, buf: Union[bytes, bytearray], events: List[ParserEvent]) -> int:
        """Parse ``buf`` into ``events`` as far as it goes; return the position reached."""
        pos = 0
        max_line = self.limits.max_line_length
        while True:
            state = self._state
            if state == _BODY:
                pos, ended = self._body(buf, pos, events)
                if not ended:
                    return pos
            elif state == _START:
                if pos == len(buf):  # the read ended with a chunk (the usual case)
                    return pos
                scan = self._scan  # past pos only while a start line is arriving
                eol = buf.find(b"\r\n", scan if scan > pos else pos)
                if eol < 0:
                    if len(buf) - pos > max_line:
                        raise ChunkParseError("line longer than %d bytes" % max_line)
                    self._scan = max(pos, len(buf) - 1)
                    return pos
                if eol - pos > max_line:
                    raise ChunkParseError("line longer than %d bytes" % max_line)
                whole = self._chunk_start(buf, pos, eol)
                if whole is None:
                    pos = self._scan = eol + 2
                else:
                    chunk, pos = whole
                    self._scan = pos
                    events.append(chunk)
            else:
                found = self._header_block(buf, pos)
                if found is None:
                    return pos
                event, pos = found
                if event is not None:
                    events.append(event)

    def _header_block(self, buf: Union[bytes, bytearray], pos: int
                      ) -> Optional[Tuple[Optional[MSRPData], int]]:
        """Parse the headers that start at ``pos``.

        They end at a blank line (a body follows) or at the end-line (no body). While they
        are incomplete, the lines complete so far are checked (so bad input fails early)
        and ``None`` is returned; then the finished chunk (or ``None`` when a body follows)
        and the position after what was consumed.
        """
        marker = self._marker
        limits = self.limits
        done = pos + self._lines_done
        blank = end = -1
        if done == pos and buf.startswith(marker[2:], pos):
            end = pos - 2
        elif done == pos and buf.startswith(b"\r\n", pos):
            blank = pos - 2
        else:
            # Neither search may run past what a header block can be: each chunk costs a
            # bounded scan. The blank line is looked for first, so that the end-line
            # search stops there instead of running on through a body; an end-line that
            # starts before it means no body (an empty body's blank line may share the
            # end-line's CRLF).
            start = max(pos, done - 2, self._scan)
            stop = pos + limits.max_header_block + len(marker) + 4
            blank = buf.find(b"\r\n\r\n", start, stop)
            end = buf.find(marker, start, stop if blank < 0 else blank + 1 + len(marker))
            if end >= 0:
                blank = -1
        if blank < 0 and end < 0:
            done = self._complete_lines(buf, done)
            self._lines_done = done - pos
            if len(buf) - done > limits.max_line_length:
                raise ChunkParseError("line longer than %d bytes" % limits.max_line_length)
            if len(buf) - pos > limits.max_header_block:
                raise ChunkParseError("header block longer than %d bytes"
                                      % limits.max_header_block)
            self._scan = max(pos, len(buf) - len(marker) + 1)
            return None
        block_end = max(blank, end)
        if block_end - pos > limits.max_header_block:
            raise ChunkParseError("header block longer than %d bytes" % limits.max_header_block)
        if end >= 0 and len(buf) < end + len(marker) + 3:
            self._scan = end
            return None
        chunk = self._chunk
        assert chunk is not None
        if block_end > done:
            read_header_lines(chunk.headers, buf[done:block_end], limits.max_line_length,
                              chunk.transaction_id)
        self._lines_done = self._line_scan = 0
        self._check_paths(chunk)
        if blank >= 0:
            self._state = _BODY
            self._lead = 2
            return None, blank + 2
        return self._end_line(buf, end + len(marker))

    def _end_line(self, buf: Union[bytes, bytearray], after: int) -> Tuple[MSRPData, int]:
        """Finish the chunk whose end-line's flag is at ``after``."""
        return self._finish(self._end_flag(buf, after)), after + 3

    def _end_flag(self, buf: Union[bytes, bytearray], after: int) -> str:
        """The continuation flag at ``after``, checked with the CRLF that must follow it."""
        end = buf[after:after + 3]
        if end == b"$\r\n":
            return "$"
        if end == b"+\r\n":
            return "+"
        if end == b"#\r\n":
            return "#"
        flag = bytes(end[:1])
        if flag in (b"$", b"+", b"#"):
            raise ChunkParseError("end-line of %s not followed by CRLF"
                                  % self._marker[9:].decode())
        raise ChunkParseError("end-line with unknown continuation flag %r" % flag)

    def _complete_lines(self, buf: Union[bytes, bytearray], done: int) -> int:
        """Check the header lines that are complete in ``buf`` from ``done`` on."""
        last = buf.rfind(b"\r\n", max(done, self._line_scan))
        if last >= done:
            chunk = self._chunk
            assert chunk is not None
            read_header_lines(chunk.headers, buf[done:last], self.limits.max_line_length,
                              chunk.transaction_id)
            done = last + 2
        self._line_scan = max(done, len(buf) - 1)
        return done

    def _chunk_start(self, buf: Union[bytes, bytearray], pos: int, eol: int
                     ) -> Optional[Tuple[MSRPData, int]]:
        """Parse the start line ``buf[pos:eol]``, then the whole chunk when all of it is in
        the buffer and its body is small: ``(chunk, position after it)``. ``None`` leaves
        the rest to the step-by-step path (:meth:`_header_block`, :meth:`_body`).

        The whole chunk is tried once, right after its start line, so a chunk trickling in
        a byte at a time is not searched again and again.
        """
        match = _START_LINE_RE.fullmatch(buf, pos, eol)
        if match is None:
            raise self._start_line_error(bytes(buf[pos:eol]))
        tid, rest = match.groups()
        kind = _KINDS.get(rest)
        if kind is None:
            kind = self._kind(rest, bytes(buf[pos:eol]))
        self._marker = marker = b"\r\n-------" + tid
        if isinstance(buf, bytes):  # what these hand out are slices of it
            if kind[1] is not None:
                if self._last_response is not None:
                    whole = self._like_last_response(buf, eol + 2, tid, kind)
                    if whole is not None:
                        return whole
            elif self._last_request is not None:
                whole = self._like_last_request(buf, eol + 2, tid, kind)
                if whole is not None:
                    return whole
        # The end-line may share the start line's CRLF (a chunk without headers). Bigger
        # chunks are not searched here: the general path finds their end-line once.
        start = eol + 2
        end = buf.find(marker, eol, start + WHOLE_CHUNK_SPAN)
        after = end + len(marker)
        if end < 0 or len(buf) < after + 3:
            if end < 0 and kind[1] is None and len(buf) - start >= WHOLE_CHUNK_SPAN:
                # A big request (a file's chunk): those after it are likely big too, and
                # would only fail to be like the last small one.
                self._last_request = None
            self._step_by_step(tid, kind)
            return None
        limits = self.limits
        blank = buf.find(b"\r\n\r\n", eol, end + 2)
        block_end = end if blank < 0 else blank
        if block_end - start > limits.max_header_block:
            raise ChunkParseError("header block longer than %d bytes" % limits.max_header_block)
        if blank >= 0 and end - blank - 4 > limits.max_buffered_body:
            self._step_by_step(tid, kind)  # streamed: the general path cuts the body in pieces
            return None
        method, code, comment = kind
        transaction_id = tid.decode()
        if block_end <= start:
            headers = Headers()
        elif code is None:
            headers, split = request_headers(bytes(buf[start:block_end]),
                                             limits.max_line_length, transaction_id)
            if blank >= 0 and split is not None:
                self._last_request = split
        else:
            block = bytes(buf[start:block_end])
            headers = response_headers(block, limits.max_line_length, transaction_id)
            if blank < 0:
                self._remember_response(block, headers)
        if code is None:
            self._require_paths(method, headers.first)
        data = bytes(buf[blank + 4:end]) if blank >= 0 else b""  # small: see WHOLE_CHUNK_SPAN
        # Built once, whole: filling in a chunk made empty costs twice as much.
        return MSRPData(transaction_id, method, code, comment, headers, data,
                        self._end_flag(buf, after)), after + 3

    def _like_last_response(self, buf: bytes, start: int, tid: bytes,
                            kind: _Kind) -> Optional[Tuple[MSRPData, int]]:
        """The response at ``start`` (its start line parsed) when its header block is the
        very one of the last response parsed whole, with its end-line right after: a
        session's answers to what it sent, read without a search. ``None`` otherwise."""
        assert self._last_response is not None
        block, headers = self._last_response
        end = start + len(block)
        if not (buf.startswith(block, start) and buf.startswith(self._marker, end)):
            return None
        after = end + len(self._marker)
        if len(buf) < after + 3:
            return None
        _, code, comment = kind
        return MSRPData(tid.decode(), None, code, comment, headers.copy(), b"",
                        self._end_flag(buf, after)), after + 3

    def _like_last_request(self, buf: bytes, start: int, tid: bytes,
                           kind: _Kind) -> Optional[Tuple[MSRPData, int]]:
        """The request at ``start`` (its start line parsed) when its header block is the
        very one of the last request parsed whole but for its Message-ID's value, and all
        of it is in the buffer: a session's messages read without a search of their
        headers. ``None`` otherwise, for the general path (which also reports errors)."""
        assert self._last_request is not None
        prefix, suffix, shape = self._last_request
        if not buf.startswith(prefix, start):
            return None
        limits = self.limits
        value = start + len(prefix)
        value_end = buf.find(b"\r\n", value, value + limits.max_line_length)
        if value_end < 0:
            return None
        if buf.startswith(suffix, value_end):
            body = value_end + len(suffix)
        else:
            # Another block of the same paths seen before (a message of another size,
            # another Byte-Range, say): this one is the last now.
            blank = buf.find(b"\r\n\r\n", value_end, start + BLOCK_LENGTH)
            if blank < 0:
                return None
            suffix = buf[value_end:blank + 4]
            known = known_request_shape(prefix + suffix[:-4])
            if known is None or b"-------" in suffix:
                return None
            shape = known
            self._last_request = (prefix, suffix, shape)
            body = blank + 4
        marker = self._marker
        end = buf.find(marker, body, start + WHOLE_CHUNK_SPAN)
        after = end + len(marker)
        if end < 0 or len(buf) < after + 3 or end - body > limits.max_buffered_body \
                or body - 4 - start > limits.max_header_block \
                or value_end - value + len(MESSAGE_ID_LINE) - 2 > limits.max_line_length:
            return None
        headers = shape.headers(buf[value:value_end].decode("utf-8", "surrogateescape"))
        return MSRPData(tid.decode(), kind[0], None, None, headers, buf[body:end],
                        self._end_flag(buf, after)), after + 3

    def _remember_response(self, block: bytes, headers: Headers) -> None:
        """Keep a body-less response's header block for :meth:`_like_last_response`,
        unless it holds something that might be taken for an end-line (then only the
        search finds where the response ends)."""
        if len(block) <= BLOCK_LENGTH and b"-------" not in block:
            self._last_response = (block, headers.copy())

    def _step_by_step(self, tid: bytes, kind: _Kind) -> None:
        """Leave the chunk whose start line was parsed to the general path."""
        method, code, comment = kind
        self._chunk = MSRPData(tid.decode(), method, code, comment, contflag=None)
        self._state = _HEADERS

    def _start_line_error(self, line: bytes) -> ChunkParseError:
        """The error for a start line that is not ``MSRP <transaction id> <rest>``."""
        parts = line.split(b" ", 2)
        if len(parts) < 3 or parts[0] != b"MSRP":
            return ChunkParseError("malformed start line %r" % line[:80])
        return ChunkParseError("transaction id %r is not 4 to 32 letters, digits or .+%%=-"
                               % parts[1][:40])

    def _kind(self, rest: bytes, line: bytes) -> _Kind:
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
        if len(_KINDS) >= _KINDS_CACHED:
            _KINDS.clear()
        _KINDS[rest] = kind
        return kind

    def _check_paths(self, chunk: MSRPData) -> None:
        """A request must have To-Path and From-Path."""
        if chunk.method is not None:
            self._require_paths(chunk.method, chunk.headers.first)

    def _require_paths(self, method: Optional[str], first: Dict[str, str]) -> None:
        """Fail unless ``first`` (a request's headers) has To-Path and From-Path."""
        if "to-path" not in first or "from-path" not in first:
            missing = "To-Path" if "to-path" not in first else "From-Path"
            raise ChunkParseError("%s request without %s" % (method, missing))

    def _finish(self, contflag: str) -> MSRPData:
        chunk = self._chunk
        assert chunk is not None
        chunk.contflag = contflag
        self._chunk = None
        self._state = _START
        return chunk

    def _body(self, buf: Union[bytes, bytearray], pos: int, events: List[ParserEvent]
              ) -> Tuple[int, bool]:
        """Take the body from ``pos`` up to its end-line, or as much as is safe: add the
        events to ``events``; return the new position and whether the chunk ended."""
        marker = self._marker
        chunk = self._chunk
        assert chunk is not None
        start = pos + self._lead
        found = buf.find(marker, pos)
        if found >= 0 and len(buf) >= found + len(marker) + 3:
            end = found + len(marker)
            flag = self._end_flag(buf, end)
            if found > start:
                self._body_piece(buf, start, found, events)  # may start streaming
            if self._streaming:
                self._finish(flag)
                events.append(ChunkEnded(chunk))
            else:
                chunk.data = b"".join(self._parts)
                events.append(self._finish(flag))
            self._parts = []
            self._body_len = 0
            self._streaming = False
            self._lead = 0
            return end + 3, True
        if found >= 0:
            safe_end = found
        else:
            # Hold back only a tail that could be the start of the end-line. (Holding back
            # from any CR near the end would, for a file with CRLF lines, copy most reads
            # into the buffer: a held-back tail makes the next read join it.)
            safe_end = len(buf)
            carriage = buf.find(b"\r", max(start, len(buf) - len(marker) + 1))
            while carriage >= 0:
                if marker.startswith(buf[carriage:]):
                    safe_end = carriage
                    break
                carriage = buf.find(b"\r", carriage + 1)
        if safe_end <= start:
            return pos, False
        self._lead = 0
        self._body_piece(buf, start, safe_end, events)
        return safe_end, False

    def _body_piece(self, buf: Union[bytes, bytearray], start: int, end: int,
                    events: List[ParserEvent]) -> None:
        """Keep ``buf[start:end]`` of the current body, or stream it (adding the events to
        ``events``) once the body grew too big.

        A body that spans reads is copied once, when its pieces are joined: a piece of a
        read (``bytes``, which nothing changes) is kept as a view of it, not copied out
        first. Only a read's first or last part is ever a piece (a read in between is body
        through and through, kept as it is), so the views hold at most the body and the
        rest of the read it began in. Pieces under ``VIEW_MIN`` bytes are copied.
        """
        chunk = self._chunk
        assert chunk is not None
        if self._streaming:
            events.append(ChunkData(chunk, _take(buf, start, end)))
            return
        if self._body_len + end - start > self.limits.max_buffered_body:
            self._streaming = True
            events.append(ChunkStarted(chunk))
            events.extend(ChunkData(chunk, bytes(part)) for part in self._parts)
            events.append(ChunkData(chunk, _take(buf, start, end)))
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
